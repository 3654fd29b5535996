#!/usr/bin/env bash
# The pre-registered frame/gate evaluation (experiments/results/README.md, "Faithfulness v2").
#   experiments/run_eval_v2.sh dev    # selection metrics, the six HETA configurations, dev half
#   experiments/run_eval_v2.sh test   # every method, all metrics, test half (after select_default.py)
# Resumable: a re-run skips finished (item, method) pairs. One process per frame, one torch thread
# each, so the two cores work on both frames at once. HETA's S and I are cached per item, so the
# three gates of an item cost one S and one I. Only the items a table can read are run: those whose
# target is in the top-5 (rank <= 7, a margin) under both frames, from one forward per item and frame
# (experiments/eligible_items.py; every item's ranks are kept in $OUT/eligibility.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
HALF=${1:?usage: run_eval_v2.sh dev|test}
OUT=experiments/results/eval_v2/$HALF
PY=${PY:-.venv/bin/python}
GATES="heta[gate=full],heta[gate=last-quarter],heta[gate=norm-mixing]"
if [ "$HALF" = dev ]; then
  METHODS=$GATES; METRICS=selection
else
  METHODS="$GATES,heta-M[gate=full],heta-M[gate=last-quarter],heta-M[gate=norm-mixing],heta-S,heta-I,attention,rollout,saliency,input_x_gradient,integrated_gradients,occlusion"
  METRICS=all
fi
AUTHORS=../shared/data/heta_qa_dataset_100_unique.json
run_frame() {
  local frame=$1
  for set in dsa_qa plain authors; do
    case $set in
      dsa_qa) data=experiments/data/dsa_qa.jsonl ;;
      plain) data=experiments/data/plain.jsonl ;;
      authors) data=$AUTHORS; [ -f "$data" ] || continue ;;
    esac
    OMP_NUM_THREADS=1 $PY -m heta_lite.cli eval --dataset "$data" --methods "$METHODS" \
      --metrics $METRICS --split "$HALF" --items "$OUT/$set.items" \
      --quality balanced --frame "$frame" --model smollm2-135m --device cpu \
      --cache-dir "$WORK/cache-$frame" --out "$OUT/frame-$frame/$set" > "$WORK/$frame-$set.log" 2>&1
  done
}
WORK=.heta-cache/eval_v2-$HALF  # caches and progress logs: not results, not committed
mkdir -p "$OUT/frame-auto" "$OUT/frame-none" "$WORK"
[ -f "$OUT/eligibility.jsonl" ] || OMP_NUM_THREADS=2 $PY -m experiments.eligible_items "$HALF" --out "$(dirname "$OUT")"
run_frame auto &
run_frame none &
wait
