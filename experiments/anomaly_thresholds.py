"""Measure the anomaly flags' thresholds (heta_lite/anomaly.py) for one model on the evaluation
prompts, and how often each flag fires on prompts it was not measured on.

    python -m experiments.anomaly_thresholds [--model smollm2-135m]

Thresholds are the 0.5th / 99.5th percentiles on the dev half (even item numbers) of dsa_qa, plain
and the authors' toy set, each item's teacher-forced context with the frame (as the evaluation
builds it). The flag rates are then measured on the test half (odd numbers), so the "about 1%
by chance" claim is checked out of sample. Writes heta_lite/data/anomaly_thresholds.json (merged
per model; shipped with the package) and experiments/results/anomaly_thresholds.{json,md}.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from heta_lite import HetaSettings, load_model
from heta_lite.anomaly import repetition, signals
from heta_lite.faithfulness.datasets import load_items
from heta_lite.faithfulness.evaluate import item_context

try:
    from experiments.common import write_results
except ImportError:
    from common import write_results

ROOT = Path(__file__).resolve().parent.parent
DATASETS = [ROOT / "experiments/data/dsa_qa.jsonl", ROOT / "experiments/data/plain.jsonl",
            ROOT.parent / "shared/data/heta_qa_dataset_100_unique.json"]
SHIPPED = ROOT / "heta_lite/data/anomaly_thresholds.json"


def measure(lm, datasets=DATASETS, limit: int | None = None) -> dict[str, list]:
    """Signals of every usable item, by split."""
    settings = HetaSettings.preset("fast")
    out: dict[str, list] = {"dev": [], "test": []}
    for path in datasets:
        if not Path(path).exists():
            continue
        for split in ("dev", "test"):
            items, _ = load_items(path, split=split)
            for it in items[:limit]:
                ctx = item_context(lm, it, settings)
                s = signals(lm, list(ctx.input_ids))
                out[split].append({"item": it.id, "repetition": s.repetition,
                                   "attention_entropy": s.attention_entropy, "layer_rms": s.layer_rms})
    return out


def thresholds(rows: list[dict]) -> dict:
    rms = np.asarray([r["layer_rms"] for r in rows])
    med = np.median(rms, axis=0)
    ratio = (rms / med).max(axis=1)
    ent = np.asarray([r["attention_entropy"] for r in rows])
    rep = np.asarray([r["repetition"] for r in rows])
    pc = lambda v: {"p0_5": float(np.percentile(v, 0.5)), "p99_5": float(np.percentile(v, 99.5))}  # noqa: E731
    return {"n_prompts": len(rows), "attention_entropy": pc(ent), "activation_ratio": pc(ratio),
            "layer_rms_median": [float(m) for m in med], "repetition": pc(rep)}


def flag_rates(rows: list[dict], th: dict) -> dict:
    med = np.asarray(th["layer_rms_median"])
    ent, act, rep = th["attention_entropy"], th["activation_ratio"], th["repetition"]
    fired = {"attention": 0, "activation": 0, "repetition": 0}
    for r in rows:
        ratio = float((np.asarray(r["layer_rms"]) / med).max())
        fired["attention"] += not ent["p0_5"] <= r["attention_entropy"] <= ent["p99_5"]
        fired["activation"] += not act["p0_5"] <= ratio <= act["p99_5"]
        fired["repetition"] += r["repetition"] > rep["p99_5"]
    return {k: v / max(1, len(rows)) for k, v in fired.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--limit", type=int, help="items per set and half (smoke runs)")
    p.add_argument("--no-ship", action="store_true", help="do not write heta_lite/data/anomaly_thresholds.json")
    args = p.parse_args(argv)
    lm = load_model(args.model, device="cpu")
    rows = measure(lm, limit=args.limit)
    th = thresholds(rows["dev"])
    rates = flag_rates(rows["test"], th)
    loop = [7, 8, 9, 10] * 12  # a degenerate loop: the flag must fire on it
    th["repetition_of_a_loop"] = repetition(loop)
    if not args.no_ship:
        shipped = json.loads(SHIPPED.read_text()) if SHIPPED.exists() else {"models": {}}
        shipped["source"] = "python -m experiments.anomaly_thresholds (dev half of the evaluation prompts)"
        shipped["models"][lm.name] = th
        SHIPPED.parent.mkdir(parents=True, exist_ok=True)
        SHIPPED.write_text(json.dumps(shipped, indent=2) + "\n")
    table = [["attention entropy (mean normalised)", th["attention_entropy"]["p0_5"], th["attention_entropy"]["p99_5"],
              rates["attention"]],
             ["activation ratio (max layer RMS / median)", th["activation_ratio"]["p0_5"],
              th["activation_ratio"]["p99_5"], rates["activation"]],
             ["repetition (repeated 4-grams)", th["repetition"]["p0_5"], th["repetition"]["p99_5"], rates["repetition"]]]
    write_results("anomaly_thresholds", {"model": lm.name, "thresholds": th, "test_flag_rates": rates,
                                         "n_dev": len(rows["dev"]), "n_test": len(rows["test"])},
                  ["signal", "p0.5 (dev)", "p99.5 (dev)", "flag rate on the test half"], table,
                  f"python -m experiments.anomaly_thresholds --model {args.model}",
                  notes=f"{len(rows['dev'])} dev prompts set the thresholds; {len(rows['test'])} test prompts measure "
                        "how often each flag fires on in-distribution prompts (two-sided flags: about 1% expected). "
                        "target p < 1e-4 is the issue's fixed threshold.")
    print(json.dumps({"thresholds": th, "test_flag_rates": rates}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
