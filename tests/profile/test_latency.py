"""Side-by-side timing: alternating (ABBA) order, warm-up calls, summaries."""

from __future__ import annotations

from alignrank.profile.latency import summarize, time_alternating


def test_alternating_order_and_counts():
    calls = []
    fns = {n: (lambda n=n: calls.append(n)) for n in ("a", "b", "c")}
    times = time_alternating(fns, repeats=4, warmup=2)
    assert calls[:6] == ["a", "b", "c"] * 2  # warm-up
    assert calls[6:] == ["a", "b", "c", "c", "b", "a", "a", "b", "c", "c", "b", "a"]  # ABBA rounds
    assert {n: len(t) for n, t in times.items()} == {"a": 4, "b": 4, "c": 4}
    assert all(t >= 0 for ts in times.values() for t in ts)


def test_summarize_median_and_iqr():
    s = summarize([0.004, 0.001, 0.002, 0.003, 0.100])
    assert s["median_ms"] == 3.0 and s["min_ms"] == 1.0 and s["n"] == 5
    assert abs(s["iqr_ms"] - 2.0) < 1e-9  # outlier does not move the median
