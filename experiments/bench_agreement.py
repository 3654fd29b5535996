"""How far the cheaper presets are from 'accurate' (the paper's setting): Spearman rank
correlation and top-5 overlap, per component and for the final score, on evaluation prompts.

    python -m experiments.bench_agreement --limit 12

Writes experiments/results/agreement.json and .md.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from experiments.common import forward_backward_seconds, write_results
from heta_lite.agreement import spearman, top_k_overlap
from heta_lite import HetaSettings, TargetSpec
from heta_lite.engine import explain_context, make_context
from heta_lite.models import load_model

PROMPTS = [
    "The capital of France is",
    "Water boils at a temperature of 100 degrees",
    "Alice gave Bob a book because he wanted something to read. Who wanted something to read?",
    "def add(a, b):\n    return",
    "Photosynthesis mainly takes place in the leaves of the plant. Where does photosynthesis take place?",
    "The opposite of hot is",
    "Two plus three equals",
    "The largest planet in our solar system is",
    "My sister lives in Madrid, so she speaks",
    "The author of Romeo and Juliet is",
    "The chemical symbol for gold is",
    "Monday, Tuesday, Wednesday,",
]


def load_prompts(path: str | None) -> list[str]:
    if not path:
        return PROMPTS
    items = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return [it.get("prompt") or it.get("input_text") for it in items]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--prompts", help="JSONL file with a 'prompt' field (default: built-in list)")
    ap.add_argument("--limit", type=int, default=12)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    lm = load_model(args.model)
    prompts = load_prompts(args.prompts)[: args.limit]
    per = {q: {c: {"spearman": [], "top5": []} for c in ("final", "M", "S", "I")} for q in ("fast", "balanced")}
    times = {q: [] for q in ("fast", "balanced", "accurate")}
    ratios = {q: [] for q in times}  # each time over the same context's forward+backward
    for k, prompt in enumerate(prompts):
        ctx = make_context(lm, prompt, TargetSpec(generated=0, max_new_tokens=1), HetaSettings())
        scored = np.asarray(ctx.scored)
        forward_backward_seconds(lm, ctx.input_ids, ctx.target_id)  # warm-up
        fb = float(np.median([forward_backward_seconds(lm, ctx.input_ids, ctx.target_id) for _ in range(3)]))
        acc = explain_context(lm, ctx, HetaSettings.preset("accurate"))
        times["accurate"].append(acc.timings["attribution_total"])
        ratios["accurate"].append(acc.timings["attribution_total"] / fb)
        for q in ("fast", "balanced"):
            exp = explain_context(lm, ctx, HetaSettings.preset(q))
            times[q].append(exp.timings["attribution_total"])
            ratios[q].append(exp.timings["attribution_total"] / fb)
            pairs = {"final": (exp.scores, acc.scores)}
            pairs.update({c: (exp.result.components[c].normalised, acc.result.components[c].normalised)
                          for c in ("M", "S", "I")})
            for c, (a, b) in pairs.items():
                per[q][c]["spearman"].append(spearman(a[scored], b[scored]))
                per[q][c]["top5"].append(top_k_overlap(a[scored], b[scored], 5))
        print(f"{k + 1}/{len(prompts)} n={ctx.target_pos} scored={scored.sum()}", file=sys.stderr, flush=True)
    rows, summary = [], {}
    for q in ("fast", "balanced"):
        for c in ("final", "M", "S", "I"):
            sp, t5 = np.nanmean(per[q][c]["spearman"]), np.mean(per[q][c]["top5"])
            summary[f"{q}/{c}"] = {"spearman_mean": float(sp), "top5_overlap_mean": float(t5),
                                   "spearman_min": float(np.nanmin(per[q][c]["spearman"]))}
            rows.append([q, c, float(sp), float(np.nanmin(per[q][c]["spearman"])), float(t5)])
    for q, ts in times.items():
        summary[f"{q}/mean_seconds"] = float(np.mean(ts))
        summary[f"{q}/mean_x_forward_backward"] = float(np.mean(ratios[q]))
    cmd = "python -m experiments.bench_agreement " + " ".join(argv if argv is not None else sys.argv[1:])
    write_results("agreement", {"model": lm.describe(), "prompts": len(prompts), "summary": summary, "per_item": per},
                  ["preset", "component", "Spearman vs accurate (mean)", "Spearman (min)", "top-5 overlap"], rows,
                  cmd.strip(), notes=("Mean attribution time: " + ", ".join(
                      f"{q} {np.mean(t):.1f} s ({np.mean(ratios[q]):.1f}x the same context's forward+backward)"
                      for q, t in times.items())
                                      + ". M is computed the same way in every preset, so its agreement is 1 by "
                                        "construction."))


if __name__ == "__main__":
    main()
