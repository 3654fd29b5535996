"""The bitsandbytes layers of a loaded model, and two things we do to them.

1. `disable_cpu_repacking`: bitsandbytes 0.50 on CPUs with AVX512-BF16 repacks a `Linear4bit`
   weight into a CPU kernel layout on its first no-grad forward; after that, forwards go through
   an op with no autograd kernel (`bitsandbytes::gemv_4bit`: PyTorch only warns "may lead to
   silently incorrect behavior") and gradients are wrong with no error (SmolLM2 4-bit:
   directional derivative -0.0006 by autograd vs -0.087 by finite differences after one no-grad
   forward; 0.0425 both ways without the repack). HETA needs no-grad forwards (gate, masked KL)
   and gradients on the same model, so the loader turns the repack off for every 4-bit layer.
2. `dequantized_forward`: temporarily evaluate each quantized linear layer as
   x @ dequant(W)^T + b in the compute dtype -- a plain, smooth torch function whose first and
   second derivatives are exact. For 4-bit this is the same function the layer computes; for
   LLM.int8 it drops the 8-bit activation quantization, whose backward is a straight-through
   estimate (gradients that do not match the forward). It is the curvature fallback.
"""
from __future__ import annotations

import contextlib
import types
from typing import Iterator

import torch
import torch.nn.functional as F


_EXTRA_TYPES: list[type] = []


def register_quantized_linear(cls: type) -> type:
    """Treat `cls` as a quantized linear layer too (other backends; the tests' fake layer). Its
    weight must be a float Parameter or one that transformers' `dequantize_bnb_weight` knows."""
    if cls not in _EXTRA_TYPES:
        _EXTRA_TYPES.append(cls)
    return cls


def quantized_linears(model) -> list[torch.nn.Module]:
    """Every bitsandbytes 8-bit / 4-bit linear layer (and registered type) in `model`."""
    kinds: tuple[type, ...] = tuple(_EXTRA_TYPES)
    try:
        import bitsandbytes as bnb

        kinds += (bnb.nn.Linear8bitLt, bnb.nn.Linear4bit)
    except ImportError:
        pass
    return [m for m in model.modules() if isinstance(m, kinds)] if kinds else []


def disable_cpu_repacking(model) -> int:
    """Turn off bitsandbytes' CPU repack of 4-bit weights (see the module docstring). Returns the
    number of layers changed; a no-op where the attribute does not exist (other versions)."""
    changed = 0
    for m in quantized_linears(model):
        if getattr(m, "support_avx512bf16_for_cpu", False):
            if getattr(getattr(m.weight, "quant_state", None), "packing_format_for_cpu", False):
                raise RuntimeError("4-bit weights were already repacked for the CPU kernel; disable the repack "
                                   "before the first forward")
            m.support_avx512bf16_for_cpu = False
            changed += 1
    return changed


def dequantized_weight(layer: torch.nn.Module) -> torch.Tensor:
    """The layer's weight as a float matrix (out, in), via transformers' bitsandbytes helper."""
    from transformers.integrations.bitsandbytes import dequantize_bnb_weight

    return dequantize_bnb_weight(layer.weight, state=getattr(layer, "state", None))


def _dequantized_linear(self, x: torch.Tensor) -> torch.Tensor:
    W = dequantized_weight(self).to(device=x.device, dtype=x.dtype)
    bias = None if self.bias is None else self.bias.to(x.dtype)
    return F.linear(x, W, bias)


@contextlib.contextmanager
def dequantized_forward(model) -> Iterator[int]:
    """Within the block, quantized linears compute x @ dequant(W)^T + b (yields how many layers).

    The swap sets an instance attribute `forward` (or accelerate's `_old_forward` where a hook
    wraps the module), so leaving the block restores the class's own forward exactly. Graphs
    built inside keep their dequantized weights, so HVPs taken later stay consistent."""
    swapped: list[tuple[torch.nn.Module, str, object]] = []
    try:
        for m in quantized_linears(model):
            attr = "_old_forward" if hasattr(m, "_old_forward") else "forward"
            previous = m.__dict__.get(attr)
            setattr(m, attr, types.MethodType(_dequantized_linear, m))
            swapped.append((m, attr, previous))
        yield len(swapped)
    finally:
        for m, attr, previous in swapped:
            if previous is None:
                delattr(m, attr)
            else:
                setattr(m, attr, previous)
