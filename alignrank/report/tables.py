"""Result tables of the paper, reproduced from our runs: mean +- std over seeds, paired CIs to the baseline.

* Table 1 (main results): AP, AP50, AP75, APs, APm, APl (%), params, GFLOPs, latency per variant;
* Table 2 (ablation): Kendall tau, Spearman rho, top-1 miss rate / IoU gap, ECE, the one-to-many branch's
  top-k AP without NMS, AP with NMS and, when a variant is NMS-free, its one-to-one branch's AP without NMS;
* the paper's published numbers beside ours: per row what is compared (AP difference, params/GFLOPs
  ratio), whether the setting makes absolute values comparable and whether the direction agrees.

The paired-difference and power tables are in :mod:`alignrank.report.paired`.

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

from alignrank.report.units import is_percent

MAIN_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
ABLATION_METRICS = ("kendall_tau", "spearman_rho", "top1_miss_rate", "top1_iou_gap", "ece", "dece", "nms_free_AP")
LABELS = {"kendall_tau": "Kendall τ", "spearman_rho": "Spearman ρ", "top1_miss_rate": "top-1 miss",
          "top1_iou_gap": "top-1 IoU gap", "ece": "ECE", "dece": "D-ECE", "nms_free_AP": "top-k AP w/o NMS, one-to-many",
          "o2o_AP": "AP w/o NMS, one-to-one"}
ONE2ONE_METRIC = "o2o_AP"  # an NMS-free model's one-to-one branch: a column of Table 2 when some run has it
LOWER_IS_BETTER = {"ece", "dece", "top1_miss_rate", "top1_iou_gap"}
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


def seed_values(runs: Mapping, variant: str, metric: str) -> dict[int, float]:
    """``{seed: value}`` of one metric of one variant in report units (AP-like x100), finite values only."""
    out = {}
    for seed, m in (runs.get(variant) or {}).items():
        v = (m or {}).get(metric)
        if isinstance(v, (int, float)) and v is not None and math.isfinite(v):
            out[seed] = float(v) * (100.0 if is_percent(metric) else 1.0)
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


def digits(metric: str) -> int:
    """Decimals shown: 2 for percentages, 3 otherwise."""
    return 2 if is_percent(metric) else 3


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
            mu, sd, _ = mean_std(seed_values(runs, v, m).values())
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
    if any(seed_values(runs, v, ONE2ONE_METRIC) for v in variants):  # beside the NMS AP when present
        metrics.append(ONE2ONE_METRIC)
    labels = {**LABELS, "AP": "AP with NMS, one-to-many"}  # (Table 1's AP; beside the NMS-free numbers)
    cols = ["Variant", "n"] + [labels.get(m, m) + (" (%)" if is_percent(m) else "") for m in metrics]
    csv_cols = ["variant", "n"] + [f"{m}_{s}" for m in metrics for s in ("mean", "std")]
    rows, csv_rows = [], []
    for v in variants:
        n = len(runs.get(v) or {})
        cells, nums = [v, str(n)], [v, n]
        for m in metrics:
            mu, sd, _ = mean_std(seed_values(runs, v, m).values())
            cells.append(fmt_ms(mu, sd, digits(m))), nums.extend([mu, sd])
        rows.append(cells), csv_rows.append(nums)
    notes = ["Mean ± sample std over seeds (n = seeds); APs in %. "
             "τ/ρ: score vs IoU of the pre-NMS candidates of each ground truth (higher is better); top-1 miss/IoU gap "
             "ECE (equal-mass bins) and D-ECE (netcal's detection ECE over score and box, equal-width bins): lower is "
             "better; top-k AP w/o NMS, one-to-many: the one-to-many branch's top-k candidates by score, no NMS (not a "
             "detector's NMS-free AP); AP with NMS, one-to-many: Table 1's AP."]
    if ONE2ONE_METRIC in metrics:
        notes.append("AP w/o NMS, one-to-one: an NMS-free model's one-to-one branch (YOLOv10's dual assignment), its "
                     "top-k detections by score as they are, no NMS; n/a for a model without that branch.")
    return Table("ablation", "Table 2: rank consistency, calibration and NMS-free decoding", cols, rows, csv_cols, csv_rows,
                 notes)


def _good(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _fmt2(x: float | None) -> str:
    return f"{x:.2f}" if _good(x) else "n/a"


def _direction(paper: float, ours: float | None) -> str:
    if not _good(ours):
        return "n/a"
    def sign(x: float) -> str:
        return "larger" if x > 0 else ("smaller" if x < 0 else "equal")

    return "same" if sign(paper) == sign(ours) else f"OPPOSITE (paper {sign(paper)}, ours {sign(ours)})"


def paper_table(runs: Mapping, profile: Mapping | None, data: Mapping | None, trained: Mapping | None) -> Table:
    """The paper's published numbers beside ours; per row what is compared and whether it agrees.

    AP is compared as the difference full − baseline, params and GFLOPs as the ratio full / baseline.
    "setting" says whether absolute values are comparable (same data, scale, input size); "direction"
    whether full moves the number the same way as in the paper.
    """
    data, trained = data or {}, trained or {}
    ap_ok = (data.get("source") == "coco2017" and (data.get("counts") or {}).get("val", 0) >= 5000
             and trained.get("scale") == "s" and trained.get("imgsz") == 640)
    ps = profile_settings(profile)
    prof_ok = bool(profile) and ps.get("scale") == "s" and ps.get("imgsz") == 640 and ps.get("nc", 80) == 80
    ours = {v: {"AP": mean_std(seed_values(runs, v, "AP").values())[0]} for v in ("baseline", "full")}
    for v in ("baseline", "full"):
        _, (p_m, gf, _, _) = _profile_cells(profile, v)
        ours[v].update({"params_M": p_m, "gflops": gf})
    cols = ["Metric", "Paper baseline", "Paper full", "Ours baseline", "Ours full", "Compared", "Paper", "Ours",
            "Setting comparable", "Direction"]
    csv_cols = ["metric", "paper_baseline", "paper_full", "ours_baseline", "ours_full", "compared", "paper_value",
                "ours_value", "setting_comparable", "direction"]
    rows, csv_rows = [], []
    for key, label, ok in (("AP", "AP (%)", ap_ok), ("params_M", "Params (M)", prof_ok), ("gflops", "GFLOPs", prof_ok)):
        pb, pf = PAPER["baseline"][key], PAPER["full"][key]
        ob, of = ours["baseline"].get(key), ours["full"].get(key)
        both = _good(ob) and _good(of)
        if key == "AP":
            what, pv, ov = "Δ full − baseline", pf - pb, (of - ob if both else None)
            cells = [f"{pv:+.2f}", f"{ov:+.2f}" if _good(ov) else "n/a"]
            direction = _direction(pv, ov)
        else:
            what, pv, ov = "ratio full / baseline", pf / pb, (of / ob if both and ob else None)
            cells = [f"{pv:.3f}", f"{ov:.3f}" if _good(ov) else "n/a"]
            direction = _direction(pv - 1, ov - 1 if _good(ov) else None)
        rows.append([label, f"{pb:.1f}", f"{pf:.1f}", _fmt2(ob), _fmt2(of), what, *cells, "yes" if ok else "NO", direction])
        csv_rows.append([key, pb, pf, ob if _good(ob) else "", of if _good(of) else "", what, pv,
                         ov if _good(ov) else "", ok, direction])
    src = data.get("source") or "unknown"
    fp = (data.get("fingerprint") or "")[:12] or "n/a"
    notes = ["Paper: COCO val2017, YOLOv8-S, 640 px. "
             f"Ours: data source '{src}' (fingerprint {fp}, val images {(data.get('counts') or {}).get('val', 'n/a')}), "
             f"trained scale '{trained.get('scale', 'n/a')}' at {trained.get('imgsz', 'n/a')} px.",
             "Compared: AP as the difference full − baseline, params/GFLOPs as the ratio full / baseline; "
             "'Direction' says whether full changes the number the same way in both."]
    if not ap_ok:
        notes.append("NOT COMPARABLE: our AP is measured on different data/model/input size than the paper's; "
                     "only the direction of the differences can be compared.")
    if not prof_ok:
        notes.append("Params/GFLOPs: absolute values not comparable unless profiled at scale s, 640 px, 80 classes.")
    return Table("paper", "Published numbers (paper) beside ours", cols, rows, csv_cols, csv_rows, notes)
