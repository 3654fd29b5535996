"""What each issue-#17 feature costs, in seconds and in units of one forward (fwd) and one
forward+backward (fwd+bwd) over the same context, measured in one run so the ratios compare:

- anomaly flags (one eager forward with attentions and hidden states), failure risk (its features
  and the logistic model; the lens depth it reads comes from the anomaly forward), head importance
  (one batched forward per layer), correct and compare (two explanations, two logit lenses, one
  forward), a long input (a 10,000-word document: window explanation plus one forward per earlier
  chunk) and the batch endpoint's job (N prompts in one job vs N single explanations).

    OMP_NUM_THREADS=1 python -m experiments.bench_features --threads 1            # SmolLM2 on CPU
    python -m experiments.bench_features --model qwen2.5-3b --device cuda            # on a GPU

Writes experiments/results/bench_features.{json,md}. Wall-clock numbers depend on the machine and
its load; the ratios to fwd and fwd+bwd are what carries over.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable

import torch

from experiments.common import FILLER, forward_backward_seconds, write_results

QUESTION = "What is the capital of Australia?"
CORRECTION = "No, that is not right. Answer with one city name."
BATCH_PROMPTS = ["The capital of France is", "Two plus three equals", "The chemical symbol for gold is",
                 "Monday, Tuesday, Wednesday,"]


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median seconds of `repeats` calls (after one warm-up call) and the last result."""
    out = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quality", default="fast", help="HETA preset of the explanations (correct and compare, batch)")
    ap.add_argument("--words", type=int, default=10_000, help="length of the long document")
    ap.add_argument("--skip", default="", help="comma-separated features to leave out")
    ap.add_argument("--name", default="bench_features", help="results file name (experiments/results/NAME.*)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    skip = set(filter(None, args.skip.split(",")))

    from heta_lite import HetaSettings, TargetSpec
    from heta_lite.anomaly import anomaly_flags
    from heta_lite.engine import explain, make_context
    from heta_lite.heads import head_importance
    from heta_lite.models import load_model
    from heta_lite.risk import failure_risk, features, target_entropy_margin

    lm = load_model(args.model, device=args.device)
    settings = HetaSettings.preset(args.quality)
    ctx = make_context(lm, QUESTION, TargetSpec(generated=0, max_new_tokens=8), settings)
    ids, y = list(ctx.input_ids), ctx.target_id
    n = len(ids)
    x_ids = torch.tensor([ids], device=lm.device)

    def fwd():
        with torch.no_grad():
            return lm.model(input_ids=x_ids, use_cache=False, logits_to_keep=1).logits

    def fwd_bwd():
        return forward_backward_seconds(lm, ids, y)

    rows: list[dict[str, Any]] = []
    t_fwd, _ = timed(fwd, args.repeats)
    t_fb, _ = timed(fwd_bwd, args.repeats)

    def add(name: str, seconds: float, what: str, **extra: Any) -> None:
        rows.append({"feature": name, "seconds": seconds, "x_fwd": seconds / t_fwd, "x_fwd_bwd": seconds / t_fb,
                     "what": what, **extra})
        print(f"{name}: {seconds:.3f} s ({seconds / t_fwd:.1f} fwd, {seconds / t_fb:.1f} fwd+bwd)", flush=True)

    add("forward", t_fwd, f"one no-grad forward over the {n}-token context")
    add("forward+backward", t_fb, "forward and backward of log p(y) to the embeddings")
    t_explain, exp = timed(lambda: explain(lm, QUESTION, TargetSpec(generated=0, max_new_tokens=8), settings), 1)
    add("explanation (HETA " + args.quality + ")", t_explain, "one explanation of the first answer token, for scale")
    if "anomaly" not in skip:
        t, _ = timed(lambda: anomaly_flags(lm, ids, exp.target.prob), args.repeats)
        add("anomaly flags", t, "one eager forward with attentions and hidden states, then thresholds")
    if "risk" not in skip:
        with torch.no_grad():  # the explanation already has these logits: not part of the risk's cost
            logits = lm.model(input_ids=x_ids, use_cache=False, logits_to_keep=1).logits[0, -1]

        def risk():
            e, m = target_entropy_margin(logits)
            f = features(e, m, 10.0, [t.text for t in ctx.context_tokens], exp.normalised, exp.context.scored,
                         ctx.first_content_index, None)
            return failure_risk(lm.name, f)

        t, _ = timed(risk, max(args.repeats, 20))
        add("failure risk", t, "entropy and margin of the logits the explanation has, the features and the "
                               "logistic model (the lens depth it reads comes from the anomaly forward)")
    if "heads" not in skip:
        t, hi = timed(lambda: head_importance(lm, ids, y), args.repeats)
        add("head importance", t, f"{hi.layers} layers x {hi.heads} heads: one batched forward per layer",
            layers=hi.layers)
    if "correction" not in skip:
        from heta_lite.correction import correct_and_compare

        t, _ = timed(lambda: correct_and_compare(lm, QUESTION, CORRECTION, settings, "heta", 8), 1)
        add("correct and compare", t, f"two HETA {args.quality} explanations (before, after), two logit lenses, "
                                      "one forward", x_explanation=t / t_explain)
    if "long" not in skip:
        add_long_input(lm, args, add)
    if "batch" not in skip:
        add_batch(lm, settings, add, t_explain)

    table = [[r["feature"], r["seconds"], r["x_fwd"], r["x_fwd_bwd"], r["what"]] for r in rows]
    write_results(args.name, {"model": lm.name, "context_tokens": n, "quality": args.quality,
                                     "repeats": args.repeats, "rows": rows},
                  ["feature", "seconds", "x fwd", "x fwd+bwd", "what it runs"], table,
                  "python -m experiments.bench_features " + " ".join(argv or []),
                  notes=f"Context: the {n}-token chat prompt of {QUESTION!r} on {lm.name}. Medians of "
                        f"{args.repeats} runs after a warm-up (explanations: one run).")
    return 0


def add_long_input(lm, args, add) -> None:
    """A document of `args.words` words: the window explanation plus one forward per earlier chunk."""
    from heta_lite import HetaSettings, TargetSpec
    from heta_lite.engine import explain
    from heta_lite.profiling import PeakMemory

    words = FILLER.split()
    doc = " ".join(words[i % len(words)] for i in range(args.words)) + " The city is known for its"
    settings = HetaSettings.preset(args.quality, long_input="window")
    with PeakMemory() as peak:
        t0 = time.perf_counter()
        exp = explain(lm, doc, TargetSpec(generated=0, max_new_tokens=1), settings, method="heta")
        t = time.perf_counter() - t0
    from heta_lite.report import Report

    info = Report.from_explanation(exp).to_dict().get("long_input") or {}
    add(f"long input ({args.words:,} words)", t,
        f"HETA {args.quality} on the last window plus one forward per earlier chunk "
        f"({len(info.get('chunks', []))} chunks)", peak_rss_bytes=peak.to_dict().get("peak_rss_bytes"),
        long_input={k: v for k, v in info.items() if k != "chunks"})


def add_batch(lm, settings, add, t_explain: float) -> None:
    """The batch endpoint's job (gui/serving/routes.py, without HTTP) on N prompts vs N single
    explanations of the same prompts: the same work in one job, plus its validation (tokenizing
    every prompt to bound the total) and per-item bookkeeping. No cache, so both really compute."""
    from gui.serving.explain_jobs import _batch_job
    from gui.serving.schemas import ExplainBatchIn
    from gui.state import AppState
    from heta_lite import TargetSpec
    from heta_lite.control import JobControl
    from heta_lite.engine import explain
    from heta_lite.jobs import JobQueue

    def singles():
        return [explain(lm, p, TargetSpec(generated=0, max_new_tokens=1), settings) for p in BATCH_PROMPTS]

    t_single, _ = timed(singles, 1)
    state = AppState(model_name=lm.name, queue=JobQueue())
    state.lm, state.cache = lm, None
    body = ExplainBatchIn(items=[{"prompt": p, "target": {"generated": 0, "max_new_tokens": 1}}
                                 for p in BATCH_PROMPTS], method="heta", quality=settings.quality)
    try:
        t, out = timed(lambda: _batch_job(state, body)(JobControl()), 1)
    finally:
        state.queue.shutdown(wait_s=5)
    assert out["n_ok"] == len(BATCH_PROMPTS), out
    add(f"batch of {len(BATCH_PROMPTS)}", t, f"one job over {len(BATCH_PROMPTS)} prompts (HETA "
        f"{settings.quality}); {len(BATCH_PROMPTS)} single explanations took {t_single:.2f} s",
        x_singles=t / t_single)


if __name__ == "__main__":
    raise SystemExit(main())
