"""Run methods over a dataset, score each explanation with every metric, write results.

Outputs in `out_dir`: results.jsonl (one line per item x method; a re-run skips lines already
there), summary.json, summary.md (method x metric: mean and 95% bootstrap CI, wins vs random),
deletion_curves.png and aopc.png.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine import explain_context
from ..errors import HetaError
from ..models.loader import LoadedModel
from ..settings import HetaSettings
from ..targets import TargetSpec, build_context
from .datasets import EvalItem
from .metrics import bootstrap_ci, deletion, dsa, random_scores, soft_metrics, sufficiency

METRICS = ["aopc_zero", "aopc_delete", "win_zero", "win_delete", "sufficiency", "soft_ns", "soft_nc",
           "soft_ns_ratio", "soft_nc_ratio", "dsa"]


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


def evaluate(lm: LoadedModel, items: list[EvalItem], methods: list[str], settings: HetaSettings, out_dir: Path,
             draws: int = 5, seed: int = 0) -> dict:
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
    prog = Progress(total=max(1, len(todo)), start=time.monotonic())
    with open(res_path, "a", encoding="utf-8") as fh:
        for it in items:
            pending = [m for m in methods if (it.id, m) not in done]
            if not pending:
                continue
            try:
                full = build_context(lm.model, lm.tokenizer, it.text, TargetSpec(position=1), settings.max_tokens)
                ctx = full.with_target(target_position(full, it.answer_start))
            except HetaError as err:
                for m in pending:
                    fh.write(json.dumps({"item": it.id, "method": m, "error": str(err)}) + "\n")
                    prog.tick(it.id)
                continue
            rand_cache: dict = {}
            for m in pending:
                row = _score_item(lm, it, ctx, m, settings, draws, seed, rand_cache)
                fh.write(json.dumps(row) + "\n")
                fh.flush()
                prog.tick(f"{it.id} {m}")
    print(file=sys.stderr)
    return summarise(res_path, methods, out_dir)


def _score_item(lm, it: EvalItem, ctx, method: str, settings: HetaSettings, draws: int, seed: int,
                rand_cache: dict) -> dict:
    import torch

    t0 = time.perf_counter()
    try:
        exp = explain_context(lm, ctx, settings, method)
    except HetaError as err:
        return {"item": it.id, "method": method, "error": str(err)}
    X = lm.model.get_input_embeddings()(torch.tensor(ctx.input_ids, device=lm.device)).detach()
    scored = np.asarray(ctx.scored)
    y = ctx.target_id
    s = exp.scores
    row = {"item": it.id, "method": method, "n": ctx.target_pos, "p_target": exp.target.prob,
           "target_rank": exp.target.rank, "in_top5": exp.target.rank <= 5, "seconds": time.perf_counter() - t0}
    for mode in ("zero", "delete"):
        d = deletion(lm, X, y, s, scored, mode=mode, random_draws=draws, seed=seed)
        row[f"deletion_{mode}"] = {"ks": d.ks, "drop_top": d.drop_top, "drop_random": d.drop_random}
        row[f"aopc_{mode}"] = d.aopc_top
        row[f"aopc_random_{mode}"] = d.aopc_random
        row[f"win_{mode}"] = float(d.aopc_top > d.aopc_random)
    row["sufficiency"] = float(np.mean(list(sufficiency(lm, X, y, s, scored).values())))
    soft = soft_metrics(lm, X, s, scored, draws=draws, seed=seed)
    if "random" not in rand_cache:
        rs = [soft_metrics(lm, X, random_scores(scored, seed + r), scored, draws=draws, seed=seed) for r in range(3)]
        rand_cache["random"] = {k: float(np.mean([r[k] for r in rs])) for k in ("soft_ns", "soft_nc")}
    rnd = rand_cache["random"]
    row.update(soft_ns=soft["soft_ns"], soft_nc=soft["soft_nc"],
               soft_ns_ratio=soft["soft_ns"] / rnd["soft_ns"] if rnd["soft_ns"] > 0 else None,
               soft_nc_ratio=soft["soft_nc"] / rnd["soft_nc"] if rnd["soft_nc"] > 0 else None)
    if {"evidence", "distractor"} <= set(it.segments):
        spans = [(t.start, t.end) for t in ctx.context_tokens]
        row["dsa"] = dsa(exp.normalised, spans, it.segments["evidence"], it.segments["distractor"])
    return row


def summarise(res_path: Path, methods: list[str], out_dir: Path) -> dict:
    rows = [json.loads(line) for line in res_path.read_text().splitlines() if line.strip()]
    ok = [r for r in rows if "error" not in r]
    summary: dict = {"items": len({r["item"] for r in rows}), "errors": [r for r in rows if "error" in r],
                     "not_top5_items": sorted({r["item"] for r in ok if not r["in_top5"]}), "methods": {}}
    for m in methods:
        mine = [r for r in ok if r["method"] == m and r["in_top5"]]
        summary["methods"][m] = {"n": len(mine)}
        for k in METRICS:
            vals = [r.get(k) for r in mine if r.get(k) is not None]
            mean, lo, hi = bootstrap_ci(vals)
            summary["methods"][m][k] = {"mean": mean, "ci95": [lo, hi], "n": len(vals)}
        summary["methods"][m]["seconds_mean"] = float(np.mean([r["seconds"] for r in mine])) if mine else None
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _markdown(summary, methods, out_dir)
    _plots(ok, methods, out_dir)
    return summary


def _markdown(summary: dict, methods: list[str], out_dir: Path) -> None:
    cols = ["aopc_zero", "aopc_delete", "win_zero", "win_delete", "sufficiency", "soft_ns_ratio", "soft_nc_ratio",
            "dsa"]
    lines = ["| method | n | " + " | ".join(cols) + " | s/item |", "|---|---|" + "---|" * len(cols) + "---|"]
    for m in methods:
        s = summary["methods"][m]
        cells = []
        for c in cols:
            v = s[c]
            cells.append("-" if not v["n"] else f"{v['mean']:.3f} [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}]")
        lines.append(f"| {m} | {s['n']} | " + " | ".join(cells) + f" | {s['seconds_mean'] or 0:.1f} |")
    lines += ["", f"Items whose target is not in the model's top-5 (excluded above): "
                  f"{len(summary['not_top5_items'])} ({', '.join(summary['not_top5_items'][:20])}"
                  f"{' ...' if len(summary['not_top5_items']) > 20 else ''}).",
              f"Errors: {len(summary['errors'])}.",
              "aopc_*: mean drop of p(target) over k = 1,2,3,5,10%,20%,30% of scored tokens removed (zeroed "
              "embedding / deleted token); win_*: fraction of items where the method's AOPC beats random "
              "removal (5 draws); sufficiency: mean p(target) keeping only the top-k; soft_*_ratio: Soft-NS/NC "
              "divided by the same metric for random scores; dsa: mass on evidence minus mass on distractor."]
    (out_dir / "summary.md").write_text("\n".join(lines) + "\n")


def _plots(rows: list[dict], methods: list[str], out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, mode in zip(axes, ("zero", "delete")):
        for m in methods:
            curves = [r[f"deletion_{mode}"]["drop_top"][:4] for r in rows if r["method"] == m and r["in_top5"]
                      and len(r[f"deletion_{mode}"]["drop_top"]) >= 4]
            if curves:
                ax.plot([1, 2, 3, 5], np.mean(curves, 0), marker="o", label=m)
        rand = [r[f"deletion_{mode}"]["drop_random"][:4] for r in rows if r["in_top5"]
                and len(r[f"deletion_{mode}"]["drop_random"]) >= 4]
        if rand:
            ax.plot([1, 2, 3, 5], np.mean(rand, 0), "k--", label="random")
        ax.set_title(f"deletion ({mode}): drop in p(target)")
        ax.set_xlabel("k tokens removed")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "deletion_curves.png", dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    means = [np.mean([r["aopc_zero"] for r in rows if r["method"] == m and r["in_top5"]] or [0]) for m in methods]
    ax.bar(methods, means)
    rnd = np.mean([r["aopc_random_zero"] for r in rows if r["in_top5"]] or [0])
    ax.axhline(rnd, color="k", ls="--", label="random")
    ax.set_ylabel("AOPC (zero embedding)")
    ax.tick_params(axis="x", rotation=40, labelsize=8)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "aopc.png", dpi=120)
    plt.close(fig)
