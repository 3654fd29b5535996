"""Quantization comparison runs: the same explanations in several modes, and what changed.

For each mode (the first is the reference, normally `none`) the model is loaded alone (the
previous one is freed first, so memory numbers are the mode's own) and every item is explained
with HETA at each preset. Per mode we record
- speed: load time, latency p50/p95 per preset;
- memory: model footprint (`get_memory_footprint`), RSS after load, peak RSS and peak torch /
  NVML GPU memory while explaining;
- agreement with the reference mode per component (M, S, I) and final: Spearman, Kendall,
  top-5/top-10 overlap (heta_lite.agreement), mean and 95% bootstrap interval over items;
- faithfulness: deletion AOPC (zero embedding) of HETA's top-k vs random, and wins vs random;
- Hessian stability: S across probe seeds within the mode (estimator noise) against S of the
  same seed between this mode and the reference (quantization noise): if the second is not
  worse than the first, quantization moves curvature less than the estimator's own randomness;
- derivatives: which path gradients/HVPs took (heta_lite.quantization.derivatives) and the measured check.
"""
from __future__ import annotations

import gc
import itertools
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import psutil
import torch

from heta_lite.agreement import agreement
from heta_lite.faithfulness.metrics import bootstrap_ci, deletion
from heta_lite.settings import HetaSettings

COMPONENTS = ("M", "S", "I", "final")
AGREEMENT_KEYS = ("spearman", "kendall", "top5", "top10")


@dataclass
class CompareConfig:
    model: str = "auto"
    modes: list[str] = field(default_factory=lambda: ["none", "8bit", "4bit-nf4"])
    presets: list[str] = field(default_factory=lambda: ["fast", "balanced"])
    seeds: int = 3  # probe seeds for the Hessian-stability part (0 disables it)
    faithfulness: bool = True
    draws: int = 5  # random draws for the deletion baseline
    device: str | None = None
    max_tokens: int = 512
    frame: str = HetaSettings.frame  # recorded in compare.json with the rest of the config
    gate: str = HetaSettings.gate


@dataclass
class ItemRun:
    """One item explained in one mode at one preset (scores over the whole context, 0 = unscored)."""

    item: str
    preset: str
    seconds: float
    scored: list[bool]
    final: list[float]
    components: dict[str, list[float]]
    p_target: float
    derivatives: str | None = None
    aopc: float | None = None
    aopc_random: float | None = None
    seed_S: list[list[float]] = field(default_factory=list)  # S_raw per probe seed (first preset)


def _free(lm) -> None:
    del lm
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _gpu_peak() -> int | None:
    return int(torch.cuda.max_memory_allocated()) if torch.cuda.is_available() else None


def run_mode(mode: str, items, cfg: CompareConfig, tick: Callable[[str], None]) -> tuple[dict, list[ItemRun]]:
    """Load the model in `mode`, explain every item at every preset; return (mode summary, runs)."""
    from heta_lite.engine import embed, explain_context
    from heta_lite.faithfulness.evaluate import item_context
    from heta_lite.models.loader import load_model
    from heta_lite.profiling import PeakMemory, snapshot

    gc.collect()
    rss_before = psutil.Process().memory_info().rss
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    lm = load_model(cfg.model, device=cfg.device, quantization=mode)
    info: dict[str, Any] = {
        "mode": lm.quantization, "load_seconds": lm.load_seconds, "model": lm.describe(),
        "footprint_bytes": int(lm.model.get_memory_footprint()),
        "rss_after_load_bytes": psutil.Process().memory_info().rss, "rss_before_load_bytes": rss_before,
        "memory_after_load": snapshot().to_dict(),
    }
    runs: list[ItemRun] = []
    with PeakMemory() as peak:
        for preset in cfg.presets:
            settings = HetaSettings.preset(preset, max_tokens=cfg.max_tokens, frame=cfg.frame, gate=cfg.gate)
            for it in items:
                ctx = item_context(lm, it, settings)
                t0 = time.perf_counter()
                exp = explain_context(lm, ctx, settings, "heta")
                dt = time.perf_counter() - t0
                scored = np.asarray(ctx.scored, bool)
                run = ItemRun(item=it.id, preset=preset, seconds=dt, scored=scored.tolist(),
                              final=exp.scores.tolist(),
                              components={k: c.raw.tolist() for k, c in exp.result.components.items()},
                              p_target=exp.target.prob,
                              derivatives=None if exp.derivatives is None else exp.derivatives["path"])
                if preset == cfg.presets[0]:
                    _, X = embed(lm, ctx.input_ids)
                    if cfg.faithfulness:
                        d = deletion(lm, X, ctx.target_id, exp.scores, scored, "zero", random_draws=cfg.draws)
                        run.aopc, run.aopc_random = d.aopc_top, d.aopc_random
                    for seed in range(1, cfg.seeds):  # seed 0 is the run above
                        e_s = explain_context(lm, ctx, settings.replace(seed=seed), "heta-S")
                        run.seed_S.append(e_s.result.components["S"].raw.tolist())
                    if cfg.seeds:
                        run.seed_S.insert(0, run.components["S"])
                runs.append(run)
                tick(f"{lm.quantization} {preset} {it.id}")
    info["peak_rss_bytes"] = int(peak.peak_rss)
    info["peak_torch_cuda_bytes"] = _gpu_peak()
    info["derivative_check"] = (lm.extra["derivative_check"].to_dict() if "derivative_check" in lm.extra else None)
    _free(lm)
    return info, runs


def _summary_stat(values: list[float]) -> dict[str, float | None]:
    vals = [v for v in values if v is not None and np.isfinite(v)]
    if not vals:
        return {"mean": None, "lo": None, "hi": None, "n": 0}
    mean, lo, hi = bootstrap_ci(vals)
    return {"mean": float(mean), "lo": float(lo), "hi": float(hi), "n": len(vals)}


def _vector(run: ItemRun, comp: str) -> np.ndarray:
    return np.asarray(run.final if comp == "final" else run.components[comp], float)


def compare_runs(ref: list[ItemRun], other: list[ItemRun]) -> dict[str, dict[str, dict[str, dict]]]:
    """{preset: {component: {metric: stat}}} of `other` against `ref`, matched by (item, preset)."""
    by_key = {(r.item, r.preset): r for r in ref}
    out: dict[str, dict[str, dict[str, dict]]] = {}
    for preset, group in itertools.groupby(sorted(other, key=lambda r: r.preset), key=lambda r: r.preset):
        rows = [(by_key[(r.item, r.preset)], r) for r in group if (r.item, r.preset) in by_key]
        out[preset] = {}
        for comp in COMPONENTS:
            ag = [agreement(_vector(a, comp), _vector(b, comp), a.scored) for a, b in rows]
            out[preset][comp] = {k: _summary_stat([getattr(g, k) for g in ag]) for k in AGREEMENT_KEYS}
    return out


def hessian_stability(ref: list[ItemRun], other: list[ItemRun]) -> dict[str, dict]:
    """Within-mode: mean pairwise Spearman of S between probe seeds (estimator noise).
    Between modes: Spearman of S between this mode and the reference at the same seed."""
    by_item = {r.item: r for r in ref if r.seed_S}
    within, between = [], []
    for r in other:
        if not r.seed_S:
            continue
        pairs = [agreement(a, b, r.scored).spearman for a, b in itertools.combinations(r.seed_S, 2)]
        within.append(float(np.nanmean(pairs)) if pairs else np.nan)
        if r.item in by_item:
            base = by_item[r.item]
            between.append(float(np.nanmean([agreement(a, b, r.scored).spearman
                                              for a, b in zip(base.seed_S, r.seed_S)])))
    return {"within_mode_spearman": _summary_stat(within), "vs_reference_spearman": _summary_stat(between)}


def summarise(modes: list[dict], runs: dict[str, list[ItemRun]], cfg: CompareConfig) -> dict:
    ref_mode = modes[0]["mode"]
    ref = runs[ref_mode]
    out = {"reference_mode": ref_mode, "config": asdict(cfg), "modes": []}
    for info in modes:
        rs = runs[info["mode"]]
        latency = {p: {"p50": float(np.percentile([r.seconds for r in rs if r.preset == p], 50)),
                       "p95": float(np.percentile([r.seconds for r in rs if r.preset == p], 95))}
                   for p in cfg.presets if any(r.preset == p for r in rs)}
        faith = [r for r in rs if r.aopc is not None]
        entry = {
            **{k: v for k, v in info.items() if k not in ("model",)},
            "bitsandbytes": info["model"].get("quant", {}).get("bitsandbytes"),
            "latency_s": latency,
            "derivative_paths": sorted({r.derivatives for r in rs if r.derivatives}),
            "agreement": compare_runs(ref, rs) if info["mode"] != ref_mode else None,
            "faithfulness": {
                "aopc": _summary_stat([r.aopc for r in faith]),
                "aopc_random": _summary_stat([r.aopc_random for r in faith]),
                "win_vs_random": _summary_stat([float(r.aopc > r.aopc_random) for r in faith]),
            } if faith else None,
            "hessian_stability": hessian_stability(ref, rs) if cfg.seeds > 1 else None,
            "p_target_abs_change": _summary_stat(
                [abs(r.p_target - b.p_target) for r in rs for b in ref if (b.item, b.preset) == (r.item, r.preset)]),
        }
        out["modes"].append(entry)
    return out


def _fmt(stat: dict | None, digits: int = 3) -> str:
    if not stat or stat.get("mean") is None:
        return "-"
    return f"{stat['mean']:.{digits}f} [{stat['lo']:.{digits}f}, {stat['hi']:.{digits}f}]"


def _mib(b: int | None) -> str:
    return "-" if b is None else f"{b / 2**20:.0f}"


def markdown(summary: dict, command: str, n_items: int, machine: str) -> str:
    cfg = summary["config"]
    ref = summary["reference_mode"]
    lines = [f"# Quantization comparison: {cfg['model']}", "", f"`{command}`", "",
             f"{n_items} items; presets {', '.join(cfg['presets'])}; frame {cfg.get('frame', 'none')}, gate "
             f"{cfg.get('gate', 'full')}; reference mode `{ref}`; {machine}.", "",
             "## Speed, memory, derivatives", "",
             "| mode | load s | " + " | ".join(f"{p} p50 / p95 s" for p in cfg["presets"])
             + " | footprint MiB | peak RSS MiB | peak torch GPU MiB | gradients/HVPs through | check (grad / HVP cosine) |",
             "|---|---|" + "---|" * len(cfg["presets"]) + "---|---|---|---|---|"]
    for m in summary["modes"]:
        lat = " | ".join(f"{m['latency_s'][p]['p50']:.2f} / {m['latency_s'][p]['p95']:.2f}" if p in m["latency_s"]
                         else "-" for p in cfg["presets"])
        chk = m.get("derivative_check")
        chk_s = "-" if not chk else (chk["error"] or f"{chk['grad_cosine']:.4f} / {chk['hvp_cosine']:.4f}")
        lines.append(f"| {m['mode']} | {m['load_seconds']:.1f} | {lat} | {_mib(m['footprint_bytes'])} | "
                     f"{_mib(m['peak_rss_bytes'])} | {_mib(m['peak_torch_cuda_bytes'])} | "
                     f"{', '.join(m['derivative_paths']) or 'model'} | {chk_s} |")
    for preset in cfg["presets"]:
        lines += ["", f"## Agreement with `{ref}` ({preset}): mean [95% bootstrap interval] over items", "",
                  "| mode | component | Spearman | Kendall | top-5 overlap | top-10 overlap |", "|---|---|---|---|---|---|"]
        for m in summary["modes"]:
            if not m["agreement"] or preset not in m["agreement"]:
                continue
            for comp in COMPONENTS:
                a = m["agreement"][preset][comp]
                lines.append(f"| {m['mode']} | {comp} | " + " | ".join(_fmt(a[k]) for k in AGREEMENT_KEYS) + " |")
    lines += ["", f"## Faithfulness ({cfg['presets'][0]}): deletion AOPC, zero embedding (higher is better)", "",
              "| mode | HETA AOPC | random AOPC | wins vs random | abs. change of p(target) vs reference |",
              "|---|---|---|---|---|"]
    for m in summary["modes"]:
        f = m["faithfulness"] or {}
        lines.append(f"| {m['mode']} | {_fmt(f.get('aopc'))} | {_fmt(f.get('aopc_random'))} | "
                     f"{_fmt(f.get('win_vs_random'), 2)} | {_fmt(m['p_target_abs_change'], 4)} |")
    if cfg["seeds"] > 1:
        lines += ["", f"## Hessian stability ({cfg['presets'][0]}, {cfg['seeds']} probe seeds): Spearman of S", "",
                  "| mode | between seeds, same mode (estimator noise) | vs reference, same seed (quantization + estimator) |",
                  "|---|---|---|"]
        for m in summary["modes"]:
            h = m["hessian_stability"] or {}
            lines.append(f"| {m['mode']} | {_fmt(h.get('within_mode_spearman'))} | "
                         f"{_fmt(h.get('vs_reference_spearman')) if m['mode'] != ref else '-'} |")
    return "\n".join(lines) + "\n"


def plots(summary: dict, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg, modes = summary["config"], summary["modes"]
    names = [m["mode"] for m in modes]
    paths = []
    fig, ax = plt.subplots(figsize=(7, 3.5))
    w = 0.8 / max(len(cfg["presets"]), 1)
    for j, p in enumerate(cfg["presets"]):
        ax.bar(np.arange(len(names)) + j * w, [m["latency_s"].get(p, {}).get("p50", np.nan) for m in modes], w, label=p)
    ax.set_xticks(np.arange(len(names)) + w * (len(cfg["presets"]) - 1) / 2, names)
    ax.set_ylabel("latency p50 (s)")
    ax.legend()
    ax.set_title("HETA latency per mode")
    paths.append(out_dir / "latency.png")
    fig.tight_layout(), fig.savefig(paths[-1], dpi=120), plt.close(fig)

    others = [m for m in modes if m["agreement"]]
    if others:
        preset = cfg["presets"][0]
        fig, ax = plt.subplots(figsize=(7, 3.5))
        w = 0.8 / len(others)
        for j, m in enumerate(others):
            a = m["agreement"].get(preset, {})
            means = [a.get(c, {}).get("spearman", {}).get("mean") or np.nan for c in COMPONENTS]
            ax.bar(np.arange(len(COMPONENTS)) + j * w, means, w, label=m["mode"])
        ax.set_xticks(np.arange(len(COMPONENTS)) + w * (len(others) - 1) / 2, COMPONENTS)
        ax.set_ylim(-0.1, 1.05)
        ax.set_ylabel(f"Spearman vs {summary['reference_mode']}")
        ax.set_title(f"Agreement with the reference mode ({preset})")
        ax.legend()
        paths.append(out_dir / "agreement.png")
        fig.tight_layout(), fig.savefig(paths[-1], dpi=120), plt.close(fig)

    if cfg["seeds"] > 1:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        within = [(m["hessian_stability"] or {}).get("within_mode_spearman", {}).get("mean") or np.nan for m in modes]
        between = [(m["hessian_stability"] or {}).get("vs_reference_spearman", {}).get("mean") or np.nan
                   for m in modes]
        x = np.arange(len(names))
        ax.bar(x - 0.2, within, 0.4, label="between probe seeds (same mode)")
        ax.bar(x + 0.2, between, 0.4, label="vs reference mode (same seed)")
        ax.set_xticks(x, names)
        ax.set_ylim(-0.1, 1.05)
        ax.set_ylabel("Spearman of S")
        ax.set_title("Hessian stability")
        ax.legend(fontsize=8)
        paths.append(out_dir / "hessian_stability.png")
        fig.tight_layout(), fig.savefig(paths[-1], dpi=120), plt.close(fig)
    return paths


def run_compare(items, cfg: CompareConfig, out_dir: Path, command: str = "",
                tick: Callable[[str], None] = lambda _: None) -> dict:
    """Run every mode, write compare.json / compare.md / *.png under out_dir, return the summary.

    A mode that cannot load here (e.g. bitsandbytes missing) is recorded with its error, not fatal."""
    from heta_lite.errors import HetaError

    out_dir.mkdir(parents=True, exist_ok=True)
    infos, runs, failed = [], {}, []
    for mode in cfg.modes:
        try:
            info, rs = run_mode(mode, items, cfg, tick)
        except (HetaError, RuntimeError, ImportError, ValueError) as err:
            if not infos:
                raise  # the reference mode must run
            failed.append({"mode": mode, "error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"})
            continue
        infos.append(info)
        runs[info["mode"]] = rs
    summary = summarise(infos, runs, cfg)
    summary["failed_modes"] = failed
    summary["command"] = command
    summary["items"] = len(items)
    summary["machine"] = {"torch": torch.__version__, "cuda": torch.cuda.is_available(),
                          "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                          "threads": torch.get_num_threads()}
    (out_dir / "compare.json").write_text(json.dumps(
        {**summary, "runs": {m: [asdict(r) for r in rs] for m, rs in runs.items()}}, indent=1, default=float) + "\n")
    machine = (f"GPU {summary['machine']['gpu']}" if summary["machine"]["cuda"]
               else f"CPU, {summary['machine']['threads']} threads") + f", torch {torch.__version__}"
    md = markdown(summary, command, len(items), machine)
    if failed:
        md += "\n## Modes that could not run here\n\n" + "\n".join(f"- `{f['mode']}`: {f['error']}" for f in failed) + "\n"
    (out_dir / "compare.md").write_text(md)
    summary["plots"] = [str(p) for p in plots(summary, out_dir)]
    return summary
