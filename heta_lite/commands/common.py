"""Options shared by subcommands that load a model and explain."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from ..quantization.modes import ACCEPTED, QUANT_MODES
from ..settings import DERIVATIVE_PATHS, ESTIMATORS, FRAMES, GATES, MASK_SCHEMES, QUALITIES, HetaSettings


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="auto", help="short name (smollm2-135m, qwen2.5-3b, ...), hub id or folder; "
                   "auto = qwen2.5-3b on a CUDA GPU, smollm2-135m otherwise")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if present)")
    p.add_argument("--quant", default="none", choices=ACCEPTED, metavar="MODE",
                   help=f"bitsandbytes quantization: {', '.join(QUANT_MODES)} (4bit = 4bit-nf4; -dq = double quantization)")


def add_settings_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quality", default="balanced", choices=QUALITIES)
    p.add_argument("--estimator", choices=ESTIMATORS, help="curvature estimator (overrides the preset)")
    p.add_argument("--probes", type=int, help="number of Rademacher probes m")
    p.add_argument("--mask", choices=MASK_SCHEMES, help="mask scheme for the information gain")
    p.add_argument("--beta", type=float, help="weight of the curvature term S")
    p.add_argument("--gamma", type=float, help="weight of the information term I")
    p.add_argument("--combination", choices=["normalised", "raw"])
    p.add_argument("--seed", type=int)
    p.add_argument("--max-tokens", type=int, default=512, help="context token limit (default 512)")
    p.add_argument("--information", choices=["exact", "taylor"], help="KL term: exact masking or Taylor estimate")
    p.add_argument("--time-budget", type=float, help="pick the best settings estimated to fit in this many seconds")
    p.add_argument("--derivatives", choices=DERIVATIVE_PATHS,
                   help="quantized models: take gradients/HVPs through the quantized layers if they pass the "
                   "derivative check (auto), always (quantized; refused if the check fails) or through the "
                   "dequantized weights (dequantized)")
    p.add_argument("--frame", choices=FRAMES, default="auto",
                   help="auto (default): start the context with frame tokens (chat template opening, BOS or the "
                   "model's document separator), never scored; none: nothing prepended (the authors' setting)")
    p.add_argument("--gate", choices=GATES, default="full",
                   help="rollout of the gate M: full (all layers), last-quarter, norm-mixing (docs/method.md)")
    p.add_argument("--no-check", dest="check", action="store_false",
                   help="skip the faithfulness check (top-k vs random deletion) after the explanation")
    p.add_argument("--time-limit", type=float, help="stop the job after this many seconds")
    p.add_argument("--cache-dir", help="diskcache folder (default ~/.cache/heta-lite/cache); 'off' disables it")


def settings_from_args(args: argparse.Namespace) -> HetaSettings:
    return HetaSettings.preset(args.quality, estimator=args.estimator, num_probes=args.probes, mask=args.mask,
                               beta=args.beta, gamma=args.gamma, combination=args.combination, seed=args.seed,
                               max_tokens=args.max_tokens, information=args.information,
                               time_budget_s=args.time_budget, derivatives=getattr(args, "derivatives", None),
                               frame=args.frame, gate=args.gate, check=args.check)


def cache_from_args(args: argparse.Namespace):
    if getattr(args, "cache_dir", None) == "off":
        return None
    from ..cache import HetaCache

    return HetaCache(args.cache_dir)


def read_prompt(args: argparse.Namespace) -> str:
    if args.prompt_file is not None:
        path = Path(args.prompt_file)
        if not path.is_file():
            raise InputError(f"Prompt file {path} does not exist.", "prompt_file")
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InputError(f"Prompt file {path} is not valid UTF-8 text.", "prompt_file") from None
    return args.prompt
