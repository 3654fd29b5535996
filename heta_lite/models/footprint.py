"""What a loaded model's passes cost in memory, method-independent: parameters, activations of one
sequence, its key/value cache, and the memory free for a job. Methods build their own estimates
from these (HETA's: heta_lite/methods/heta/cost.py); the default plan uses one forward's worth."""
from __future__ import annotations

import psutil
import torch

from .loader import LoadedModel


def _bytes_per(dtype: torch.dtype) -> int:
    return torch.finfo(dtype).bits // 8 if dtype.is_floating_point else 1


def _text_config(lm: LoadedModel):
    cfg = lm.model.config
    return cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg


def _num_layers(cfg) -> int:
    return getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer", 1)


def param_bytes(lm: LoadedModel) -> int:
    return int(sum(p.numel() * p.element_size() for p in lm.model.parameters()))


def activation_bytes(lm: LoadedModel, n: int, with_grad: bool) -> int:
    """Activations of one sequence through the model: per layer ~ (10 d + 3 d_ff) per token plus
    the attention scores and probabilities (2 H n per token, eager); x2 when kept for backward."""
    cfg = _text_config(lm)
    d, H = lm.dims.hidden, lm.dims.num_heads
    d_ff = getattr(cfg, "intermediate_size", None) or getattr(cfg, "n_inner", None) or 4 * d
    per_token = _num_layers(cfg) * (10 * d + 3 * d_ff + 2 * H * n)
    vocab_logits = cfg.vocab_size * 4  # last position only (logits_to_keep=1)
    total = (n * per_token * _bytes_per(lm.dtype) + vocab_logits)
    return int(total * (2 if with_grad else 1))


def kv_bytes(lm: LoadedModel, n: int) -> int:
    """The key/value cache of n tokens."""
    L = _num_layers(_text_config(lm))
    return int(2 * L * lm.dims.num_kv_heads * lm.dims.head_dim * n * _bytes_per(lm.dtype))


def available_bytes(lm: LoadedModel) -> int:
    """Free memory on the model's device now (GPU: CUDA's free; CPU: the OS's available)."""
    if lm.device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(lm.device)
        return int(free)
    return int(psutil.virtual_memory().available)


def memory_limit(lm: LoadedModel, limit_bytes: int | None) -> int:
    """The limit a job plans for: `limit_bytes`, or 80% of what is free now."""
    return int(limit_bytes if limit_bytes is not None else available_bytes(lm) * 0.8)


# The memory one batched pass (a batch of HVP probes, of masked copies, of IG path points) may add
# on top of the model and its graph, when the settings do not say (settings.batch_memory_mb). On a
# CPU a batch is no faster than a loop (measured: an HVP costs the same at 1 or 16 probes per batch
# at n = 64 and 256, SmolLM2), so the budget is small; on a GPU batches buy parallelism.
DEFAULT_BATCH_MEMORY_MB = {"cpu": 512, "cuda": 4096}


def batch_memory_bytes(lm: LoadedModel, batch_memory_mb: int | None) -> int:
    """The batch memory budget in bytes: `batch_memory_mb`, or the device's default."""
    mb = batch_memory_mb if batch_memory_mb is not None else DEFAULT_BATCH_MEMORY_MB.get(lm.device.type, 4096)
    return int(mb) * 2**20


def items_that_fit(cap: int, item_bytes: int, budget_bytes: int) -> int:
    """How many items of `item_bytes` one batched pass takes: as many as fit `budget_bytes`, at
    most `cap` and at least 1. Every batched loop sizes its batches with this, so a longer context
    means smaller batches and peak memory grows linearly in n, not with n times a copy count."""
    return max(1, min(int(cap), int(budget_bytes) // max(1, int(item_bytes))))
