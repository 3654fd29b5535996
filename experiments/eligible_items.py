"""Which items of one half can any v2 table read: one forward per item and frame, before the
expensive run, so that no CPU hour goes to rows that nothing reads.

    python -m experiments.eligible_items dev|test [--margin 7]

The pre-registered tables (experiments/results/README.md, "Faithfulness v2") read only the items
whose target is in the model's top-5 both with and without the frame. This writes, per set, the
target's rank and probability under each frame (`eval_v2/<half>/eligibility.jsonl`, every item)
and the ids whose rank is at most `margin` under both frames (`eval_v2/<half>/<set>.items`), which
`run_eval_v2.sh` passes to `heta-lite eval --items`. The margin (7 > 5) keeps an item whose rank
the explanation's own forward (another attention kernel) might place one or two higher; the
tables still apply the top-5 rule to each row's own rank, so the margin can add rows, never
change what is read.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETS = {"dsa_qa": ROOT / "experiments/data/dsa_qa.jsonl", "plain": ROOT / "experiments/data/plain.jsonl",
        "authors": ROOT.parent / "shared/data/heta_qa_dataset_100_unique.json"}
FRAMES = ("auto", "none")


def ranks(lm, items, settings) -> list[dict]:
    """Per item: the target's rank and probability under each frame (one forward each)."""
    from heta_lite.engine import embed, logits_at_last, target_stats
    from heta_lite.faithfulness.evaluate import item_context

    out = []
    for it in items:
        row = {"item": it.id}
        for frame in FRAMES:
            ctx = item_context(lm, it, settings.replace(frame=frame))
            _, X = embed(lm, ctx.input_ids)
            stats = target_stats(lm, logits_at_last(lm, X), ctx.target_id)
            row[f"rank_{frame}"], row[f"p_{frame}"] = stats.rank, stats.prob
        out.append(row)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("half", choices=["dev", "test"])
    p.add_argument("--margin", type=int, default=7, help="keep items ranked at most this under both frames")
    p.add_argument("--out", default=str(ROOT / "experiments/results/eval_v2"))
    args = p.parse_args(argv)

    from heta_lite.faithfulness.datasets import load_items
    from heta_lite.models import load_model
    from heta_lite.settings import HetaSettings

    lm = load_model("smollm2-135m", device="cpu")
    settings = HetaSettings.preset("balanced")
    out = Path(args.out) / args.half
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, path in SETS.items():
        if not path.exists():
            print(f"{name}: {path} missing, skipped")
            continue
        items, _ = load_items(path, split=args.half)
        mine = [{"set": name, **r} for r in ranks(lm, items, settings)]
        keep = [r["item"] for r in mine if max(r["rank_auto"], r["rank_none"]) <= args.margin]
        (out / f"{name}.items").write_text("".join(f"{i}\n" for i in keep))
        top5 = sum(max(r["rank_auto"], r["rank_none"]) <= 5 for r in mine)
        print(f"{name}: {len(items)} items, {top5} in the top-5 under both frames, {len(keep)} kept "
              f"(rank <= {args.margin})")
        rows += mine
    (out / "eligibility.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
