"""Apply the pre-registered selection rule (experiments/results/README.md, "Faithfulness v2") to the
dev-half results of experiments/run_eval_v2.sh and write eval_v2/selection.{json,md}.

    python experiments/select_default.py [--root experiments/results/eval_v2]

The rule, as registered: per set, the dev items whose target is in the model's top-5 with and
without the frame; criteria (1) AOPC with zeroed embeddings, mean of the set means, (2) DSA in the
worse passage order, mean over the sets with segments, (3) Soft-NC ratio, mean of the set means;
rank the eligible configurations (frame auto) on each (1 = highest, ties share the average rank),
lowest mean rank wins, ties broken by (2) then (1). The frame-none configurations are scored the
same way and reported, but are not eligible (the spec fixes frame auto as the default).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

SETS = ("dsa_qa", "plain", "authors")
FRAMES = ("auto", "none")
GATES = ("full", "last-quarter", "norm-mixing")
ORDERS = ("distractor_first", "evidence_first")
CRITERIA = ("aopc_zero", "dsa_worse_order", "soft_nc_ratio")


def config_name(frame: str, gate: str) -> str:
    return f"frame={frame}, gate={gate}"


def load_rows(root: Path, half: str = "dev") -> dict[tuple[str, str], list[dict]]:
    """(frame, set) -> result rows without errors."""
    out = {}
    for frame in FRAMES:
        for s in SETS:
            path = root / half / f"frame-{frame}" / s / "results.jsonl"
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
            out[(frame, s)] = [r for r in rows if "error" not in r]
    return out


def common_items(rows: dict[tuple[str, str], list[dict]], s: str) -> set[str]:
    """Items of set `s` whose target is in the top-5 under both frames (and that ran under both)."""
    per_frame = []
    for frame in FRAMES:
        per_frame.append({r["item"] for r in rows[(frame, s)] if r["in_top5"]})
    return set.intersection(*per_frame) if per_frame else set()


def criteria(rows: dict[tuple[str, str], list[dict]], frame: str, gate: str,
             items: dict[str, set[str]]) -> dict[str, float | None]:
    method = f"heta[gate={gate}]"
    set_aopc, set_nc, set_dsa = [], [], []
    detail: dict = {}
    for s in SETS:
        mine = [r for r in rows[(frame, s)] if r["method"] == method and r["item"] in items[s]]
        if not mine:
            continue
        set_aopc.append(float(np.mean([r["aopc_zero"] for r in mine])))
        nc = [r["soft_nc_ratio"] for r in mine if r.get("soft_nc_ratio") is not None]
        if nc:
            set_nc.append(float(np.mean(nc)))
        if any("dsa" in r for r in mine):
            by_order = {o: [r["dsa"] for r in mine if r.get("order") == o and "dsa" in r] for o in ORDERS}
            if all(by_order.values()):
                means = {o: float(np.mean(v)) for o, v in by_order.items()}
                set_dsa.append(min(means.values()))
                detail[f"dsa_{s}"] = means
        detail[f"n_{s}"] = len(mine)
        detail[f"first_content_top1_{s}"] = float(np.mean([bool(r.get("first_content_top1")) for r in mine]))
    return {"aopc_zero": float(np.mean(set_aopc)) if set_aopc else None,
            "dsa_worse_order": float(np.mean(set_dsa)) if set_dsa else None,
            "soft_nc_ratio": float(np.mean(set_nc)) if set_nc else None, **detail}


def rank_configs(scores: dict[str, dict]) -> list[dict]:
    """The rule: mean rank over CRITERIA (1 = highest; ties share the average rank), then ties
    broken by dsa_worse_order, then aopc_zero. Configurations missing a criterion cannot be ranked."""
    names = [n for n, c in scores.items() if all(c.get(k) is not None for k in CRITERIA)]
    if not names:
        return []
    ranks = {k: rankdata([-scores[n][k] for n in names], method="average") for k in CRITERIA}
    table = []
    for j, n in enumerate(names):
        r = {k: float(ranks[k][j]) for k in CRITERIA}
        table.append({"config": n, "ranks": r, "mean_rank": float(np.mean(list(r.values()))), **scores[n]})
    table.sort(key=lambda t: (t["mean_rank"], -t["dsa_worse_order"], -t["aopc_zero"]))
    return table


def select(root: Path) -> dict:
    rows = load_rows(root, "dev")
    items = {s: common_items(rows, s) for s in SETS}
    scores = {config_name(f, g): criteria(rows, f, g, items) for f in FRAMES for g in GATES}
    eligible = rank_configs({config_name("auto", g): scores[config_name("auto", g)] for g in GATES})
    for_comparison = rank_configs(scores)
    complete = all(len(rows[(f, s)]) > 0 for f in FRAMES for s in SETS)
    return {"complete": complete, "items": {s: len(v) for s, v in items.items()},
            "rows": {f"{f}/{s}": len(v) for (f, s), v in rows.items()},
            "eligible_ranking": eligible, "all_six_ranking": for_comparison,
            "default": eligible[0]["config"] if eligible and complete else None}


def _markdown(sel: dict) -> str:
    lines = ["# Selection of the default gate (dev half)", "",
             "Made by `python experiments/select_default.py` from `eval_v2/dev/`; the rule is the one "
             "pre-registered in `experiments/results/README.md` (\"Faithfulness v2\").", "",
             f"Dev rows per frame/set: {sel['rows']}. Items read per set (target in the top-5 with and without "
             f"the frame): {sel['items']}.", ""]
    if not sel["complete"]:
        lines += ["**Incomplete: some frame/set runs have no rows yet; no default is chosen from a partial run.**",
                  ""]
    for title, table in (("Eligible configurations (frame auto)", sel["eligible_ranking"]),
                         ("All six, for comparison (frame none is not eligible)", sel["all_six_ranking"])):
        lines += [f"## {title}", "", "| config | AOPC zero | DSA worse order | Soft-NC ratio | ranks | mean rank |",
                  "|---|---|---|---|---|---|"]
        for t in table:
            lines.append(f"| {t['config']} | {t['aopc_zero']:.3f} | {t['dsa_worse_order']:+.3f} | "
                         f"{t['soft_nc_ratio']:.3f} | {t['ranks']['aopc_zero']:g} / {t['ranks']['dsa_worse_order']:g}"
                         f" / {t['ranks']['soft_nc_ratio']:g} | {t['mean_rank']:.2f} |")
        lines.append("")
    lines.append(f"**Default chosen by the rule: {sel['default'] or 'none yet'}.**")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default=str(Path(__file__).parent / "results" / "eval_v2"))
    args = p.parse_args(argv)
    root = Path(args.root)
    sel = select(root)
    (root / "selection.json").write_text(json.dumps(sel, indent=2) + "\n")
    (root / "selection.md").write_text(_markdown(sel))
    print(_markdown(sel))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
