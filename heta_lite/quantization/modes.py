"""Quantization modes: one parsed value object per user-facing mode string.

Canonical names: `none`, `8bit` (LLM.int8), `4bit-nf4`, `4bit-fp4`, with `-dq` for double
quantization of the 4-bit scales (`4bit-nf4-dq`). `4bit` is an alias of `4bit-nf4`. The
compute dtype is the model dtype chosen by the loader (bf16 on a GPU, fp32 on a CPU, where
bf16 matmuls are slow and second derivatives in bf16 are mostly rounding noise).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InputError

QUANT_MODES = ("none", "8bit", "4bit-nf4", "4bit-fp4", "4bit-nf4-dq", "4bit-fp4-dq")
ALIASES = {"4bit": "4bit-nf4", "4bit-dq": "4bit-nf4-dq", "nf4": "4bit-nf4", "fp4": "4bit-fp4", "int8": "8bit",
           "bf16": "none", "fp16": "none", "fp32": "none"}
ACCEPTED = QUANT_MODES + tuple(ALIASES)


@dataclass(frozen=True)
class QuantMode:
    bits: int | None  # None (not quantized), 8 or 4
    quant_type: str | None = None  # 'nf4' or 'fp4' for 4-bit
    double_quant: bool = False

    @classmethod
    def parse(cls, text: str | None) -> "QuantMode":
        name = ALIASES.get((text or "none").strip().lower(), (text or "none").strip().lower())
        if name not in QUANT_MODES:
            raise InputError(f"Unknown quantization mode {text!r}; choose one of {', '.join(QUANT_MODES)} "
                             "('4bit' means 4bit-nf4).", "quant")
        if name == "none":
            return cls(None)
        if name == "8bit":
            return cls(8)
        parts = name.split("-")  # 4bit-nf4[-dq]
        return cls(4, parts[1], len(parts) == 3)

    @property
    def name(self) -> str:
        if self.bits is None:
            return "none"
        if self.bits == 8:
            return "8bit"
        return f"4bit-{self.quant_type}" + ("-dq" if self.double_quant else "")

    @property
    def quantized(self) -> bool:
        return self.bits is not None

    def bnb_config(self, compute_dtype: torch.dtype):
        """transformers' BitsAndBytesConfig for this mode (None when not quantized)."""
        if not self.quantized:
            return None
        from transformers import BitsAndBytesConfig

        if self.bits == 8:
            return BitsAndBytesConfig(load_in_8bit=True)
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=self.quant_type,
                                  bnb_4bit_compute_dtype=compute_dtype, bnb_4bit_use_double_quant=self.double_quant)

    def describe(self) -> dict:
        """What a report records about the mode."""
        if not self.quantized:
            return {"mode": "none"}
        out = {"mode": self.name, "bits": self.bits, "bitsandbytes": bnb_version()}
        if self.bits == 4:
            out.update(quant_type=self.quant_type, double_quant=self.double_quant)
        return out


def bnb_version() -> str:
    try:
        from importlib.metadata import version

        return version("bitsandbytes")
    except Exception:  # noqa: BLE001 - not installed: the load itself fails with a clear message
        return "not installed"
