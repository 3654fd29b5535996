"""heta-lite eval: faithfulness of methods over a dataset (JSONL of ours, or the authors' JSON)."""
from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_model_args, add_settings_args, settings_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="faithfulness evaluation of methods over a dataset",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--methods", default="heta,integrated_gradients,occlusion,attention,rollout,saliency",
                   help="comma-separated registered methods, each optionally with overrides: "
                        "heta[gate=last-quarter]")
    p.add_argument("--metrics", choices=["all", "selection"], default="all",
                   help="selection: only what the pre-registered selection rule reads (AOPC zero, Soft-NC, DSA, "
                        "first-token share, check)")
    p.add_argument("--dataset", required=True, help="JSONL (prompt, answer, segments) or the authors' JSON")
    p.add_argument("--limit", type=int,
                   help="first N base items only (each in every selected passage order, after --split)")
    p.add_argument("--orders", choices=["both", "distractor_first", "evidence_first"], default="both",
                   help="passage orders of distractor/evidence items to evaluate (items without those "
                        "segments are always kept)")
    p.add_argument("--split", choices=["all", "dev", "test"], default="all",
                   help="dev: base items with an even number, test: odd (an item and its swap share a half); "
                        "the summary covers that half only")
    p.add_argument("--items", metavar="FILE",
                   help="only the item ids listed in FILE, one per line (experiments/eligible_items.py writes "
                        "the items a table can read)")
    p.add_argument("--draws", type=int, default=5, help="random draws for the random baselines")
    p.add_argument("--out", required=True, help="output folder (re-running resumes)")
    add_model_args(p)
    add_settings_args(p)
    p.set_defaults(func=run, quality="fast")


def run(args) -> int:
    from ..errors import InputError
    from ..faithfulness.datasets import ORDERS, first_base_items, load_items
    from ..faithfulness.evaluate import evaluate
    from ..methods import get_method
    from ..models import load_model

    from ..faithfulness.evaluate import parse_method_spec

    methods = [m.strip() for m in _split_specs(args.methods)]
    for m in methods:
        get_method(parse_method_spec(m)[0])
    orders = ORDERS if args.orders == "both" else (args.orders,)
    split = None if args.split == "all" else args.split
    items, skipped = load_items(args.dataset, orders=orders, split=split)
    for s in skipped:
        print(f"skipped {s}")
    if not items:
        raise InputError(f"No usable items in {args.dataset} (orders: {args.orders}, split: {args.split}).",
                         "dataset")
    items = first_base_items(items, args.limit)
    if args.items:
        path = Path(args.items)
        if not path.is_file():
            raise InputError(f"Items file {path} does not exist.", "items")
        keep = {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}
        items = [it for it in items if it.id in keep]
        print(f"{len(items)} items listed in {path}")
    lm = load_model(args.model, device=args.device, quantization=args.quant)
    settings = settings_from_args(args)
    from .common import cache_from_args

    cache = cache_from_args(args) if args.cache_dir else None  # S and I shared by the gates of one item
    summary = evaluate(lm, items, methods, settings, Path(args.out), draws=args.draws, split=split,
                       metrics=args.metrics, cache=cache)
    print((Path(args.out) / "summary.md").read_text())
    print(f"{summary['items']} items; results in {args.out}")
    return 0


def _split_specs(text: str) -> list[str]:
    """Split on commas outside brackets: 'heta[gate=full,mask=mean],occlusion' -> two specs."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [s for s in (x.strip() for x in out) if s]
