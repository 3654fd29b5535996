"""Moved to heta_lite.quantization.modes; this re-export remains for gui/ and run.py."""
from heta_lite.quantization.modes import ACCEPTED, ALIASES, QUANT_MODES, QuantMode, bnb_version  # noqa: F401
