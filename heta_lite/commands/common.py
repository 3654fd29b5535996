"""Options shared by subcommands that load a model and explain."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from ..quantization.modes import ACCEPTED, QUANT_MODES
from ..methods.registry import method_configs
from ..options import add_arguments, values_from_args
from ..settings import HetaSettings


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="auto", help="short name (smollm2-135m, qwen2.5-3b, ...), hub id or folder; "
                   "auto = qwen2.5-3b on a CUDA GPU, smollm2-135m otherwise")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if present)")
    p.add_argument("--quant", default="none", choices=ACCEPTED, metavar="MODE",
                   help=f"bitsandbytes quantization: {', '.join(QUANT_MODES)} (4bit = 4bit-nf4; -dq = double quantization)")


def add_settings_args(p: argparse.ArgumentParser) -> None:
    """Every knob of HetaSettings and of each method's own config, generated from their declarations
    (heta_lite/options.py); None = keep the preset's value."""
    from ..methods.heta.presets import PRESETS

    preset_fields = {k for values in PRESETS.values() for k in values}
    add_arguments(p, HetaSettings, defaults={"quality": "balanced"},
                  default_notes={k: "set by --quality" for k in preset_fields})
    for cfg in method_configs().values():
        add_arguments(p, cfg)
    p.add_argument("--time-limit", type=float, help="stop the job after this many seconds")
    p.add_argument("--cache-dir", help="diskcache folder (default ~/.cache/heta-lite/cache); 'off' disables it")


def settings_from_args(args: argparse.Namespace) -> HetaSettings:
    values = values_from_args(HetaSettings, args)
    extra = {k: v for cfg in method_configs().values() for k, v in values_from_args(cfg, args).items()}
    return HetaSettings.preset(values.pop("quality", "balanced"), **values, extra=extra)


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


def read_conversation(path: str):
    """A Conversation from a JSON file of turns; clear errors for a missing or malformed file."""
    import json

    from ..conversation import Conversation

    file = Path(path)
    if not file.is_file():
        raise InputError(f"Conversation file {file} does not exist.", "conversation")
    try:
        turns = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise InputError(f"Conversation file {file} is not valid UTF-8 JSON: {err}.", "conversation") from None
    if not isinstance(turns, list):
        raise InputError(f"Conversation file {file} must hold a JSON list of turns.", "conversation")
    return Conversation.of(turns)
