"""What the per-explanation faithfulness check adds: its seconds next to the explanation's, and
as a multiple of one forward+backward measured in the same run (the machine is noisy).

    python -m experiments.bench_check --n 64 --runs 5

Writes experiments/results/check_latency.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from experiments.common import forward_backward_seconds
from heta_lite import HetaSettings, TargetSpec, explain, load_model

TEXT = ("The museum opened a new wing last spring, and visitors came from every town in the valley to see the "
        "paintings, the old maps, the clocks and the ship models that the collectors had given. The guide said "
        "that the oldest clock was made in the city of Prague more than four hundred years ago, and that it "
        "still kept good time, although nobody in the museum knew how to repair it when it stopped.")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=64, help="context tokens")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--quality", default="fast")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = p.parse_args(argv)
    lm = load_model("smollm2-135m", device="cpu")
    ids = lm.tokenizer(TEXT)["input_ids"]
    if len(ids) < args.n:
        raise SystemExit(f"the text has {len(ids)} tokens; pick --n <= {len(ids)}")
    target = TargetSpec(position=args.n, chat=False)  # the frame is position 0: n context tokens
    rows = []
    for r in range(args.runs):
        s = HetaSettings.preset(args.quality, seed=r)
        exp = explain(lm, TEXT, target, s)
        ctx = exp.context
        fb = statistics.median(forward_backward_seconds(lm, ctx.input_ids, ctx.target_id) for _ in range(3))
        rows.append({"check_s": exp.timings["faithfulness_check"], "total_s": exp.timings["attribution_total"],
                     "fwd_bwd_s": fb, "passed": exp.check.passed, "k": exp.check.k})
    med = {k: statistics.median(r[k] for r in rows) for k in ("check_s", "total_s", "fwd_bwd_s")}
    result = {"command": f"python -m experiments.bench_check --n {args.n} --runs {args.runs} --quality {args.quality}",
              "n": args.n, "quality": args.quality, "runs": rows, "median": med,
              "check_share_of_total": med["check_s"] / med["total_s"],
              "check_x_fwd_bwd": med["check_s"] / med["fwd_bwd_s"]}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "check_latency.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [f"Command: `{result['command']}` (SmolLM2-135M fp32, CPU; other jobs may share the cores: compare ratios).",
          "", "| n | check (median s) | explanation total (s) | check / total | check / one fwd+bwd |",
          "|---|---|---|---|---|",
          f"| {args.n} | {med['check_s']:.3f} | {med['total_s']:.2f} | {result['check_share_of_total']:.1%} | "
          f"{result['check_x_fwd_bwd']:.2f}x |"]
    (out / "check_latency.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
