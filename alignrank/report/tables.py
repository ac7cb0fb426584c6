"""Result tables of the paper, reproduced from our runs: mean +- std over seeds, paired CIs to the baseline.

* Table 1 (main results): AP, AP50, AP75, APs, APm, APl (%), params, GFLOPs, latency per variant;
* Table 2 (ablation): Kendall tau, Spearman rho, top-1 miss rate / IoU gap, ECE, NMS-free AP;
* paired differences to ``baseline`` per metric: mean, bootstrap CI, n seeds, "significant" when
  the CI excludes 0;
* the paper's published numbers beside ours, labelled comparable or not.

Each table is a :class:`Table` (formatted cells for markdown/LaTeX, raw numbers for CSV).

Examples:
    >>> runs = {"baseline": {0: {"AP": 0.40}, 1: {"AP": 0.42}}, "full": {0: {"AP": 0.45}, 1: {"AP": 0.46}}}
    >>> t = main_table(runs, ["baseline", "full"], profile=None)
    >>> t.rows[0][:3]
    ['baseline', '2', '41.00 ± 1.41']
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from alignrank.report.bootstrap import paired_bootstrap

MAIN_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
ABLATION_METRICS = ("kendall_tau", "spearman_rho", "top1_miss_rate", "top1_iou_gap", "ece", "nms_free_AP")
PERCENT = {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR100", "nms_free_AP", "nms_free_AP50", "tide_AP50"}
LABELS = {"kendall_tau": "Kendall τ", "spearman_rho": "Spearman ρ", "top1_miss_rate": "top-1 miss",
          "top1_iou_gap": "top-1 IoU gap", "ece": "ECE", "nms_free_AP": "NMS-free AP"}
LOWER_IS_BETTER = {"ece", "top1_miss_rate", "top1_iou_gap"}
PAPER = {  # COCO val2017, YOLOv8-S, 640 px (the paper's Table 1)
    "baseline": {"AP": 44.9, "params_M": 11.2, "gflops": 28.6},
    "full": {"AP": 46.9, "params_M": 11.5, "gflops": 30.0},
}


@dataclass
class Table:
    """A result table: formatted ``rows`` for markdown/LaTeX, numeric ``csv_rows`` for CSV."""

    name: str
    title: str
    columns: list[str]
    rows: list[list[str]]
    csv_columns: list[str]
    csv_rows: list[list]
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        head = f"### {self.title}\n\n| " + " | ".join(self.columns) + " |\n|" + "|".join("---" for _ in self.columns) + "|\n"
        body = "".join("| " + " | ".join(r) + " |\n" for r in self.rows)
        notes = "".join(f"\n{n}\n" for n in self.notes)
        return head + body + notes

    def csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.csv_columns)
        for r in self.csv_rows:
            w.writerow(["" if (isinstance(v, float) and not math.isfinite(v)) else v for v in r])
        return buf.getvalue()

    def latex(self) -> str:
        def esc(s: str) -> str:
            s = s.replace("\\", "\\textbackslash{}")
            for a, b in (("&", "\\&"), ("%", "\\%"), ("_", "\\_"), ("#", "\\#"), ("±", "$\\pm$"), ("τ", "$\\tau$"),
                         ("ρ", "$\\rho$"), ("Δ", "$\\Delta$"), ("→", "$\\rightarrow$"), ("✓", "\\checkmark{}")):
                s = s.replace(a, b)
            return s

        lines = ["\\begin{table}[t]", "\\centering", f"\\caption{{{esc(self.title)}}}", f"\\label{{tab:{self.name}}}",
                 "\\begin{tabular}{l" + "r" * (len(self.columns) - 1) + "}", "\\toprule",
                 " & ".join(esc(c) for c in self.columns) + " \\\\", "\\midrule"]
        lines += [" & ".join(esc(c) for c in r) + " \\\\" for r in self.rows]
        lines += ["\\bottomrule", "\\end{tabular}"]
        lines += [f"\\\\[2pt]{{\\footnotesize {esc(n)}}}" for n in self.notes]
        lines += ["\\end{table}", ""]
        return "\n".join(lines)


def _vals(runs: Mapping, variant: str, metric: str) -> dict[int, float]:
    out = {}
    for seed, m in (runs.get(variant) or {}).items():
        v = (m or {}).get(metric)
        if isinstance(v, (int, float)) and v is not None and math.isfinite(v):
            out[seed] = float(v) * (100.0 if metric in PERCENT else 1.0)
    return out


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, sample std (ddof 1; NaN for one value) and count."""
    v = np.asarray(list(values), dtype=np.float64)
    if len(v) == 0:
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan, len(v)


def fmt_ms(mean: float, std: float, digits: int) -> str:
    """``mean ± std`` (``mean`` alone for one seed, ``n/a`` when empty)."""
    if not math.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if math.isfinite(std) else "")


def _digits(metric: str) -> int:
    return 2 if metric in PERCENT else 3


def profile_settings(profile: Mapping | None) -> dict:
    """``scale``, ``imgsz``, ``nc`` of a profile JSON (top level or under ``settings``)."""
    profile = profile or {}
    src = profile.get("settings") if isinstance(profile.get("settings"), Mapping) else profile
    return {k: src.get(k) for k in ("scale", "imgsz", "nc") if src.get(k) is not None}


def _profile_cells(profile: Mapping | None, variant: str) -> tuple[list[str], list]:
    """Params (M), GFLOPs, eager and ONNX Runtime latency (ms) of ``variant`` from the profile JSON.

    Reads ``{"models"|"variants": {v: {"params", "gflops", "latency_ms": {"eager", "onnxruntime"}}}}`` or the
    flat ``latency_eager_ms`` / ``latency_ort_ms`` keys.
    """
    profile = profile or {}
    m = (profile.get("models") or profile.get("variants") or {}).get(variant) or {}
    params, gflops = m.get("params"), m.get("gflops")
    lat = m.get("latency_ms") or {}
    p_m = None if params is None else (params / 1e6 if params > 1e4 else float(params))  # count or millions
    eager = lat.get("eager", m.get("latency_eager_ms"))
    ort = lat.get("onnxruntime", m.get("latency_ort_ms"))
    cells = [f"{p_m:.2f}" if p_m is not None else "n/a", f"{gflops:.2f}" if gflops is not None else "n/a",
             f"{eager:.1f}" if eager is not None else "n/a", f"{ort:.1f}" if ort is not None else "n/a"]
    return cells, [p_m, gflops, eager, ort]


def main_table(runs: Mapping, variants: Sequence[str], profile: Mapping | None) -> Table:
    """Table 1: per variant, mean ± std over seeds of the COCO APs (%) and the profile's cost figures."""
    cols = ["Variant", "n"] + list(MAIN_METRICS) + ["Params (M)", "GFLOPs", "Latency eager (ms)", "Latency ORT (ms)"]
    csv_cols = ["variant", "n"] + [f"{m}_{s}" for m in MAIN_METRICS for s in ("mean", "std")] + \
               ["params_M", "gflops", "latency_eager_ms", "latency_ort_ms"]
    rows, csv_rows = [], []
    for v in variants:
        n = len(runs.get(v) or {})
        cells, nums = [v, str(n)], [v, n]
        for m in MAIN_METRICS:
            mu, sd, _ = mean_std(_vals(runs, v, m).values())
            cells.append(fmt_ms(mu, sd, 2)), nums.extend([mu, sd])
        pc, pn = _profile_cells(profile, v)
        rows.append(cells + pc), csv_rows.append(nums + pn)
    notes = ["AP in %, mean ± sample std over seeds (n = seeds)."]
    if profile:
        pr = profile_settings(profile)
        where = f" ({', '.join(f'{k}={v}' for k, v in pr.items())})" if pr else ""
        notes.append(f"Params/GFLOPs/latency from the profile stage{where}; they describe the profiled model, "
                     "not necessarily the trained one.")
    else:
        notes.append("Params/GFLOPs/latency: n/a (outputs/profile/profile.json not found; run `alignrank profile`).")
    return Table("main", "Table 1: main results (COCO box AP, %)", cols, rows, csv_cols, csv_rows, notes)


def ablation_table(runs: Mapping, variants: Sequence[str]) -> Table:
    """Table 2: per variant, mean ± std of the rank-consistency, calibration and NMS-free metrics."""
    metrics = list(ABLATION_METRICS) + ["AP"]
    cols = ["Variant", "n"] + [LABELS.get(m, m) + (" (%)" if m in PERCENT else "") for m in metrics]
    csv_cols = ["variant", "n"] + [f"{m}_{s}" for m in metrics for s in ("mean", "std")]
    rows, csv_rows = [], []
    for v in variants:
        n = len(runs.get(v) or {})
        cells, nums = [v, str(n)], [v, n]
        for m in metrics:
            mu, sd, _ = mean_std(_vals(runs, v, m).values())
            cells.append(fmt_ms(mu, sd, _digits(m))), nums.extend([mu, sd])
        rows.append(cells), csv_rows.append(nums)
    notes = ["τ/ρ: score vs IoU of the pre-NMS candidates of each ground truth (higher is better); top-1 miss/IoU gap "
             "and ECE: lower is better; NMS-free AP: top-k by score, no NMS."]
    return Table("ablation", "Table 2: rank consistency, calibration and NMS-free decoding", cols, rows, csv_cols, csv_rows,
                 notes)


def paired_table(runs: Mapping, variants: Sequence[str], *, baseline: str = "baseline", n_resamples: int = 10000,
                 ci: float = 0.95, min_seeds: int = 3) -> Table:
    """Per variant and metric: paired difference to ``baseline`` over common seeds with a bootstrap CI."""
    metrics = list(MAIN_METRICS[:3]) + list(ABLATION_METRICS)
    cols = ["Variant", "Metric", "Δ vs baseline", f"{round(ci * 100)}% CI", "n seeds", "significant"]
    csv_cols = ["variant", "metric", "delta_mean", "ci_lo", "ci_hi", "n", "significant"]
    rows, csv_rows = [], []
    base = {m: _vals(runs, baseline, m) for m in metrics}
    for v in variants:
        if v == baseline:
            continue
        for m in metrics:
            mine = _vals(runs, v, m)
            seeds = sorted(set(mine) & set(base[m]))
            r = paired_bootstrap([mine[s] - base[m][s] for s in seeds], n_resamples=n_resamples, ci=ci,
                                  min_n=min_seeds)
            d = _digits(m)
            sig = "yes" if r["significant"] else (f"n/a (n<{min_seeds})" if r["n"] < min_seeds else "no")
            rows.append([v, LABELS.get(m, m) + (" (%)" if m in PERCENT else ""),
                         "n/a" if not r["n"] else f"{r['mean']:+.{d}f}",
                         "n/a" if not r["n"] else f"[{r['lo']:+.{d}f}, {r['hi']:+.{d}f}]", str(r["n"]), sig])
            csv_rows.append([v, m, r["mean"], r["lo"], r["hi"], r["n"], r["significant"]])
    notes = [f"Paired by seed (same seed, variant − {baseline}); percentile bootstrap over seeds, {n_resamples} resamples "
             f"(seeded). 'yes' = the CI excludes 0. Lower is better for {', '.join(sorted(LOWER_IS_BETTER))}. "
             "With few seeds (< 5) a bootstrap CI understates the uncertainty: read 'yes' as a hint, not proof."]
    return Table("paired", f"Paired differences to {baseline} ({round(ci * 100)}% bootstrap CI)", cols, rows, csv_cols,
                 csv_rows, notes)


def _good(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _fmt2(x: float | None) -> str:
    return f"{x:.2f}" if _good(x) else "n/a"


def paper_table(runs: Mapping, profile: Mapping | None, data: Mapping | None, trained: Mapping | None) -> Table:
    """The paper's published numbers beside ours, with a comparability verdict per row."""
    data, trained = data or {}, trained or {}
    ap_ok = (data.get("source") == "coco2017" and (data.get("counts") or {}).get("val", 0) >= 5000
             and trained.get("scale") == "s" and trained.get("imgsz") == 640)
    ps = profile_settings(profile)
    prof_ok = bool(profile) and ps.get("scale") == "s" and ps.get("imgsz") == 640 and ps.get("nc", 80) == 80
    ours = {v: {"AP": mean_std(_vals(runs, v, "AP").values())[0]} for v in ("baseline", "full")}
    for v in ("baseline", "full"):
        _, (p_m, gf, _, _) = _profile_cells(profile, v)
        ours[v].update({"params_M": p_m, "gflops": gf})
    cols = ["Metric", "Paper baseline", "Paper full", "Paper Δ", "Ours baseline", "Ours full", "Ours Δ", "Comparable"]
    csv_cols = ["metric", "paper_baseline", "paper_full", "ours_baseline", "ours_full", "comparable"]
    rows, csv_rows = [], []
    for key, label, ok in (("AP", "AP (%)", ap_ok), ("params_M", "Params (M)", prof_ok), ("gflops", "GFLOPs", prof_ok)):
        pb, pf = PAPER["baseline"][key], PAPER["full"][key]
        ob, of = ours["baseline"].get(key), ours["full"].get(key)
        delta = f"{of - ob:+.2f}" if _good(ob) and _good(of) else "n/a"
        rows.append([label, f"{pb:.1f}", f"{pf:.1f}", f"{pf - pb:+.1f}", _fmt2(ob), _fmt2(of), delta, "yes" if ok else "NO"])
        csv_rows.append([key, pb, pf, ob if _good(ob) else "", of if _good(of) else "", ok])
    src = data.get("source") or "unknown"
    fp = (data.get("fingerprint") or "")[:12] or "n/a"
    notes = ["Paper: COCO val2017, YOLOv8-S, 640 px. "
             f"Ours: data source '{src}' (fingerprint {fp}, val images {(data.get('counts') or {}).get('val', 'n/a')}), "
             f"trained scale '{trained.get('scale', 'n/a')}' at {trained.get('imgsz', 'n/a')} px."]
    if not ap_ok:
        notes.append("NOT COMPARABLE: our AP is measured on different data/model/input size than the paper's; "
                     "only the direction of the differences can be compared.")
    if not prof_ok:
        notes.append("Params/GFLOPs not comparable unless profiled at scale s, 640 px, 80 classes.")
    return Table("paper", "Published numbers (paper) beside ours", cols, rows, csv_cols, csv_rows, notes)
