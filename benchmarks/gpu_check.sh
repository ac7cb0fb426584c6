#!/usr/bin/env bash
# One command for a GPU machine (<= 8 minutes on one GPU): do the CUDA paths work?
#
#   benchmarks/gpu_check.sh [work dir]          (default: a new temp folder, removed at the end)
#
# Checks (benchmarks/gpu_checks.py, one summary line each):
#   amp      forward/backward of baseline, csd, rcq, full (YOLOv8-S, 640 px) under fp16 autocast: finite
#   sweep    a 2-epoch tiny CUDA training of `full` through `alignrank sweep` (Ray, one GPU, AMP)
#   profile  `alignrank profile`'s CUDA fp16 latency of the four variants and their ratios to the baseline
#   ddp      `alignrank train` of `full` on train.device=0,1 (DDP), when >= 2 GPUs are visible
# Exits 1 if any check failed. Without CUDA every check prints "skipped: no CUDA" and it exits 0.
set -u
cd "$(dirname "$0")/.." || exit 1
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python
CHECKS="amp sweep profile ddp"
LIMIT=(amp:240 sweep:480 profile:420 ddp:480)  # per-check timeout, seconds

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  for c in $CHECKS; do echo "$c: skipped: no CUDA"; done
  exit 0
fi

WORK="${1:-}"
if [ -z "$WORK" ]; then WORK="$(mktemp -d)"; trap 'rm -rf "$WORK"' EXIT; fi
failed=0
start=$(date +%s)
for c in $CHECKS; do
  t=300
  for l in "${LIMIT[@]}"; do [ "${l%%:*}" = "$c" ] && t="${l##*:}"; done
  timeout "$t" "$PY" benchmarks/gpu_checks.py "$c" "$WORK/$c" >"$WORK/$c.out" 2>"$WORK/$c.log"
  rc=$?
  line="$(tail -n 1 "$WORK/$c.out")"
  if [ "$rc" = 124 ]; then line="$c: FAILED: timed out after ${t} s (log: $WORK/$c.log)"; fi
  if [ "$rc" != 0 ] && [ "${line#*: FAILED}" = "$line" ]; then
    line="$c: FAILED: exit $rc ($(tail -n 1 "$WORK/$c.log" 2>/dev/null | cut -c1-200))"
  fi
  echo "$line"
  case "$line" in *": FAILED"*) failed=1 ;; esac
done
echo "gpu_check: $(( $(date +%s) - start )) s, $([ $failed = 0 ] && echo 'all passed' || echo 'FAILED')"
exit $failed
