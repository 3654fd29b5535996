"""bitsandbytes configurations for the quantization modes."""
from __future__ import annotations

import torch


def bnb_config(mode: str, compute_dtype: torch.dtype = torch.bfloat16, quant_type: str = "nf4",
               double_quant: bool = False):
    """BitsAndBytesConfig for '8bit' (LLM.int8) or '4bit' (NF4/FP4)."""
    from transformers import BitsAndBytesConfig

    if mode == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    if mode == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quant_type,
                                  bnb_4bit_compute_dtype=compute_dtype, bnb_4bit_use_double_quant=double_quant)
    raise ValueError(f"unknown quantization mode {mode!r}")
