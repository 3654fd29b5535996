"""Shared fixtures: the real offline model (loaded once per session) and tiny random models."""
from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def smollm():
    """SmolLM2-135M-Instruct from the packaged GGUF (converted once to safetensors)."""
    from heta_lite.models import load_model

    return load_model("smollm2-135m", device="cpu")
