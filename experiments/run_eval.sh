#!/usr/bin/env bash
# The faithfulness results committed under experiments/results/eval_*: every method, fast preset,
# on the offline model. The defaults are the full sets (about 3.5 CPU-hours on 2 cores); set
# LIMIT_DSA / LIMIT_PLAIN / LIMIT_AUTHORS lower for a quick look. Resumable: a re-run skips
# finished (item, method) pairs and rewrites the summaries.
set -euo pipefail
cd "$(dirname "$0")/.."
M=heta,heta-M,heta-S,heta-I,attention,rollout,saliency,input_x_gradient,integrated_gradients,occlusion
LIMIT_DSA=${LIMIT_DSA:-105}
LIMIT_PLAIN=${LIMIT_PLAIN:-55}
LIMIT_AUTHORS=${LIMIT_AUTHORS:-100}
heta-lite eval --dataset experiments/data/dsa_qa.jsonl --methods $M --limit "$LIMIT_DSA" --quality fast \
  --out experiments/results/eval_dsa_qa
heta-lite eval --dataset experiments/data/plain.jsonl --methods $M --limit "$LIMIT_PLAIN" --quality fast \
  --out experiments/results/eval_plain
if [ -f ../shared/data/heta_qa_dataset_100_unique.json ]; then
  heta-lite eval --dataset ../shared/data/heta_qa_dataset_100_unique.json --methods $M --limit "$LIMIT_AUTHORS" \
    --quality fast --out experiments/results/eval_authors_toy
fi
