"""Run methods over a dataset, score each explanation with every metric, write results.

Outputs in `out_dir`: results.jsonl (one line per item x method; a re-run skips lines already
there), summary.json, summary.md (method x metric: mean and 95% bootstrap CI, wins vs random),
deletion_curves.png and aopc.png.

Every row carries its item's `base_id`, passage `order` ("distractor_first", "evidence_first" or
"" without distractor/evidence segments) and `split` ("dev" / "test", from the base item's
number; see datasets.py), so the summary reads them from the rows and never guesses from ids.
DSA is reported pooled over both orders (`dsa`), per order (`dsa_distractor_first`,
`dsa_evidence_first`) and as the worse of the two per-order means (`dsa_worse_order`): a method
that follows the evidence scores well in both orders, one that favours early positions only in
one. `summarise(..., split="dev"|"test")` summarises one half only; without a split the summary
also has a block per half (`by_split`).
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine import explain_context, make_context
from ..errors import HetaError, InputError
from ..models.loader import LoadedModel
from ..settings import HetaSettings
from ..targets import TargetSpec
from .datasets import EvalItem
from .metrics import (bootstrap_ci, deletion, deletion_random, dsa, dsa_uniform, k_values, permuted_scores,
                      random_scores, ratio, soft_metrics, sufficiency, sufficiency_random)

METRICS = ["aopc_zero", "aopc_delete", "win_zero", "win_delete", "sufficiency", "win_sufficiency", "soft_ns",
           "soft_nc", "soft_ns_ratio", "soft_nc_ratio", "soft_ns_ratio_shuffled", "soft_nc_ratio_shuffled", "dsa",
           "win_dsa", "first_token_mass", "first_content_top1", "check_passed"]
ORDER_DSA = {"distractor_first": "dsa_distractor_first", "evidence_first": "dsa_evidence_first"}


@dataclass
class Progress:
    total: int
    start: float = 0.0
    done: int = 0

    def tick(self, label: str) -> None:
        self.done += 1
        el = time.monotonic() - self.start
        eta = el / self.done * (self.total - self.done)
        bar = "#" * int(30 * self.done / self.total)
        print(f"\r[{bar:<30}] {self.done}/{self.total} {label[:30]:<30} ETA {eta / 60:4.1f} min", end="",
              file=sys.stderr, flush=True)


def target_position(ctx, answer_start: int) -> int:
    for tok in ctx.tokens:
        if tok.end > answer_start and tok.end > tok.start:
            return tok.index
    raise HetaError("answer token not found")


# Not the frame: it is the run's (--frame), since every method of an item shares one context and
# one set of random baselines.
SPEC_KEYS = ("gate", "mask", "estimator", "information", "combination")


def parse_method_spec(spec: str) -> tuple[str, dict[str, str]]:
    """'heta[gate=last-quarter]' -> ('heta', {'gate': 'last-quarter'}): a method run with some
    settings overridden, named as one column of the results. Only string-valued knobs."""
    spec = spec.strip()
    if "[" not in spec:
        return spec, {}
    if not spec.endswith("]"):
        raise InputError(f"Bad method spec {spec!r}: expected name[key=value,...].", "methods")
    name, _, body = spec[:-1].partition("[")
    overrides = {}
    for part in filter(None, (p.strip() for p in body.split(","))):
        key, eq, value = part.partition("=")
        if key.strip() == "frame":
            raise InputError(f"Bad override {part!r} in {spec!r}: the frame is set for the whole run (--frame), "
                             "since every method of an item is scored on the same context.", "methods")
        if not eq or key.strip() not in SPEC_KEYS:
            raise InputError(f"Bad override {part!r} in {spec!r}: use key=value with key in {SPEC_KEYS}.", "methods")
        overrides[key.strip()] = value.strip()
    return name.strip(), overrides


def spec_settings(spec: str, settings: HetaSettings) -> tuple[str, HetaSettings]:
    name, overrides = parse_method_spec(spec)
    return name, settings.replace(**overrides) if overrides else settings


def item_context(lm: LoadedModel, it: EvalItem, settings: HetaSettings):
    """The teacher-forced context of an item: the text `prompt + sep + answer`, the target the
    first token ending after the answer's first character (plain tokenization, no chat template)."""
    full = make_context(lm, it.text, TargetSpec(position=1), settings)
    return full.with_target(target_position(full, it.answer_start))


def item_tags(it: EvalItem) -> dict:
    """What every results row says about its item besides the metrics."""
    return {"item": it.id, "base_id": it.base_id, "order": it.order, "split": it.split}


METRIC_SETS = ("all", "selection")


def evaluate(lm: LoadedModel, items: list[EvalItem], methods: list[str], settings: HetaSettings, out_dir: Path,
             draws: int = 5, seed: int = 0, split: str | None = None, metrics: str = "all", cache=None) -> dict:
    """Score every (item, method) pair not yet in results.jsonl, then summarise (one half only
    when `split` is "dev" or "test"). A method may be a spec with overrides ('heta[gate=norm-mixing]').
    metrics='selection' computes only what the pre-registered selection rule reads (AOPC with
    zeroed embeddings, Soft-NC against random scores, DSA, the first-token share, the check).
    With a HetaCache, HETA's S and I are computed once per item and reused by every gate."""
    if metrics not in METRIC_SETS:
        raise InputError(f"metrics must be one of {METRIC_SETS}, got {metrics!r}.", "metrics")
    for m in methods:
        spec_settings(m, settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    res_path = out_dir / "results.jsonl"
    done = set()
    if res_path.exists():
        for line in res_path.read_text().splitlines():
            try:
                r = json.loads(line)
                done.add((r["item"], r["method"]))
            except (ValueError, KeyError):
                continue
    todo = [(it, m) for it in items for m in methods if (it.id, m) not in done]
    if len(todo) < len(items) * len(methods):
        print(f"resuming: {len(items) * len(methods) - len(todo)} (item, method) pairs already in {res_path}",
              file=sys.stderr)
    prog = Progress(total=max(1, len(todo)), start=time.monotonic())
    with open(res_path, "a", encoding="utf-8") as fh:
        for it in items:
            pending = [m for m in methods if (it.id, m) not in done]
            if not pending:
                continue
            try:
                ctx = item_context(lm, it, settings)  # every spec shares the frame: it is the run's
            except HetaError as err:
                for m in pending:
                    fh.write(json.dumps({**item_tags(it), "method": m, "error": str(err)}) + "\n")
                    prog.tick(it.id)
                continue
            baseline: dict = {}
            for m in pending:
                row = {**item_tags(it), **_score_item(lm, it, ctx, m, settings, draws, seed, baseline, metrics,
                                                      cache)}
                fh.write(json.dumps(row) + "\n")
                fh.flush()
                prog.tick(f"{it.id} {m}")
    print(file=sys.stderr)
    return summarise(res_path, methods, out_dir, split=split, items=items)


def _random_baselines(lm, X, y, scored, spans, it: EvalItem, draws: int, seed: int, metrics: str = "all") -> dict:
    """Everything random for one item, computed once and shared by all its methods."""
    ks = k_values(int(scored.sum()))
    out: dict = {"ks": ks}
    for mode in ("zero", "delete") if metrics == "all" else ("zero",):
        out[f"deletion_{mode}"] = deletion_random(lm, X, y, scored, mode, ks, draws, seed)
    if metrics == "all":
        out["sufficiency"] = sufficiency_random(lm, X, y, scored, ks, draws, seed)
    rs = [soft_metrics(lm, X, random_scores(scored, seed + 100 + r), scored, draws=draws, seed=seed)
          for r in range(3)]
    out["soft"] = {k: float(np.mean([r[k] for r in rs])) for k in ("soft_ns", "soft_nc")}
    if {"evidence", "distractor"} <= set(it.segments):
        out["dsa"] = dsa_uniform(scored, spans, it.segments["evidence"], it.segments["distractor"])
    return out


def _score_item(lm, it: EvalItem, ctx, method: str, settings: HetaSettings, draws: int, seed: int,
                baseline: dict, metrics: str = "all", cache=None) -> dict:
    """One (item, method) row: the explanation's scores and every metric, with the random
    baselines beside each (`baseline` caches them across the methods of the item)."""
    import torch

    t0 = time.perf_counter()
    name, run_settings = spec_settings(method, settings)
    try:
        exp = explain_context(lm, ctx, run_settings, name, cache=cache)
    except HetaError as err:
        return {"item": it.id, "method": method, "error": str(err)}
    seconds = time.perf_counter() - t0
    X = lm.model.get_input_embeddings()(torch.tensor(ctx.input_ids, device=lm.device)).detach()
    scored = np.asarray(ctx.scored)
    spans = [(t.start, t.end) for t in ctx.context_tokens]
    y = ctx.target_id
    s = exp.scores
    if not baseline:
        baseline.update(_random_baselines(lm, X, y, scored, spans, it, draws, seed, metrics))
    ks = baseline["ks"]
    first = ctx.first_content_index
    row = {"item": it.id, "kind": it.kind, "method": method, "n": ctx.target_pos, "n_scored": int(scored.sum()),
           "target": ctx.target_token.text, "p_target": exp.target.prob, "target_rank": exp.target.rank,
           "in_top5": exp.target.rank <= 5, "seconds": seconds, "frame": ctx.frame.setting,
           "gate": run_settings.gate, "first_content_top1": bool(exp.rank[first] == 1) if first is not None else None,
           "gate_mass_on_frame": exp.frame.get("gate_mass_on_frame"),
           "check_passed": exp.check.passed if exp.check is not None else None,
           "top_tokens": [[i, t, round(w, 4)] for i, t, w in exp.top_tokens(5)]}
    for mode in ("zero", "delete") if metrics == "all" else ("zero",):
        d = deletion(lm, X, y, s, scored, mode=mode, ks=ks, random_draws=draws, seed=seed,
                     random=baseline[f"deletion_{mode}"])
        row[f"deletion_{mode}"] = {"ks": d.ks, "drop_top": d.drop_top, "drop_random": d.drop_random}
        row[f"aopc_{mode}"] = d.aopc_top
        row[f"aopc_random_{mode}"] = d.aopc_random
        row[f"win_{mode}"] = float(d.aopc_top > d.aopc_random)
    if metrics == "all":
        suff = sufficiency(lm, X, y, s, scored, ks)
        row["sufficiency"] = float(np.mean(list(suff.values())))
        row["sufficiency_random"] = float(np.mean(list(baseline["sufficiency"].values())))
        row["win_sufficiency"] = float(row["sufficiency"] > row["sufficiency_random"])
    soft = soft_metrics(lm, X, s, scored, draws=draws, seed=seed)
    rnd = baseline["soft"]
    row.update(soft_ns=soft["soft_ns"], soft_nc=soft["soft_nc"], soft_ns_random=rnd["soft_ns"],
               soft_nc_random=rnd["soft_nc"], soft_ns_ratio=ratio(soft["soft_ns"], rnd["soft_ns"]),
               soft_nc_ratio=ratio(soft["soft_nc"], rnd["soft_nc"]))
    if metrics == "all":
        perm = [soft_metrics(lm, X, permuted_scores(s, scored, seed + 200 + r), scored, draws=draws, seed=seed)
                for r in range(2)]
        perm_ns, perm_nc = (float(np.mean([p[k] for p in perm])) for k in ("soft_ns", "soft_nc"))
        row.update(soft_ns_shuffled=perm_ns, soft_nc_shuffled=perm_nc,
                   soft_ns_ratio_shuffled=ratio(soft["soft_ns"], perm_ns),
                   soft_nc_ratio_shuffled=ratio(soft["soft_nc"], perm_nc))
    first = 0 if first is None else first
    row["first_token_mass"] = float(exp.normalised[first])  # attention-sink diagnosis: the first content token
    has_dsa = "dsa" in baseline
    if has_dsa:
        row["dsa"] = dsa(exp.normalised, spans, it.segments["evidence"], it.segments["distractor"])
        row["dsa_uniform"] = baseline["dsa"]
        row["win_dsa"] = float(row["dsa"] > row["dsa_uniform"])
    # HETA's components (normalised), so the rows themselves show which one moves the result
    row["components"] = {
        k: {"first_token_mass": float(c.normalised[first]),
            **({"dsa": dsa(c.normalised, spans, it.segments["evidence"], it.segments["distractor"])} if has_dsa
               else {})}
        for k, c in exp.result.components.items()}
    return row


TABLE = ["aopc_zero", "win_zero", "aopc_delete", "win_delete", "sufficiency", "win_sufficiency", "soft_ns_ratio",
         "soft_nc_ratio", "soft_ns_ratio_shuffled", "soft_nc_ratio_shuffled", "dsa", "win_dsa", "first_token_mass",
         "first_content_top1", "check_passed"]
RANDOM_ROW = {"aopc_zero": "aopc_random_zero", "aopc_delete": "aopc_random_delete",
              "sufficiency": "sufficiency_random", "dsa": "dsa_uniform"}


def _stats(rows: list[dict], key: str) -> dict:
    vals = [r.get(key) for r in rows if r.get(key) is not None]
    mean, lo, hi = bootstrap_ci(vals)
    return {"mean": mean, "ci95": [lo, hi], "n": len(vals)}


def dsa_by_order(rows: list[dict], key: str = "dsa") -> dict:
    """DSA per passage order (from each row's "order") and the worse of the two per-order means:
    {"dsa_distractor_first": stats, "dsa_evidence_first": stats, "dsa_worse_order": {"mean",
    "order"}}; the worse order is None unless both orders have values."""
    out: dict = {name: _stats([r for r in rows if r.get("order") == order], key) for order, name in ORDER_DSA.items()}
    means = {order: out[name]["mean"] for order, name in ORDER_DSA.items() if out[name]["n"]}
    worse = min(means, key=means.get) if len(means) == len(ORDER_DSA) else None
    out["dsa_worse_order"] = {"mean": means[worse] if worse else None, "order": worse}
    return out


def _block(rows: list[dict], methods: list[str]) -> dict:
    """Per-method statistics of `rows`, a 'random' pseudo-method (each item's random baselines,
    counted once per item) and, when heta ran, the fraction of items where heta beats each method."""
    out: dict = {}
    for m in methods:
        mine = [r for r in rows if r["method"] == m]
        out[m] = {"n": len(mine), **{k: _stats(mine, k) for k in METRICS}, **dsa_by_order(mine),
                  "seconds_mean": float(np.mean([r["seconds"] for r in mine])) if mine else None}
    per_item = {r["item"]: r for r in rows}
    items = list(per_item.values())
    out["random"] = {"n": len(items), **{k: _stats(items, src) for k, src in RANDOM_ROW.items()},
                     **dsa_by_order(items, "dsa_uniform"),
                     "soft_ns_ratio": _stats([{"v": 1.0} for _ in items], "v"),
                     "soft_nc_ratio": _stats([{"v": 1.0} for _ in items], "v")}
    out["random"]["soft_ns_ratio_shuffled"] = out["random"]["soft_nc_ratio_shuffled"] = _stats([], "v")
    if "heta" in methods:
        heta = {r["item"]: r for r in rows if r["method"] == "heta"}
        vs = {}
        for m in methods:
            if m == "heta":
                continue
            pairs = [(heta[r["item"]]["aopc_zero"], r["aopc_zero"]) for r in rows
                     if r["method"] == m and r["item"] in heta]
            vs[m] = {"n": len(pairs), "heta_wins_aopc_zero": float(np.mean([a > b for a, b in pairs])) if pairs
                     else None}
        out["_heta_vs"] = vs
    return out


def _read_rows(res_path: Path, items: list[EvalItem] | None) -> list[dict]:
    """results.jsonl's rows; rows written before rows carried their order and split get them
    from `items` (the loader's items, matched by id) when given, else stay untagged ("")."""
    rows = [json.loads(line) for line in res_path.read_text().splitlines() if line.strip()]
    by_id = {it.id: it for it in items or []}
    for r in rows:
        it = by_id.get(r.get("item"))
        for k in ("base_id", "order", "split"):
            if k not in r:
                r[k] = item_tags(it)[k] if it is not None else ""
    return rows


def summarise(res_path: Path, methods: list[str], out_dir: Path, split: str | None = None,
              items: list[EvalItem] | None = None) -> dict:
    """summary.json and summary.md from results.jsonl: items whose target is in the model's top-5
    form the main table; the others get their own table (never dropped silently). `split`
    ("dev" / "test"; None or "all" for every row) restricts everything, plots included, to the
    rows of that half; without one, `by_split` holds the top-5 block of each half present."""
    split = None if split == "all" else split
    if split not in (None, "dev", "test"):
        raise ValueError(f"split must be None, 'all', 'dev' or 'test', not {split!r}")
    rows = _read_rows(res_path, items)
    if split is not None:
        rows = [r for r in rows if r.get("split") == split]
    ok = [r for r in rows if "error" not in r and r["method"] in methods]
    top5 = [r for r in ok if r["in_top5"]]
    other = [r for r in ok if not r["in_top5"]]
    summary: dict = {"split": split or "all", "items": len({r["item"] for r in rows}),
                     "base_items": len({r.get("base_id") or r["item"] for r in rows}),
                     "items_per_order": {o: len({r["item"] for r in rows if r.get("order") == o}) for o in ORDER_DSA},
                     "errors": [r for r in rows if "error" in r],
                     "top5_items": len({r["item"] for r in top5}),
                     "not_top5_items": sorted({r["item"] for r in other}),
                     "methods": _block(top5, methods), "not_top5": _block(other, methods)}
    if split is None:
        summary["by_split"] = {}
        for half in ("dev", "test"):
            mine = [r for r in top5 if r.get("split") == half]
            if mine:
                summary["by_split"][half] = {"items": len({r["item"] for r in rows if r.get("split") == half}),
                                             "top5_items": len({r["item"] for r in mine}),
                                             "methods": _block(mine, methods)}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _markdown(summary, methods, out_dir)
    _plots(top5, methods, out_dir)
    return summary


def _table(block: dict, methods: list[str]) -> list[str]:
    lines = ["| method | n | " + " | ".join(TABLE) + " | s/item |", "|---|---|" + "---|" * len(TABLE) + "---|"]
    for m in methods + ["random"]:
        s = block[m]
        cells = []
        for c in TABLE:
            v = s.get(c)
            cells.append("-" if not v or not v["n"] else
                         f"{v['mean']:.3f} [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}]")
        secs = s.get("seconds_mean")
        lines.append(f"| {m} | {s['n']} | " + " | ".join(cells) + f" | {'-' if secs is None else f'{secs:.1f}'} |")
    if "_heta_vs" in block:
        lines += ["", "Fraction of items where heta's AOPC (zero embedding) beats the method's: " +
                  ", ".join(f"{m} {v['heta_wins_aopc_zero']:.2f}" for m, v in block["_heta_vs"].items()
                            if v["heta_wins_aopc_zero"] is not None) + "."]
    return lines


def _cell(v: dict | None) -> str:
    return "-" if not v or not v["n"] else f"{v['mean']:.3f} [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}] (n={v['n']})"


def _order_table(block: dict, methods: list[str]) -> list[str]:
    """DSA per passage order, pooled, and the worse order's mean; [] when no row has a DSA order."""
    names = [m for m in methods + ["random"] if m in block]
    if not any(block[m].get(k, {}).get("n") for m in names for k in ORDER_DSA.values()):
        return []
    lines = ["DSA by passage order (evidence mass minus distractor mass; row 'random': the uniform attribution):",
             "", "| method | dsa (pooled) | dsa_distractor_first | dsa_evidence_first | dsa_worse_order |",
             "|---|---|---|---|---|"]
    for m in names:
        s = block[m]
        w = s.get("dsa_worse_order") or {}
        worse = "-" if w.get("mean") is None else f"{w['mean']:.3f} ({w['order']})"
        lines.append(f"| {m} | {_cell(s.get('dsa'))} | {_cell(s.get('dsa_distractor_first'))} | "
                     f"{_cell(s.get('dsa_evidence_first'))} | {worse} |")
    return lines


def _markdown(summary: dict, methods: list[str], out_dir: Path) -> None:
    split = summary.get("split", "all")
    parity = "even" if split == "dev" else "odd"
    which = "" if split == "all" else f" ({split} half only: base items with an {parity} number)"
    lines = [f"Items whose target is in the model's top-5: {summary['top5_items']} of {summary['items']}{which}. "
             "Each cell: mean [95% bootstrap interval] over those items.", ""]
    lines += _table(summary["methods"], methods)
    order_lines = _order_table(summary["methods"], methods)
    if order_lines:
        lines += [""] + order_lines
    missed = summary["not_top5_items"]
    if missed:
        lines += ["", f"Items whose target is NOT in the model's top-5 ({len(missed)}: "
                      f"{', '.join(missed[:30])}{' ...' if len(missed) > 30 else ''}), reported separately:", ""]
        lines += _table(summary["not_top5"], methods)
    else:
        lines += ["", "Items whose target is NOT in the model's top-5: none."]
    for half, blk in (summary.get("by_split") or {}).items():
        lines += ["", f"### {half} half (base items with an {'even' if half == 'dev' else 'odd'} number): "
                      f"{blk['top5_items']} of {blk['items']} items with the target in the top-5", ""]
        lines += _table(blk["methods"], methods)
        order_lines = _order_table(blk["methods"], methods)
        if order_lines:
            lines += [""] + order_lines
    lines += ["", f"Errors: {len(summary['errors'])}.", "",
              "aopc_zero / aopc_delete: mean drop of p(target) over k = 1, 2, 3, 5, 10%, 20%, 30% of the scored "
              "tokens removed (zero embedding / token deleted); higher is better. win_*: fraction of items where the "
              "method beats random on that metric (random deletion: mean of 5 draws of k scored tokens, fixed seed; "
              "sufficiency: 5 random keep-sets; dsa: the uniform attribution, which is a random attribution's "
              "expectation). sufficiency: mean p(target) keeping only the top-k (others zeroed); higher is better. "
              "soft_*_ratio: Soft-NS / Soft-NC divided by the same metric for U(0, 1) random scores (3 draws), so random "
              "= 1; these favour flat score distributions (s = score / max sets the keep probabilities), so "
              "peaked attributions score below 1 whatever their order. soft_*_ratio_shuffled: the same divided by "
              "the metric for the method's own scores shuffled among the scored tokens (2 shuffles): same "
              "distribution, random order, so > 1 means the order carries information. dsa: attribution mass on the evidence sentence minus mass on the distractor (segments by "
              "character offsets); per order: the items with the distractor first / the evidence first, pooled: "
              "both; dsa_worse_order: the lower of the two per-order means (a method that follows the evidence does "
              "well in both orders). An item and its passage-swapped copy are in the same half (dev: even base-item "
              "number, test: odd). first_token_mass: the normalised score of the first content token (the word "
              "that is the attention sink without a frame); first_content_top1: fraction of items where it is the "
              "top-1 token; check_passed: fraction of items whose faithfulness check (top-3 vs 3 random token "
              "deletions) passed. Row 'random': the random baselines themselves."]
    (out_dir / "summary.md").write_text("\n".join(lines) + "\n")


K_LABELS = [("1", 1), ("2", 2), ("3", 3), ("5", 5), ("10%", 0.1), ("20%", 0.2), ("30%", 0.3)]


def _curve(row: dict, mode: str, key: str) -> list[float]:
    """The row's drops at the 7 k labels (NaN where k exceeds the scored tokens)."""
    import math

    d = row[f"deletion_{mode}"]
    by_k = dict(zip(d["ks"], d[key]))
    out = []
    for _label, k in K_LABELS:
        kk = k if isinstance(k, int) else max(1, math.ceil(k * row["n_scored"]))
        out.append(by_k.get(kk, float("nan")))
    return out


def _nanmean(curves) -> np.ndarray:
    import warnings

    with warnings.catch_warnings():  # a k label beyond every item's length is simply not drawn
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.asarray(curves, dtype=float), 0)


def _plots(rows: list[dict], methods: list[str], out_dir: Path) -> None:
    """deletion_curves.png: mean drop in p(target) per k label, per method and random, both
    removal modes; aopc.png: mean AOPC per method with 95% bootstrap intervals, random dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(K_LABELS))
    modes = [mode for mode in ("zero", "delete") if any(f"deletion_{mode}" in r for r in rows)]
    if not modes:
        return
    rows = [r for r in rows if all(f"deletion_{mode}" in r for mode in modes)]
    fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 4.5), squeeze=False)
    axes = axes[0]
    for ax, mode in zip(axes, modes):  # `--metrics selection` measures deletion by zeroing only
        for m in methods:
            curves = [_curve(r, mode, "drop_top") for r in rows if r["method"] == m]
            if curves:
                ax.plot(x, _nanmean(curves), marker="o", label=m, lw=2.2 if m == "heta" else 1.2)
        per_item = {r["item"]: r for r in rows}
        rand = [_curve(r, mode, "drop_random") for r in per_item.values()]
        if rand:
            ax.plot(x, _nanmean(rand), "k--", label="random (5 draws)")
        ax.set_xticks(x, [lab for lab, _ in K_LABELS])
        ax.set_title(f"deletion ({'zero embedding' if mode == 'zero' else 'token deleted'}): drop in p(target)")
        ax.set_xlabel("top-k tokens removed")
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=7, loc="best")
    fig.suptitle(f"{len({r['item'] for r in rows})} items (target in the model's top-5)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out_dir / "deletion_curves.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 4), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        stats = [bootstrap_ci([r[f"aopc_{mode}"] for r in rows if r["method"] == m]) for m in methods]
        means = np.array([s[0] for s in stats])
        err = np.array([[s[0] - s[1] for s in stats], [s[2] - s[0] for s in stats]])
        ax.bar(methods, np.nan_to_num(means), yerr=np.nan_to_num(err), capsize=3,
               color=["tab:red" if m == "heta" else "tab:blue" for m in methods])
        rnd = [r[f"aopc_random_{mode}"] for r in {r["item"]: r for r in rows}.values()]
        if rnd:
            ax.axhline(float(np.mean(rnd)), color="k", ls="--", label="random")
            ax.legend(fontsize=8)
        ax.set_ylabel(f"AOPC ({mode})")
        ax.tick_params(axis="x", rotation=40, labelsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "aopc.png", dpi=110)
    plt.close(fig)
