"""Latency and memory per preset and context length, with ratios to the plain reference
implementation and to one forward+backward on the same input, all measured in one run; the
memory estimate shown before a run (heta_lite/methods/heta/cost.estimate_memory) beside the
measured peak it predicts (what the run adds above the resident model).

    python -m experiments.bench_latency --lengths 16,64,128,256 --runs 5 --reference-max-n 64 --threads 1

Writes experiments/results/latency_<device>.json and .md.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from experiments.common import forward_backward_seconds, ids_of_length, pct, release_freed_memory, write_results
from heta_lite import HetaSettings
from heta_lite.control import JobControl
from heta_lite.methods.heta.cost import estimate_memory
from heta_lite.methods import MethodInput, get_method
from heta_lite.models import load_model
from heta_lite.profiling import PeakMemory, StageTimer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def run_engine(lm, ids, quality):
    X = lm.model.get_input_embeddings()(torch.tensor(ids[:-1], device=lm.device)).detach()
    scored = torch.ones(len(ids) - 1, dtype=torch.bool, device=lm.device)
    inp = MethodInput(lm=lm, input_ids=torch.tensor(ids[:-1]), X=X, target_id=ids[-1], scored=scored,
                      settings=HetaSettings.preset(quality), control=JobControl(), timer=StageTimer())
    release_freed_memory()
    t0 = time.perf_counter()
    with PeakMemory(interval=0.01) as peak:
        res = get_method("heta").attribute(inp)
    if lm.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, res, inp.timer.seconds, peak


def forward_backward(lm, ids) -> float:
    return forward_backward_seconds(lm, ids[:-1], ids[-1])


def run_reference(lm, ids, quality) -> float:
    from tests.reference.heta_reference import reference_heta

    s = HetaSettings.preset(quality)
    if s.information != "exact":  # the reference computes the spec's exact KL
        s = s.replace(information="exact")
    t0 = time.perf_counter()
    reference_heta(lm.model, torch.tensor(ids[:-1], device=lm.device), ids[-1],
                   torch.ones(len(ids) - 1, dtype=torch.bool), estimator=s.estimator, num_probes=s.num_probes,
                   mask=s.mask, seed=s.seed)
    return time.perf_counter() - t0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--lengths", default="16,64,128,256")
    ap.add_argument("--qualities", default="fast,balanced,accurate")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--reference-max-n", type=int, default=64, help="longest n at which the reference runs")
    ap.add_argument("--accurate-max-n", type=int, default=64, help="longest n at which 'accurate' runs")
    ap.add_argument("--reference-runs", type=int, default=1)
    ap.add_argument("--accurate-runs", type=int, default=None, help="runs for 'accurate' (default: --runs)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    ap.add_argument("--name", default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    lm = load_model(args.model)
    rows, records = [], []
    for n in [int(x) for x in args.lengths.split(",")]:
        ids = ids_of_length(lm.tokenizer, n)
        forward_backward(lm, ids)  # warm-up
        fb = [forward_backward(lm, ids) for _ in range(args.runs)]
        fb50 = pct(fb, 50)
        for q in args.qualities.split(","):
            if q == "accurate" and n > args.accurate_max_n:
                continue
            times, stages, peaks, added = [], {}, [], []
            estimated = estimate_memory(lm, n, HetaSettings.preset(q))["peak"]
            runs = args.accurate_runs if (q == "accurate" and args.accurate_runs) else args.runs
            for _ in range(runs):
                dt, _res, st, peak = run_engine(lm, ids, q)
                times.append(dt)
                peaks.append(peak.peak_torch or peak.peak_rss)
                added.append(peak.added_bytes)
                for k, v in st.items():
                    stages.setdefault(k, []).append(v)
            ref = None
            if n <= args.reference_max_n:
                ref = pct([run_reference(lm, ids, q) for _ in range(args.reference_runs)], 50)
            rec = {"n": n, "quality": q, "runs": runs, "p50_s": pct(times, 50), "p95_s": pct(times, 95),
                   "forward_backward_p50_s": fb50, "ratio_to_forward_backward": pct(times, 50) / fb50,
                   "reference_s": ref, "speedup_vs_reference": (ref / pct(times, 50)) if ref else None,
                   "stages_p50_s": {k: pct(v, 50) for k, v in stages.items()},
                   "stages_x_forward_backward": {k: pct(v, 50) / fb50 for k, v in stages.items()},
                   "peak_bytes": max(peaks), "added_peak_bytes": max(added), "estimated_added_bytes": estimated,
                   "estimate_over_measured": estimated / max(1, max(added))}
            records.append(rec)
            rows.append([n, q, rec["p50_s"], rec["p95_s"], rec["ratio_to_forward_backward"],
                         pct(times, 95) / fb50, ref if ref is not None else "-",
                         rec["speedup_vs_reference"] if ref is not None else "-", max(peaks) / 2**20,
                         max(added) / 2**20, estimated / 2**20, rec["estimate_over_measured"]])
            print(rows[-1], flush=True)
    device = "cuda" if lm.device.type == "cuda" else "cpu"
    name = args.name or f"latency_{device}"
    cmd = "python -m experiments.bench_latency " + " ".join(argv if argv is not None else sys.argv[1:])
    write_results(name, {"model": lm.describe(), "results": records},
                  ["n", "quality", "p50 s", "p95 s", "p50 x fwd+bwd", "p95 x fwd+bwd", "reference s",
                   "speed-up vs reference", "peak MiB", "added MiB", "estimated MiB", "estimate / added"],
                  rows, cmd.strip(),
                  notes="x fwd+bwd: the time over one forward+backward of the same input (p50 of --runs), measured in "
                        "the same run. Reference: tests/reference/heta_reference.py (one HVP per probe, one full forward "
                        "per masked copy, exact KL even for 'fast'). Peak: process RSS on CPU, torch peak on GPU; "
                        "added: the peak above what was resident when the explanation began; estimated: "
                        "estimate_memory's peak, the number a job plans with before it runs. Per-stage times (x "
                        "fwd+bwd) are in the JSON.")


if __name__ == "__main__":
    main()
