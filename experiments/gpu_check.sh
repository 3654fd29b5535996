#!/usr/bin/env bash
# GPU check (issue #16 item 4): HETA on a Qwen2.5-3B-shaped model with random weights (the published
# config, no download) at n = 128 and 512 tokens, in bf16, 8-bit and 4-bit (bitsandbytes), through
# the fast, balanced and accurate presets, 5 seeds each. Writes experiments/results/gpu_check/
# gpu_check.json and gpu_check.md (p50/p95 latency, x one forward+backward, peak VRAM, HVP-path
# agreement, frame/sink diagnostics). A cell that fails (out of memory, a timeout) is recorded with
# its error and the run goes on. Run it as is from anywhere:
#
#     experiments/gpu_check.sh
#
# Extra arguments go to `python -m experiments.gpu_check` and override the defaults, e.g.
#     experiments/gpu_check.sh --budget-s 600       # stop starting cells after ~10 minutes (modes share it)
#     experiments/gpu_check.sh --modes 4bit --n 128 --runs 3
#     experiments/gpu_check.sh --tiny               # the CPU smoke run the tests use (seconds)
# Needs: a CUDA GPU (~16 GB free for bf16 at n = 512; more for accurate), the project installed with
# its [quant] extra (bitsandbytes), ~6.2 GB of free disk for the quantized modes' model folder
# (a temporary folder, deleted at the end; --work-dir DIR to choose it). PYTHON=... picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
OUT=experiments/results/gpu_check  # the default of --out; a later --out in "$@" wins (argparse: last one)
NAME=gpu_check
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --out) OUT="${args[$((i + 1))]:-$OUT}" ;;
    --out=*) OUT="${args[$i]#--out=}" ;;
    --tiny) NAME=gpu_check_tiny ;;
  esac
done
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac  # a relative --out is relative to the repository root
if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu_check.sh: torch sees no CUDA GPU (only --tiny, or --allow-cpu, will run)." >&2
fi
export PYTHONUNBUFFERED=1
start=$(date +%s)
set +e
"$PYTHON" -m experiments.gpu_check --out "$OUT" "$@"
rc=$?
set -e
if [ -f "$OUT/$NAME.json" ] && [ "$(stat -c %Y "$OUT/$NAME.json")" -ge "$start" ]; then  # written by this run
  echo "gpu_check.sh: results in $OUT/$NAME.json and $OUT/$NAME.md (exit status $rc)"
else
  echo "gpu_check.sh: no results written (exit status $rc)" >&2
fi
exit $rc
