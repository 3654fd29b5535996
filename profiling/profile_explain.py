"""Where one explanation's time goes: the engine's stages and torch.profiler's top operators,
each also as a multiple of one forward+backward measured in the same run (machines are noisy;
compare ratios, not seconds).

    python -m profiling.profile_explain --model smollm2-135m --n 64 --quality balanced
    python -m profiling.profile_explain --quality fast --method heta --out /tmp/prof

Writes profile_<method>_<quality>_n<n>.{json,md} to --out (default: profiling/results/) and, with
--trace, a Chrome trace (chrome://tracing, Perfetto) beside them. The first run warms caches and
is not profiled; the result cache is off so every run computes.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from heta_lite import HetaSettings, TargetSpec
from heta_lite.engine import explain_context, make_context

TEXT = ("The museum opened a new wing last spring, and visitors came from every town in the valley to see the "
        "paintings, the old maps, the clocks and the ship models that the collectors had given. The guide said "
        "that the oldest clock was made in the city of Prague more than four hundred years ago, and that it "
        "still kept good time, although nobody in the museum knew how to repair it when it stopped. ") * 8


@dataclass
class Profile:
    """One profiled explanation."""

    model: str
    method: str
    quality: str
    n: int
    fwd_bwd_s: float  # one forward + backward of log p(y), same context, same run
    total_s: float
    stages_s: dict[str, float]
    top_ops: list[dict[str, Any]] = field(default_factory=list)  # by self time, CPU or CUDA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        fb = max(self.fwd_bwd_s, 1e-9)
        lines = [f"# {self.method} ({self.quality}), n = {self.n}, {self.model}", "",
                 f"Total {self.total_s:.2f} s = {self.total_s / fb:.1f}x one forward+backward ({self.fwd_bwd_s:.3f} s).",
                 "", "| stage | s | x fwd+bwd |", "|---|---|---|"]
        lines += [f"| {k} | {v:.3f} | {v / fb:.1f} |" for k, v in sorted(self.stages_s.items(), key=lambda kv: -kv[1])]
        lines += ["", "| operator | self s | calls |", "|---|---|---|"]
        lines += [f"| {o['name']} | {o['self_s']:.3f} | {o['calls']} |" for o in self.top_ops]
        return "\n".join(lines) + "\n"


def forward_backward_seconds(lm, ids: list[int]) -> float:
    X = lm.model.get_input_embeddings()(torch.tensor(ids, device=lm.device)).detach().requires_grad_(True)
    _sync(lm)
    t0 = time.perf_counter()
    out = lm.model(inputs_embeds=X[None], use_cache=False, logits_to_keep=1).logits[0, -1]
    torch.log_softmax(out.float(), -1)[0].backward()
    _sync(lm)
    return time.perf_counter() - t0


def _sync(lm) -> None:
    if str(lm.device).startswith("cuda"):
        torch.cuda.synchronize()


def profile_explanation(lm, n: int, settings: HetaSettings, method: str = "heta", top: int = 15,
                        trace: Path | None = None, text: str = TEXT) -> Profile:
    """Profile one explanation with n context tokens (the frame included, as the latency benchmarks
    count them): the target is the token at position n."""
    ids = lm.tokenizer(text)["input_ids"]
    if len(ids) < n + 1:
        raise SystemExit(f"the text has {len(ids)} tokens; pick --n <= {len(ids) - 1}")
    prompt = lm.tokenizer.decode(ids[: n + 1])
    ctx = make_context(lm, prompt, TargetSpec(position=n, chat=False), settings)
    explain_context(lm, ctx, settings, method)  # warm-up: allocator, kernels, lazy imports
    fb = sorted(forward_backward_seconds(lm, ctx.input_ids) for _ in range(3))[1]
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities, record_shapes=False) as prof:
        t0 = time.perf_counter()
        exp = explain_context(lm, ctx, settings, method)
        _sync(lm)
        total = time.perf_counter() - t0
    if trace is not None:
        prof.export_chrome_trace(str(trace))
    cuda = torch.cuda.is_available()
    events = sorted(prof.key_averages(), key=lambda e: -(e.self_device_time_total if cuda else e.self_cpu_time_total))
    ops = [{"name": e.key, "self_s": (e.self_device_time_total if cuda else e.self_cpu_time_total) / 1e6,
            "calls": int(e.count)} for e in events[:top]]
    stages = {k: float(v) for k, v in exp.timings.items() if k != "cache_hit"}
    return Profile(model=lm.name, method=method, quality=settings.quality, n=len(ctx.input_ids),
                   fwd_bwd_s=fb, total_s=total, stages_s=stages, top_ops=ops)


def main(argv=None) -> int:
    from heta_lite import load_model

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--device", default=None)
    p.add_argument("--n", type=int, default=64, help="context tokens (the frame included)")
    p.add_argument("--quality", default="balanced", choices=["fast", "balanced", "accurate"])
    p.add_argument("--method", default="heta")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    p.add_argument("--trace", action="store_true", help="also write a Chrome trace")
    p.add_argument("--threads", type=int, help="torch threads (use 1 when other jobs share the cores: a busy "
                   "core stalls every multi-threaded op, and the timings become noise)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    lm = load_model(args.model, device=args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"profile_{args.method}_{args.quality}_n{args.n}"
    prof = profile_explanation(lm, args.n, HetaSettings.preset(args.quality, check=True), args.method,
                               trace=stem.with_suffix(".trace.json") if args.trace else None)
    stem.with_suffix(".json").write_text(json.dumps(prof.to_dict(), indent=2) + "\n")
    stem.with_suffix(".md").write_text(prof.markdown())
    print(prof.markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
