"""heta-lite quant-compare: the same explanations in several quantization modes, compared.

Plugged into the core CLI through the `heta_lite.commands` entry point (pyproject.toml)."""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from heta_lite.settings import FRAMES, GATES, HetaSettings


def add_parser(sub) -> None:
    p = sub.add_parser("quant-compare", help="compare HETA across quantization modes (speed, memory, agreement)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="auto", help="short name, hub id or folder")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if present)")
    p.add_argument("--modes", default="none,8bit,4bit-nf4",
                   help="comma-separated modes; the first is the reference (none, 8bit, 4bit-nf4, 4bit-fp4, *-dq)")
    p.add_argument("--dataset", required=True, help="JSONL (prompt, answer[, segments]) or the authors' JSON")
    p.add_argument("--limit", type=int, help="first N items only")
    p.add_argument("--presets", default="fast,balanced", help="comma-separated quality presets")
    p.add_argument("--seeds", type=int, default=3, help="probe seeds for the Hessian-stability part (0: skip)")
    p.add_argument("--no-faithfulness", action="store_true", help="skip the deletion AOPC per mode")
    p.add_argument("--draws", type=int, default=5, help="random draws for the deletion baseline")
    p.add_argument("--frame", choices=FRAMES, default=HetaSettings.frame, help="frame tokens (docs/method.md)")
    p.add_argument("--gate", choices=GATES, default=HetaSettings.gate, help="rollout of the gate M (docs/method.md)")
    p.add_argument("--out", required=True, help="output folder (compare.json, compare.md, *.png)")
    p.set_defaults(func=run)


def run(args) -> int:
    from heta_lite.errors import InputError
    from heta_lite.faithfulness.datasets import load_items
    from heta_lite.quantization.modes import QuantMode
    from heta_lite.settings import QUALITIES

    from .compare import CompareConfig, run_compare

    modes = [QuantMode.parse(m).name for m in args.modes.split(",") if m.strip()]
    if len(modes) < 2 or len(set(modes)) != len(modes):
        raise InputError("--modes needs at least two different modes, the reference first (e.g. none,8bit,4bit).",
                         "modes")
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    bad = [p for p in presets if p not in QUALITIES]
    if bad or not presets:
        raise InputError(f"--presets must name some of {QUALITIES}, got {args.presets!r}.", "presets")
    if args.seeds < 0 or args.seeds > 32:
        raise InputError("--seeds must be between 0 and 32.", "seeds")
    items, skipped = load_items(args.dataset)
    for s in skipped:
        print(f"skipped {s}", file=sys.stderr)
    items = items[: args.limit] if args.limit else items
    if not items:
        raise InputError(f"No usable items in {args.dataset}.", "dataset")
    cfg = CompareConfig(model=args.model, modes=modes, presets=presets, seeds=args.seeds,
                        faithfulness=not args.no_faithfulness, draws=args.draws, device=args.device,
                        frame=args.frame, gate=args.gate)
    total = len(modes) * len(presets) * len(items)
    start, done = time.monotonic(), [0]

    def tick(label: str) -> None:
        done[0] += 1
        eta = (time.monotonic() - start) / done[0] * (total - done[0])
        bar = "#" * int(30 * done[0] / total)
        print(f"\r[{bar:<30}] {done[0]}/{total} {label[:36]:<36} ETA {eta / 60:4.1f} min", end="", file=sys.stderr,
              flush=True)

    command = "heta-lite " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[0].endswith("heta-lite") \
        else "heta-lite quant-compare " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in [
            ("model", args.model), ("modes", ",".join(modes)), ("dataset", args.dataset), ("limit", args.limit),
            ("presets", ",".join(presets)), ("seeds", args.seeds), ("out", args.out)] if v is not None)
    summary = run_compare(items, cfg, Path(args.out), command=command, tick=tick)
    print(file=sys.stderr)
    print((Path(args.out) / "compare.md").read_text())
    for f in summary["failed_modes"]:
        print(f"mode {f['mode']} could not run: {f['error']}", file=sys.stderr)
    return 0
