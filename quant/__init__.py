"""Quantized loading (bitsandbytes 8-bit / 4-bit) and comparison runs."""
