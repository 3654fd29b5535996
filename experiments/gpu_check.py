"""GPU check (issue #16 item 4): HETA on a Qwen2.5-3B-shaped model with random weights, per
quantization mode, context length and preset.

    experiments/gpu_check.sh                      # what a GPU owner runs: the defaults below
    python -m experiments.gpu_check --modes bf16,8bit,4bit --n 128,512 --presets fast,balanced,accurate --runs 5
    python -m experiments.gpu_check --tiny        # the same code path on a CPU in seconds (the tests)

For every cell (mode, n, preset) it records:
- latency of `R` explanations with seeds 0..R-1 (heta_lite.engine.explain_context, the faithfulness
  check off: it is not part of HETA), p50 / p95 in seconds and as a multiple of one forward+backward
  (log p(y) to the input embeddings) measured on the same model and context in the same run;
- peak memory: torch.cuda.max_memory_allocated (reset at the cell's start; weights included) on a GPU,
  the process's peak RSS (heta_lite.profiling.PeakMemory) on a CPU;
- quantized modes: HVP-path agreement, the Spearman correlation of S (method heta-S, seed 0) computed
  with HetaSettings(derivatives='quantized') vs 'dequantized' (heta_lite.quantization.derivatives);
  'quantized' is refused when the model's derivative check fails, and the refusal is the recorded result;
- the frame / sink diagnostics of each explanation (`exp.frame`): gate_mass_on_frame, first_content_share.
A cell (or a whole mode) that fails -- out of memory, bitsandbytes missing, a timeout -- is recorded
with its error and the run goes on; the remaining runs of a failed cell are skipped (a timeout
repeats). Results are rewritten after every cell, so a run killed half-way leaves what it measured.

Writes <out>/gpu_check.json and <out>/gpu_check.md (gpu_check_tiny.* with --tiny).
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import math
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch

from experiments import common
from experiments.common import pct
from experiments.qwen_shape import (QWEN25_3B_INSTRUCT, config_values, prompt_words, qwen2_config, qwen_tokenizer,
                                    random_model, save_folder)

DEFAULT_OUT = common.RESULTS / "gpu_check"
UNQUANTIZED = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
DTYPES = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16,
          "float32": torch.float32, "fp32": torch.float32}
TABLE = ["mode", "n", "preset", "runs ok", "p50 s", "p95 s", "p50 x fwd+bwd", "p95 x fwd+bwd", "peak MiB",
         "S Spearman quantized vs dequantized", "gate mass on frame", "first content share", "error"]


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true",
                    help="a tiny Qwen2 of the same family on the CPU (defaults: --n 8,12 --runs 2 --device cpu)")
    ap.add_argument("--modes", default="bf16,8bit,4bit",
                    help="bf16 / fp16 / fp32 (not quantized, that dtype) or a quantization mode (8bit, 4bit = "
                    "4bit-nf4, 4bit-fp4, 4bit-nf4-dq, ...; compute dtype --dtype)")
    ap.add_argument("--n", default=None, help="context lengths in tokens, comma-separated (default 128,512; tiny 8,12)")
    ap.add_argument("--presets", default="fast,balanced,accurate")
    ap.add_argument("--runs", type=int, default=None, help="explanations per cell, seeds 0..R-1 (default 5; tiny 2)")
    ap.add_argument("--fb-runs", type=int, default=5, help="forward+backward timings per (mode, n)")
    ap.add_argument("--agreement-presets", default="fast,balanced",
                    help="presets whose cells measure the HVP-path agreement on quantized modes (two S runs each; "
                    "'accurate' at n = 512 costs two block-estimator runs); 'none' for no preset")
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available; tiny: cpu)")
    ap.add_argument("--dtype", default="bfloat16", help="dtype of the random weights and compute dtype of 4-bit modes")
    ap.add_argument("--time-limit", type=float, default=300.0,
                    help="seconds one explanation may take before it is stopped (JobControl); the cell records "
                    "the timeout and skips its remaining runs")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="wall-clock budget for the whole run (building the model included): each mode gets an "
                    "equal share of what is left, an explanation is stopped at its mode's share (recorded as a "
                    "JobTimeout), cells not reached are recorded as not run. Default: none")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--out", default=None, help="results folder (default experiments/results/gpu_check)")
    ap.add_argument("--work-dir", default=None,
                    help="where the random model is saved for the quantized modes' loader (default: a temporary "
                    "folder, deleted at the end; full size needs ~6.2 GB of disk)")
    ap.add_argument("--allow-cpu", action="store_true", help="run the full-size model on a CPU (slow: hours)")
    ap.add_argument("--layers", type=int, default=None,
                    help="override num_hidden_layers (full width, fewer layers: a quick smoke run of the real "
                    "widths, vocabulary and special-token ids; the results say so)")
    args = ap.parse_args(argv)
    args.n = [int(x) for x in (args.n or ("8,12" if args.tiny else "128,512")).split(",") if x.strip()]
    args.runs = args.runs if args.runs is not None else (2 if args.tiny else 5)
    args.modes = list(dict.fromkeys(m.strip() for m in args.modes.split(",") if m.strip()))  # each once, in order
    args.presets = list(dict.fromkeys(p.strip() for p in args.presets.split(",") if p.strip()))
    args.n = list(dict.fromkeys(args.n))
    args.agreement_presets = [] if args.agreement_presets.strip() in ("", "none") else [
        p.strip() for p in args.agreement_presets.split(",") if p.strip()]
    args.device = args.device or ("cpu" if args.tiny else ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.dtype not in DTYPES:
        ap.error(f"--dtype must be one of {', '.join(DTYPES)}")
    if args.runs < 1 or not args.n or min(args.n) < 2:
        ap.error("--runs must be >= 1 and every --n >= 2")
    if args.device == "cpu" and not args.tiny and not args.allow_cpu:
        ap.error("no CUDA GPU visible: the full-size (3B) check on a CPU takes hours. Use --tiny for the CPU "
                 "check, or --allow-cpu to run it anyway.")
    return args


def say(text: str) -> None:
    print(f"[gpu_check] {text}", flush=True)


def mode_spec(mode: str, dtype: torch.dtype) -> tuple[str, torch.dtype]:
    """(heta_lite quantization name, model / compute dtype) of a --modes entry."""
    if mode in UNQUANTIZED:
        return "none", UNQUANTIZED[mode]
    from heta_lite.quantization.modes import QuantMode

    return QuantMode.parse(mode).name, dtype


def err_text(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text[:500]}"


def clean_float(v):
    """JSON-safe: NaN / inf -> None (a constant ranking has no Spearman)."""
    if isinstance(v, (float, np.floating)):
        return None if not math.isfinite(float(v)) else float(v)
    return v


def sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def reset_peak(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def peak_bytes(device: str, rss_peaks: list[int], cuda_peaks: list[int]) -> tuple[int | None, str]:
    """The cell's peak. The engine's PeakMemory resets CUDA's peak counter at the start of every
    explanation, so the cell's peak is the largest of the per-run peaks it recorded and the counter now."""
    if str(device).startswith("cuda"):
        return max([int(torch.cuda.max_memory_allocated())] + cuda_peaks), "cuda max_memory_allocated"
    return (max(rss_peaks) if rss_peaks else None), "process peak RSS"


class Budget:
    """--budget-s: a deadline for all cells; each mode gets an equal share of what is left."""

    def __init__(self, seconds: float | None):
        self.end = None if seconds is None else time.monotonic() + seconds
        self.mode_end: float | None = None

    def start_mode(self, modes_left: int) -> None:
        if self.end is not None:
            now = time.monotonic()
            self.mode_end = now + max(0.0, self.end - now) / max(1, modes_left)

    def exhausted(self) -> bool:
        return self.mode_end is not None and time.monotonic() > self.mode_end

    def time_limit(self, limit: float) -> float:
        """One explanation's limit: --time-limit, or less when the mode's share ends sooner."""
        if self.mode_end is None:
            return limit
        return max(1e-3, min(limit, self.mode_end - time.monotonic()))


class Check:
    """One run of the check: the model(s), the cells, and the results file rewritten after each cell."""

    def __init__(self, args: argparse.Namespace, command: str):
        self.args = args
        self.command = command
        self.out = Path(args.out) if args.out else DEFAULT_OUT
        self.name = "gpu_check_tiny" if args.tiny else "gpu_check"
        self.dtype = DTYPES[args.dtype]
        self.tokenizer = qwen_tokenizer(tiny=args.tiny)
        self.config = qwen2_config(args.tiny, self.tokenizer)
        if args.layers:
            self.config.num_hidden_layers = args.layers
            self.config.layer_types = self.config.layer_types[: args.layers]
        self.budget = Budget(args.budget_s)
        self.modes: dict[str, dict[str, Any]] = {}
        self.cells: list[dict[str, Any]] = []
        self.folder: Path | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.built = None  # the LoadedModel of the random weights as built, while a mode may use it

    # ---- models ---------------------------------------------------------------------------
    def _ensure_folder(self, model) -> Path:
        if self.folder is None:
            if self.args.work_dir:
                self.folder = Path(self.args.work_dir) / ("qwen2.5-3b-random" + ("-tiny" if self.args.tiny else ""))
                self.folder.mkdir(parents=True, exist_ok=True)
            else:
                self._tmp = tempfile.TemporaryDirectory(prefix="heta-gpu-check-")
                self.folder = Path(self._tmp.name) / "model"
            say(f"saving them to {self.folder} for the quantized modes' loader")
            t0 = time.perf_counter()
            save_folder(model, self.tokenizer, self.folder)
            self.modes.setdefault("_build", {})["save_seconds"] = time.perf_counter() - t0
        return self.folder

    def prepare(self) -> Any:
        """Build the random weights once on the device in --dtype; save them to a folder when a mode
        must load through heta_lite.models.load_model (quantized modes, other dtypes)."""
        from heta_lite.models import wrap_model

        say(f"building random {'tiny ' if self.args.tiny else ''}Qwen2.5-3B-shaped weights on {self.args.device} "
            f"in {self.dtype}")
        t0 = time.perf_counter()
        model = random_model(self.config, self.args.device, self.dtype)
        sync(self.args.device)
        info = {"seconds": time.perf_counter() - t0, "dtype": str(self.dtype).replace("torch.", ""),
                "num_parameters": int(sum(p.numel() for p in model.parameters()))}
        say(f"built {info['num_parameters'] / 1e6:,.1f} M parameters in {info['seconds']:.1f} s")
        self.modes["_build"] = info
        build = ("none", self.dtype)
        specs = [sp for sp in map(self.spec_or_none, self.args.modes) if sp is not None]  # unknown modes: skipped
        if any(sp != build for sp in specs):  # some mode loads through the loader (then so may a later bf16)
            self._ensure_folder(model)
        if not specs or specs[0] != build:  # the first mode loads from the folder: free the device now
            del model
            free_memory()
            return None
        return wrap_model(model, self.tokenizer, name="qwen2.5-3b-random" + ("-tiny" if self.args.tiny else ""),
                          source="experiments.qwen_shape", revision=f"random-seed0-{info['dtype']}")

    def spec_or_none(self, mode: str) -> tuple[str, torch.dtype] | None:
        try:
            return mode_spec(mode, self.dtype)
        except Exception:  # noqa: BLE001 - loading it fails again, with the message, in run_mode
            return None

    def uses_built(self, mode: str) -> bool:
        return self.built is not None and self.spec_or_none(mode) == ("none", self.dtype)

    def load(self, mode: str):
        """The LoadedModel of `mode`: the built model itself (its own dtype, not quantized), else the
        saved folder through the product's loader (bitsandbytes quantization in from_pretrained)."""
        from heta_lite.models import load_model

        quant, dtype = mode_spec(mode, self.dtype)
        if self.uses_built(mode):
            return self.built
        lm = load_model(str(self.folder), device=self.args.device, dtype=dtype, quantization=quant)
        lm.name = "qwen2.5-3b-random" + ("-tiny" if self.args.tiny else "")
        # The in-process tokenizer, not the folder's copy: transformers 5 loads a folder whose config says
        # qwen2 with its own Qwen2Tokenizer pipeline (byte-level BPE), which does not read our WordLevel
        # tokenizer.json the same way. The real Qwen2.5 folder has the real tokenizer, so this is only
        # the stand-in's concern.
        lm.tokenizer = self.tokenizer
        return lm

    # ---- measurements ---------------------------------------------------------------------
    def settings(self, preset: str, n: int, **over):
        from heta_lite import HetaSettings

        return HetaSettings.preset(preset, max_tokens=max(512, n + 1), check=False, **over)

    def context(self, lm, n: int):
        from heta_lite import TargetSpec
        from heta_lite.engine import make_context

        ctx = make_context(lm, prompt_words(n), TargetSpec(position=n), self.settings("fast", n))
        if ctx.target_pos != n or len(ctx.input_ids) != n:
            raise RuntimeError(f"context is {len(ctx.input_ids)} tokens, expected {n}")
        return ctx

    def forward_backward(self, lm, ctx) -> list[float]:
        """Seconds of one forward + backward of log p(y) to the input embeddings (after a warm-up)."""
        from heta_lite.engine import embed
        from heta_lite.methods.logprob import target_logprob

        _ids, X = embed(lm, ctx.input_ids)
        times = []
        for k in range(self.args.fb_runs + 1):
            Xg = X.detach().clone().requires_grad_(True)
            sync(self.args.device)
            t0 = time.perf_counter()
            with torch.enable_grad():
                target_logprob(lm.model, Xg[None], ctx.target_id).sum().backward()
            sync(self.args.device)
            if k:  # the first is the warm-up
                times.append(time.perf_counter() - t0)
        return times

    def explain(self, lm, ctx, settings, method: str = "heta"):
        from heta_lite.control import JobControl
        from heta_lite.engine import explain_context

        sync(self.args.device)
        t0 = time.perf_counter()
        control = JobControl(time_limit_s=self.budget.time_limit(self.args.time_limit))
        exp = explain_context(lm, ctx, settings, method=method, control=control)
        sync(self.args.device)
        return exp, time.perf_counter() - t0

    def agreement(self, lm, ctx, preset: str, n: int) -> dict[str, Any]:
        """Spearman of S (heta-S, seed 0) with derivatives 'quantized' vs 'dequantized', scored tokens only."""
        from heta_lite.agreement import agreement

        out: dict[str, Any] = {"spearman": None, "error": None}
        try:
            S = {}
            for path in ("quantized", "dequantized"):  # 'quantized' first: refused at once when the check failed
                exp, secs = self.explain(lm, ctx, self.settings(preset, n, seed=0, derivatives=path), "heta-S")
                S[path] = exp.result.components["S"].raw
                out[f"{path}_path"] = (exp.derivatives or {}).get("path")
                out[f"{path}_seconds"] = secs
            a = agreement(S["quantized"], S["dequantized"], ctx.scored).to_dict()
            out.update(spearman=a["spearman"], kendall=a["kendall"], top5=a["top5"], n_scored=a["n"])
        except Exception as err:  # noqa: BLE001 - 'quantized' refused (check failed), OOM, timeout: recorded
            out["error"] = err_text(err)
            free_memory()
        return {k: clean_float(v) for k, v in out.items()}

    def cell(self, mode: str, lm, n: int, preset: str, ctx, fb: list[float] | None, fb_error: str | None,
             quantized: bool) -> dict[str, Any]:
        rec: dict[str, Any] = {"mode": mode, "n": n, "preset": preset, "runs": self.args.runs, "runs_ok": 0,
                               "seeds": [], "latency_s": [], "error": None}
        rss_peaks: list[int] = []
        cuda_peaks: list[int] = []
        frames: list[dict] = []
        reset_peak(self.args.device)
        for seed in range(self.args.runs):
            try:
                exp, secs = self.explain(lm, ctx, self.settings(preset, n, seed=seed))
            except Exception as err:  # noqa: BLE001 - OOM, timeout, unsupported: recorded, the run goes on
                rec["error"] = f"seed {seed}: {err_text(err)}"
                free_memory()
                break
            rec["seeds"].append(seed)
            rec["latency_s"].append(secs)
            rss_peaks.append(int(exp.memory.get("peak_rss_bytes") or 0))
            cuda_peaks.append(int(exp.memory.get("peak_torch_cuda_bytes") or 0))
            frames.append(exp.frame)
            rec["derivatives_path"] = (exp.derivatives or {}).get("path", "model")
            rec["settings"] = {k: v for k, v in exp.settings.to_dict().items()
                               if k in ("estimator", "num_probes", "information", "probe_batch", "mask_batch")}
            rec["runs_ok"] += 1
        rec["peak_bytes"], rec["peak_kind"] = peak_bytes(self.args.device, rss_peaks, cuda_peaks)
        if rec["latency_s"]:
            p50, p95 = pct(rec["latency_s"], 50), pct(rec["latency_s"], 95)
            rec.update(p50_s=p50, p95_s=p95)
            if fb:
                fb50 = pct(fb, 50)
                rec.update(forward_backward_p50_s=fb50, p50_x_fwd_bwd=p50 / fb50, p95_x_fwd_bwd=p95 / fb50)
            else:
                rec["forward_backward_error"] = fb_error
            gm = [f.get("gate_mass_on_frame") for f in frames]
            fc = [f.get("first_content_share") for f in frames]
            rec["frame"] = {"source": frames[0].get("source"), "tokens": frames[0].get("tokens"),
                            "first_content_index": frames[0].get("first_content_index"),
                            "gate_mass_on_frame": [clean_float(v) for v in gm],
                            "first_content_share": [clean_float(v) for v in fc],
                            "gate_mass_on_frame_p50": clean_float(pct([v for v in gm if v is not None], 50)),
                            "first_content_share_p50": clean_float(pct([v for v in fc if v is not None], 50))}
        if not quantized:
            rec["agreement"] = {"spearman": None, "error": None, "note": "not quantized: one derivative path"}
        elif preset not in self.args.agreement_presets:
            rec["agreement"] = {"spearman": None, "error": None, "note": "not measured (--agreement-presets)"}
        else:
            rec["agreement"] = self.agreement(lm, ctx, preset, n)
        return rec

    def failed_cells(self, mode: str, ns, presets, error: str) -> None:
        for n in ns:
            for preset in presets:
                self.cells.append({"mode": mode, "n": n, "preset": preset, "runs": self.args.runs, "runs_ok": 0,
                                   "latency_s": [], "error": error})

    # ---- the run --------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        if self.args.threads:
            torch.set_num_threads(self.args.threads)
        if str(self.args.device).startswith("cuda") and not torch.cuda.is_available():
            raise SystemExit("--device cuda but torch sees no CUDA GPU (torch.cuda.is_available() is False).")
        import logging

        logging.getLogger("bitsandbytes.autograd._functions").setLevel(logging.ERROR)
        try:
            self.built = self.prepare()
        except Exception as err:  # noqa: BLE001 - e.g. OOM building the weights: every cell says so
            self.modes["_build"] = {"error": err_text(err)}
            for mode in self.args.modes:
                self.failed_cells(mode, self.args.n, self.args.presets, f"building the model failed: {err_text(err)}")
            self.write()
            return self.result()
        try:
            for k, mode in enumerate(self.args.modes):
                self.budget.start_mode(len(self.args.modes) - k)
                spec = self.spec_or_none(mode)
                if spec is not None and spec != ("none", self.dtype):
                    self.built = None  # never two models on the device: a later mode of its dtype reloads it
                    free_memory()
                self.run_mode(mode)
                if spec == ("none", self.dtype):
                    self.built = None  # its mode ran: free the device for the next one
                free_memory()
        finally:
            self.write()
            if self._tmp is not None:
                self._tmp.cleanup()
        return self.result()

    def run_mode(self, mode: str) -> None:
        from heta_lite.quantization.derivatives import resolve_derivative_path

        info: dict[str, Any] = {"mode": mode}
        self.modes[mode] = info
        t0 = time.perf_counter()
        try:
            reset_peak(self.args.device)
            lm = self.load(mode)
            sync(self.args.device)
        except Exception as err:  # noqa: BLE001 - bitsandbytes missing / unsupported: every cell of the mode says so
            info["error"] = err_text(err)
            self.failed_cells(mode, self.args.n, self.args.presets, f"loading mode {mode} failed: {err_text(err)}")
            self.write()
            return
        info.update(load_seconds=time.perf_counter() - t0, model=lm.describe())
        say(f"mode {mode}: {lm.quantization}, {lm.dtype}, loaded in {info['load_seconds']:.1f} s")
        if str(self.args.device).startswith("cuda"):
            info["weights_bytes"] = int(torch.cuda.memory_allocated())
        else:
            info["weights_bytes"] = int(sum(p.numel() * p.element_size() for p in lm.model.parameters()))
        quantized = lm.quantization != "none"
        if quantized:
            try:
                path = resolve_derivative_path(lm, "auto")  # the engine reuses this measured check
                info["derivatives_auto"] = {
                    k: ({kk: clean_float(vv) for kk, vv in v.items()} if isinstance(v, dict) else v)
                    for k, v in path.to_dict().items()}
            except Exception as err:  # noqa: BLE001
                info["derivatives_auto"] = {"error": err_text(err)}
        per_n: dict[int, tuple] = {}
        for preset in self.args.presets:  # cheap presets first: with a budget, the targets come first
            for n in self.args.n:
                if self.budget.exhausted():
                    self.failed_cells(mode, [n], [preset], "not run: --budget-s reached")
                    continue
                if n not in per_n:
                    per_n[n] = self.per_n(lm, n)
                ctx, fb, fb_error, ctx_error = per_n[n]
                if ctx_error:
                    self.failed_cells(mode, [n], [preset], ctx_error)
                else:
                    self.cells.append(self.cell(mode, lm, n, preset, ctx, fb, fb_error, quantized))
                    c = self.cells[-1]
                    say(f"{mode} n={n} {preset}: "
                          + (f"p50 {c['p50_s']:.3f} s p95 {c['p95_s']:.3f} s" if c.get("latency_s") else "no runs")
                          + (f"; error {c['error']}" if c.get("error") else ""))
                self.write()
        info["forward_backward_p50_s"] = {n: clean_float(pct(v[1], 50)) if v[1] else None for n, v in per_n.items()}
        del lm

    def per_n(self, lm, n: int):
        """(context, fwd+bwd seconds, fwd+bwd error, context error) for one n; a warm-up explanation
        (fast preset, not timed) first, so CUDA initialisation and the derivative check are not timed."""
        try:
            ctx = self.context(lm, n)
        except Exception as err:  # noqa: BLE001
            return None, None, None, f"context of {n} tokens failed: {err_text(err)}"
        try:
            self.explain(lm, ctx, self.settings("fast", n, seed=0))
        except Exception:  # noqa: BLE001 - the cells record their own errors
            free_memory()
        try:
            fb, fb_error = self.forward_backward(lm, ctx), None
        except Exception as err:  # noqa: BLE001
            fb, fb_error = None, err_text(err)
            free_memory()
        return ctx, fb, fb_error, None

    # ---- results --------------------------------------------------------------------------
    def result(self) -> dict[str, Any]:
        gpu = None
        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            gpu = {"name": p.name, "total_memory_bytes": int(p.total_memory),
                   "capability": f"{p.major}.{p.minor}", "cuda": torch.version.cuda}
        try:
            import bitsandbytes

            bnb = bitsandbytes.__version__
        except Exception:  # noqa: BLE001
            bnb = None
        import transformers

        return {"tiny": self.args.tiny, "device": self.args.device, "gpu": gpu,
                "versions": {"transformers": transformers.__version__, "bitsandbytes": bnb},
                "config": {**config_values(self.args.tiny, self.tokenizer),
                           **({"num_hidden_layers": self.args.layers} if self.args.layers else {})},
                "layers_override": self.args.layers, "published_config": QWEN25_3B_INSTRUCT,
                "args": {k: v for k, v in vars(self.args).items()}, "modes": self.modes, "cells": self.cells}

    def rows(self) -> list[list[Any]]:
        def f(v):
            return "-" if v is None else v

        rows = []
        for c in self.cells:
            ag = c.get("agreement") or {}
            fr = c.get("frame") or {}
            mib = c.get("peak_bytes") / 2**20 if c.get("peak_bytes") else None
            agree = ag.get("spearman") if ag.get("spearman") is not None else (
                "refused/failed" if ag.get("error") else "-")
            err = c.get("error") or ("agreement: " + ag["error"] if ag.get("error") else "")
            rows.append([c["mode"], c["n"], c["preset"], f"{c['runs_ok']}/{c['runs']}", f(c.get("p50_s")),
                         f(c.get("p95_s")), f(c.get("p50_x_fwd_bwd")), f(c.get("p95_x_fwd_bwd")), f(mib), agree,
                         f(fr.get("gate_mass_on_frame_p50")), f(fr.get("first_content_share_p50")),
                         err.replace("|", "/")[:160] if err else ""])
        return rows

    def write(self) -> tuple[Path, Path]:
        notes = ("Random weights of the Qwen2.5-3B-Instruct shape (experiments/qwen_shape.py), in-process tokenizer; "
                 "attributions mean nothing, timings and memory do. p50/p95 over seeds 0..R-1 of "
                 "heta_lite.engine.explain_context (faithfulness check off); x fwd+bwd: divided by the median "
                 "forward+backward of log p(y) measured in the same run. Peak: torch.cuda.max_memory_allocated per "
                 "cell (weights included) on a GPU, process peak RSS on a CPU. S Spearman: heta-S with "
                 "derivatives='quantized' vs 'dequantized', seed 0 (refused: the derivative check failed, see "
                 "modes.*.derivatives_auto in the JSON). Frame columns: medians of exp.frame over runs.")
        if self.args.layers:
            notes += f" NOTE: --layers {self.args.layers}: a smoke run with fewer layers than the real model."
        with results_dir(self.out):
            return common.write_results(self.name, self.result(), TABLE, self.rows(), self.command, notes=notes)


@contextlib.contextmanager
def results_dir(folder: Path):
    """experiments.common.write_results writes into common.RESULTS: point it at `folder` meanwhile."""
    old = common.RESULTS
    common.RESULTS = Path(folder)
    try:
        yield
    finally:
        common.RESULTS = old


def main(argv=None) -> dict[str, Any]:
    """Entry point (the .sh and the tests): run every cell, write the files, return the results
    with the two paths under 'json' and 'markdown'."""
    args = parse_args(argv)
    cmd = "python -m experiments.gpu_check " + " ".join(argv if argv is not None else sys.argv[1:])
    check = Check(args, cmd.strip())
    res = check.run()
    jpath, mpath = check.write()
    say(f"results: {jpath} and {mpath}")
    return {**res, "json": str(jpath), "markdown": str(mpath)}


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except Exception:  # noqa: BLE001 - say what broke, and where, before exiting non-zero
        traceback.print_exc()
        sys.exit(1)
