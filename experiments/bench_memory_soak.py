"""Memory over many sequential explanations: RSS (and VRAM on a GPU) at start and end.

    python -m experiments.bench_memory_soak --count 200 --quality fast

Writes experiments/results/memory_soak_<device>.json and .md.
"""
from __future__ import annotations

import argparse
import gc
import sys

import numpy as np
import torch

from experiments.common import forward_backward_seconds, write_results
from heta_lite import HetaSettings, TargetSpec
from heta_lite.engine import explain
from heta_lite.models import load_model
from heta_lite.profiling import snapshot

PROMPTS = ["The capital of France is Paris, and the capital of Spain is",
           "Once upon a time there was a little girl who lived in a village near the",
           "To make a cup of tea, first boil the",
           "The cat sat on the mat because it was"]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--quality", default="fast")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    lm = load_model(args.model)
    s = HetaSettings.preset(args.quality)
    rss, vram, ratios, seconds = [], [], [], []
    for i in range(args.count):
        p = PROMPTS[i % len(PROMPTS)]
        exp = explain(lm, p, TargetSpec(position=3 + i % 5, chat=False), s)  # every prompt has >= 9 tokens
        seconds.append(exp.timings["attribution_total"])
        if i < 20:  # the time unit: this context's forward+backward, measured in this run
            ids = exp.context.input_ids
            ratios.append(seconds[-1] / forward_backward_seconds(lm, ids, exp.context.target_id))
        if i % 10 == 0 or i == args.count - 1:
            gc.collect()
            snap = snapshot()
            rss.append((i, snap.rss_bytes))
            vram.append((i, snap.torch_allocated_bytes))
            print(f"{i + 1}/{args.count} rss {snap.rss_bytes / 2**20:.0f} MiB", file=sys.stderr, flush=True)
    # growth: compare the median of the first and last quarter of samples (after warm-up)
    vals = np.array([r for _, r in rss], dtype=float)
    q = max(1, len(vals) // 4)
    first, last = float(np.median(vals[1:q + 1])), float(np.median(vals[-q:]))
    growth = (last - first) / first
    dev = "cuda" if lm.device.type == "cuda" else "cpu"
    rows = [["RSS MiB", vals[0] / 2**20, vals[-1] / 2**20, first / 2**20, last / 2**20, growth * 100]]
    if vram[0][1] is not None:
        v = np.array([x for _, x in vram], dtype=float)
        rows.append(["torch allocated MiB", v[0] / 2**20, v[-1] / 2**20, np.median(v[1:q + 1]) / 2**20,
                     np.median(v[-q:]) / 2**20, (np.median(v[-q:]) - np.median(v[1:q + 1])) / max(1, np.median(v[1:q + 1])) * 100])
    cmd = "python -m experiments.bench_memory_soak " + " ".join(argv if argv is not None else sys.argv[1:])
    write_results(f"memory_soak_{dev}", {"count": args.count, "quality": args.quality, "rss_samples": rss,
                                         "vram_samples": vram, "rss_growth_fraction": growth,
                                         "seconds_p50": float(np.median(seconds)),
                                         "x_forward_backward_p50_first_20": float(np.median(ratios))},
                  ["memory", "after 1st", "after last", "median 1st quarter", "median last quarter", "growth %"],
                  rows, cmd.strip(), notes="Growth compares medians of the first and last quarter of samples "
                                           "(sampled every 10 explanations, after gc). One explanation took "
                                           f"{np.median(seconds):.2f} s p50, {np.median(ratios):.1f}x its context's "
                                           "forward+backward (median of the first 20, measured in this run).")


if __name__ == "__main__":
    main()
