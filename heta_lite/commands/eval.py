"""heta-lite eval: faithfulness of methods over a dataset (JSONL of ours, or the authors' JSON)."""
from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_model_args, add_settings_args, settings_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="faithfulness evaluation of methods over a dataset",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--methods", default="heta,integrated_gradients,occlusion,attention,rollout,saliency",
                   help="comma-separated registered methods")
    p.add_argument("--dataset", required=True, help="JSONL (prompt, answer, segments) or the authors' JSON")
    p.add_argument("--limit", type=int, help="first N items only")
    p.add_argument("--draws", type=int, default=5, help="random draws for the random baselines")
    p.add_argument("--ig-steps", type=int, default=32, help="integrated gradients: points on the path")
    p.add_argument("--out", required=True, help="output folder (re-running resumes)")
    add_model_args(p)
    add_settings_args(p)
    p.set_defaults(func=run, quality="fast")


def run(args) -> int:
    from ..errors import InputError
    from ..faithfulness.datasets import load_items
    from ..faithfulness.evaluate import evaluate
    from ..methods import get_method
    from ..models import load_model

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in methods:
        get_method(m)
    items, skipped = load_items(args.dataset)
    for s in skipped:
        print(f"skipped {s}")
    if not items:
        raise InputError(f"No usable items in {args.dataset}.", "dataset")
    items = items[: args.limit] if args.limit else items
    lm = load_model(args.model, device=args.device, quantization=args.quant)
    if args.ig_steps < 1:
        raise InputError("--ig-steps must be >= 1.", "ig_steps")
    settings = settings_from_args(args)
    settings = settings.replace(extra={**settings.extra, "ig_steps": args.ig_steps})
    summary = evaluate(lm, items, methods, settings, Path(args.out), draws=args.draws)
    print((Path(args.out) / "summary.md").read_text())
    print(f"{summary['items']} items; results in {args.out}")
    return 0
