"""The test-half report of the pre-registered evaluation (experiments/results/README.md,
"Faithfulness v2"): every method under both frames, every metric with a bootstrap interval, DSA per
passage order and pooled, the first-content-token share and top-1 rate, and the issue's bars for
the default that `select_default.py` chose on the dev half.

    python -m experiments.report_v2 [--root experiments/results/eval_v2] [--half test] [--owed]

Written before any test-half number existed. Items: per set, those whose target is in the model's
top-5 both with and without the frame (the rule the selection used), so both frames are compared
on the same items. Writes <root>/<half>_report.{json,md} and <root>/<half>_dsa_by_order.png.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from heta_lite.faithfulness.metrics import bootstrap_ci

try:
    from experiments.select_default import FRAMES, ORDERS, SETS, common_items, load_rows
except ImportError:  # run as a script from experiments/
    from select_default import FRAMES, ORDERS, SETS, common_items, load_rows

METRICS = ("aopc_zero", "aopc_delete", "sufficiency", "soft_nc_ratio", "soft_ns_ratio", "first_token_mass")
SEGMENTED = ("dsa_qa", "authors")  # the sets with evidence/distractor segments
RIVALS = ("attention", "saliency")  # the bar: HETA's deletion AOPC at least theirs
# Head to head (every metric here: higher is better): the default against each other method on the
# same rows, rival minus default per (item, order), with a paired bootstrap interval.
PAIRED = ("aopc_zero", "aopc_delete", "sufficiency", "soft_nc_ratio", "soft_ns_ratio") + tuple(
    f"dsa_{o}" for o in ORDERS)


def _value(row: dict, name: str):
    """A row's value of a PAIRED metric; DSA per passage order (None on the other order's rows)."""
    if name.startswith("dsa_"):
        return row.get("dsa") if row.get("order") == name[4:] else None
    return row.get(name)


def stat(values) -> dict:
    vals = [float(v) for v in values if v is not None]
    mean, lo, hi = bootstrap_ci(vals)
    return {"mean": None if not vals else mean, "ci95": [lo, hi] if vals else None, "n": len(vals)}


def method_block(rows: list[dict]) -> dict:
    """Every reported statistic of one method's rows on one set under one frame."""
    out = {k: stat(r.get(k) for r in rows) for k in METRICS}
    for order in ORDERS:
        out[f"dsa_{order}"] = stat(r.get("dsa") for r in rows if r.get("order") == order)
    out["dsa_pooled"] = stat(r.get("dsa") for r in rows)
    means = [out[f"dsa_{o}"]["mean"] for o in ORDERS]
    out["dsa_worse_order"] = min(means) if all(m is not None for m in means) else None
    top1 = [bool(r["first_content_top1"]) for r in rows if r.get("first_content_top1") is not None]
    out["first_content_top1_rate"] = float(np.mean(top1)) if top1 else None
    checks = [bool(r["check_passed"]) for r in rows if r.get("check_passed") is not None]
    out["check_pass_rate"] = float(np.mean(checks)) if checks else None
    last = [last_token(r) for r in rows if r.get("top_tokens") and r.get("n")]
    out["last_token_top1_rate"] = float(np.mean([t for t, _ in last])) if last else None
    out["last_token_share_min"] = stat(share for _, share in last)
    out["n_items"] = len(rows)
    return out


def last_token(row: dict) -> tuple[bool, float]:
    """(is the last context token, the one at the predicting position, the row's top-1?, its share
    of the attribution when it is among the row's top-5 tokens, else 0: a lower bound). With the
    frame, the mass the first token lost can land here instead (dev half, docs/method.md)."""
    last = row["n"] - 1
    top = row["top_tokens"]
    return top[0][0] == last, float(sum(w for i, _, w in top if i == last))


def build(root: Path, half: str = "test") -> dict:
    rows = load_rows(root, half)
    items = {s: common_items(rows, s) for s in SETS}
    methods = _methods(rows)
    table: dict = {}
    for frame in FRAMES:
        for s in SETS:
            mine = [r for r in rows[(frame, s)] if r["item"] in items[s]]
            table[f"{frame}/{s}"] = {m: method_block([r for r in mine if r["method"] == m]) for m in methods
                                     if any(r["method"] == m for r in mine)}
    sel_path = root / "selection.json"
    default = json.loads(sel_path.read_text()).get("default") if sel_path.exists() else None
    missing = completeness(root, half, rows, methods)
    head = None
    if default:
        frame, m = default_method(default)
        head = {s: head_to_head([r for r in rows[(frame, s)] if r["item"] in items[s]], m) for s in SETS}
    return {"half": half, "items": {s: len(v) for s, v in items.items()}, "methods": methods,
            "rows": {f"{f}/{s}": len(v) for (f, s), v in rows.items()}, "missing_rows": missing,
            "complete": not any(missing.values()), "table": table, "default": default,
            "bars": bars(table, default) if default else None, "head_to_head": head}


def head_to_head(rows: list[dict], default: str) -> dict:
    """rival -> metric -> the mean of (rival - default) over the rows both have, its paired 95%
    bootstrap interval, and who is ahead: "rival" or "default" when the interval excludes 0, else
    "neither". A paired interval, because both methods are scored on the same items: the spread
    between items (some targets are easy to knock out for every method) cancels."""
    by = {}
    for r in rows:
        by.setdefault(r["method"], {})[(r["item"], r.get("order"))] = r
    mine = by.get(default, {})
    out: dict = {}
    for rival, theirs in sorted(by.items()):
        if rival == default:
            continue
        out[rival] = {}
        # a fixed order: the bootstrap's seeded resampling is only reproducible over the same list
        # (a set's order changes with the interpreter's string hashing from run to run)
        shared = sorted(mine.keys() & theirs.keys(), key=str)
        for k in PAIRED:
            pairs = [(_value(mine[key], k), _value(theirs[key], k)) for key in shared]
            diffs = [b - a for a, b in pairs if a is not None and b is not None]
            if not diffs:
                continue
            mean, lo, hi = bootstrap_ci(diffs)
            ahead = "rival" if lo > 0 else "default" if hi < 0 else "neither"
            out[rival][k] = {"diff": mean, "ci95": [lo, hi], "n": len(diffs), "ahead": ahead}
    return out


def _methods(rows: dict) -> list[str]:
    """Every method with a row under any frame and set."""
    return sorted({r["method"] for v in rows.values() for r in v})


def default_method(default: str) -> tuple[str, str]:
    """'frame=auto, gate=last-quarter' -> ('auto', 'heta[gate=last-quarter]')."""
    parts = dict(p.strip().split("=", 1) for p in default.split(","))
    return parts["frame"], f"heta[gate={parts['gate']}]"


def bars(table: dict, default: str) -> dict:
    """The issue's three bars for the chosen default, per set: DSA > 0 in both orders (sets with
    segments), the first content token its top-1 on at most 25% of items, AOPC (zeroed embeddings)
    at least last-layer attention's and saliency's."""
    frame, m = default_method(default)
    out: dict = {"config": default, "method": m, "frame": frame, "per_set": {}}
    for s in SETS:
        block = table.get(f"{frame}/{s}", {})
        if m not in block:
            continue
        b = block[m]
        res: dict = {}
        if s in SEGMENTED:
            d = {o: b[f"dsa_{o}"]["mean"] for o in ORDERS}
            res["dsa_both_orders_positive"] = {"pass": all(v is not None and v > 0 for v in d.values()), **d}
        rate = b["first_content_top1_rate"]
        res["first_content_top1_at_most_25pct"] = {"pass": rate is not None and rate <= 0.25, "rate": rate}
        aopc = b["aopc_zero"]["mean"]
        rivals = {r: block[r]["aopc_zero"]["mean"] if r in block else None for r in RIVALS}
        measured = aopc is not None and all(v is not None for v in rivals.values())
        res["aopc_at_least_attention_and_saliency"] = {  # None: a rival has no rows here (the dev half)
            "pass": all(aopc >= v for v in rivals.values()) if measured else None, "heta": aopc, **rivals}
        out["per_set"][s] = res
    verdicts = [v["pass"] for r in out["per_set"].values() for v in r.values()]
    out["all_pass"] = (None if None in verdicts else all(verdicts)) if verdicts else False
    return out


def completeness(root: Path, half: str, rows: dict, methods: list[str]) -> dict:
    """Per frame/set: the (item, method) rows the run still owes, against the items the eligibility
    pre-pass listed (`<half>/<set>.items`); a report of a half in progress says so."""
    out = {}
    for (frame, s), mine in rows.items():
        listed = root / half / f"{s}.items"
        if not listed.exists():
            continue
        items = [i for i in listed.read_text().split() if i]
        have = {(r["item"], r["method"]) for r in mine}
        out[f"{frame}/{s}"] = sum((i, m) not in have for i in items for m in methods)
    return out


VERDICT = {True: "yes", False: "**no**", None: "not measured"}


def _number(name: str, x) -> str:
    if x is None:
        return f"{name} not measured"
    if name == "rate":
        return f"rate {_pct(x)}"
    return f"{name} {x:+.3f}" if isinstance(x, float) else f"{name} {x}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def _cell(st: dict | None, signed: bool = False) -> str:
    if not st or st.get("mean") is None:
        return "-"
    lo, hi = st["ci95"]
    f = "{:+.3f}" if signed else "{:.3f}"
    return f"{f.format(st['mean'])} [{f.format(lo)}, {f.format(hi)}]"


def markdown(rep: dict) -> str:
    lines = [f"# Faithfulness v2: {rep['half']} half", "",
             "Made by `python -m experiments.report_v2` from `eval_v2/" + rep["half"] + "/` (rule and items: "
             "experiments/results/README.md, \"Faithfulness v2\"). Means with 95% bootstrap intervals over items "
             "whose target is in the top-5 with and without the frame.", "",
             f"Items per set: {rep['items']}. Rows per frame/set: {rep['rows']}.", ""]
    if not rep["complete"]:
        lines += [f"**Incomplete: the run still owes rows (per frame/set: {rep['missing_rows']}); every number below "
                  "is from a partial half.**", ""]
    for key, block in rep["table"].items():
        if not block:
            continue
        lines += [f"## {key}", "", "| method | AOPC zero | AOPC delete | sufficiency | Soft-NC ratio | Soft-NS ratio "
                  "| DSA distractor-first | DSA evidence-first | DSA pooled | first-content share "
                  "| first-content top-1 | last-token share (min) | last-token top-1 | check passed |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for m, b in block.items():
            lines.append(f"| {m} | {_cell(b['aopc_zero'])} | {_cell(b['aopc_delete'])} | {_cell(b['sufficiency'])} | "
                         f"{_cell(b['soft_nc_ratio'])} | "
                         f"{_cell(b['soft_ns_ratio'])} | {_cell(b['dsa_distractor_first'], True)} | "
                         f"{_cell(b['dsa_evidence_first'], True)} | {_cell(b['dsa_pooled'], True)} | "
                         f"{_cell(b['first_token_mass'])} | {_pct(b['first_content_top1_rate'])} | "
                         f"{_cell(b['last_token_share_min'])} | {_pct(b['last_token_top1_rate'])} | "
                         f"{_pct(b['check_pass_rate'])} |")
        lines.append("")
    b = rep.get("bars")
    if b:
        lines += [f"## The issue's bars for the default ({b['config']})", "", "| set | bar | pass | numbers |",
                  "|---|---|---|---|"]
        for s, res in b["per_set"].items():
            for name, v in res.items():
                nums = ", ".join(_number(k, x) for k, x in v.items() if k != "pass")
                lines.append(f"| {s} | {name} | {VERDICT[v['pass']]} | {nums} |")
        met = {True: "yes", False: "no", None: "not measured"}[b["all_pass"]]
        lines += ["", f"**All bars met: {met}.**", ""]
    lines += _head_to_head_md(rep)
    return "\n".join(lines) + "\n"


def _head_to_head_md(rep: dict) -> list[str]:
    if not rep.get("head_to_head"):
        return []
    frame, m = default_method(rep["default"])
    lines = [f"## Head to head: {m} (frame {frame}) against every other method", "",
             "Rival minus default on the same rows, mean and paired 95% bootstrap interval; **rival** or "
             "*default* marks who is ahead when the interval excludes 0. Higher is better on every metric.", ""]
    for s, block in rep["head_to_head"].items():
        metrics = [k for k in PAIRED if any(k in v for v in block.values())]
        if not metrics:
            continue
        lines += [f"### {s}", "", "| rival | " + " | ".join(metrics) + " | rival ahead / default ahead |",
                  "|---" * (len(metrics) + 2) + "|"]
        for rival, res in block.items():
            cells = []
            for k in metrics:
                v = res.get(k)
                if v is None:
                    cells.append("-")
                    continue
                text = f"{v['diff']:+.3f} [{v['ci95'][0]:+.3f}, {v['ci95'][1]:+.3f}]"
                cells.append({"rival": f"**{text}**", "default": f"*{text}*"}.get(v["ahead"], text))
            wins = sum(v["ahead"] == "rival" for v in res.values())
            losses = sum(v["ahead"] == "default" for v in res.values())
            lines.append(f"| {rival} | " + " | ".join(cells) + f" | {wins} / {losses} |")
        lines.append("")
    return lines


def dsa_plot(rep: dict, path: Path) -> bool:
    """dsa_by_order.png: per set with segments and per frame, every method's mean DSA in each passage
    order with its 95% interval; a method that follows the evidence is right of 0 in both colours,
    one that favours the first passage has its two bars on opposite sides. False if nothing to plot."""
    panels = [(f, s) for s in SEGMENTED for f in FRAMES if rep["table"].get(f"{f}/{s}")]
    if not panels:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_methods = max(len(rep["table"][f"{f}/{s}"]) for f, s in panels)
    rows = (len(panels) + 1) // 2
    fig, axes = plt.subplots(rows, 2, figsize=(11, rows * (0.42 * n_methods + 1.4)), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (f, s) in zip(axes.flat, panels):
        block = rep["table"][f"{f}/{s}"]
        names = list(block)
        for j, (order, colour) in enumerate(zip(ORDERS, ("tab:red", "tab:blue"))):
            st = [block[m][f"dsa_{order}"] for m in names]
            y = np.arange(len(names)) + (j - 0.5) * 0.38
            mean = np.array([np.nan if x["mean"] is None else x["mean"] for x in st])
            err = np.array([[m - x["ci95"][0], x["ci95"][1] - m] if x["ci95"] else [0, 0] for m, x in zip(mean, st)]).T
            ax.barh(y, mean, height=0.38, xerr=err, color=colour, alpha=0.8, label=order.replace("_", " "))
        ax.axvline(0, color="k", lw=0.8)
        ax.set_yticks(np.arange(len(names)), names, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"{s}, frame {f}", fontsize=10)
        ax.set_xlabel("DSA (evidence - distractor)")
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="upper center", ncol=2, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default=str(Path(__file__).parent / "results" / "eval_v2"))
    p.add_argument("--half", default="test", choices=["dev", "test"])
    p.add_argument("--owed", action="store_true",
                   help="print only the rows the run still owes per frame/set (no numbers: safe mid-run)")
    args = p.parse_args(argv)
    root = Path(args.root)
    if args.owed:
        rows = load_rows(root, args.half)
        print(json.dumps(completeness(root, args.half, rows, _methods(rows))))
        return 0
    rep = build(root, args.half)
    (root / f"{args.half}_report.json").write_text(json.dumps(rep, indent=2) + "\n")
    md = markdown(rep)
    (root / f"{args.half}_report.md").write_text(md)
    dsa_plot(rep, root / f"{args.half}_dsa_by_order.png")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
