"""heta-lite batch: explain many prompts with one loaded model (JSONL in, JSONL out).

Input lines: {"prompt": ..., "target_pos"?: t, "target_gen"?: k, "method"?: name, "id"?: ...}.
Each output line is a report (or {"id", "line", "error"} for a bad line, which is skipped).
Re-running appends only the lines not yet done (by id, or line number without one).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .common import add_model_args, add_settings_args, cache_from_args, settings_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("batch", help="explain every prompt of a JSONL file")
    p.add_argument("--input", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--max-new-tokens", type=int, default=20)
    add_model_args(p)
    add_settings_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..engine import explain
    from ..errors import HetaError, InputError
    from ..models import load_model
    from ..report import Report
    from ..targets import TargetSpec

    src = Path(args.input)
    if not src.is_file():
        raise InputError(f"Input file {src} does not exist.", "input")
    lines = src.read_text(encoding="utf-8").splitlines()
    out = Path(args.out)
    done = set()
    if out.exists():
        for line in out.read_text(encoding="utf-8").splitlines():
            try:
                done.add(json.loads(line)["batch_id"])
            except (ValueError, KeyError):
                pass
    settings = settings_from_args(args)
    lm = load_model(args.model, device=args.device, quantization=args.quant)
    cache = cache_from_args(args)
    ok = bad = 0
    t0 = time.monotonic()
    todo = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    with open(out, "a", encoding="utf-8") as fh:
        for i, (n, line) in enumerate(todo, 1):
            if f"line-{n}" in done:  # a bad line already reported
                continue
            try:
                obj = json.loads(line)
                if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str):
                    raise InputError("each line needs a JSON object with a string 'prompt'")
                bid = str(obj.get("id", f"line-{n}"))
                if bid in done:
                    continue
                target = TargetSpec(position=obj.get("target_pos"), generated=obj.get("target_gen"),
                                    max_new_tokens=args.max_new_tokens)
                rep = Report.from_explanation(explain(lm, obj["prompt"], target, settings,
                                                      method=obj.get("method", "heta"), cache=cache))
                rep.document["batch_id"] = bid
                fh.write(rep.to_json(indent=None) + "\n")
                ok += 1
            except (ValueError, HetaError, TypeError) as err:
                msg = str(err).splitlines()[0] if str(err) else type(err).__name__
                fh.write(json.dumps({"batch_id": f"line-{n}", "line": n, "error": msg}) + "\n")
                print(f"\nline {n}: skipped: {msg}", file=sys.stderr)
                bad += 1
            fh.flush()
            el = time.monotonic() - t0
            print(f"\r{i}/{len(todo)} ETA {el / i * (len(todo) - i):.0f} s", end="", file=sys.stderr, flush=True)
    print(f"\n{ok} explained, {bad} bad lines skipped -> {out}")
    return 0
