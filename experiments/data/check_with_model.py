"""How often the offline model predicts each evaluation item's target (teacher-forced answer token).

    .venv/bin/python -m experiments.data.check_with_model experiments/data/dsa_qa.jsonl [--model smollm2-135m]

Prints per-item rank of the target token and the top-1 / top-5 rates; the evaluation reports
items outside the top-5 separately, so this is how the sets were checked, not a filter.
"""
from __future__ import annotations

import argparse
import json
import sys

import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("datasets", nargs="+")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--json", help="write per-item ranks here")
    args = ap.parse_args(argv)
    from heta_lite.faithfulness.datasets import load_items
    from heta_lite.faithfulness.evaluate import target_position
    from heta_lite.models import load_model
    from heta_lite.targets import TargetSpec, build_context

    lm = load_model(args.model, device="cpu")
    out = {}
    for path in args.datasets:
        items, skipped = load_items(path)
        ranks = []
        for it in items:
            full = build_context(lm.model, lm.tokenizer, it.text, TargetSpec(position=1), 512)
            ctx = full.with_target(target_position(full, it.answer_start))
            with torch.no_grad():
                logits = lm.model(torch.tensor([ctx.input_ids]), use_cache=False, logits_to_keep=1).logits[0, -1]
            rank = int((logits > logits[ctx.target_id]).sum()) + 1
            top = lm.tokenizer.decode([int(logits.argmax())])
            ranks.append(rank)
            out[it.id] = rank
            print(f"{it.id}\t{rank}\t{ctx.tokens[ctx.target_pos].text!r}\ttop1={top!r}", file=sys.stderr)
        n = len(ranks)
        print(f"{path}: {n} items ({len(skipped)} skipped), top-1 {sum(r == 1 for r in ranks)}/{n}, "
              f"top-5 {sum(r <= 5 for r in ranks)}/{n}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
