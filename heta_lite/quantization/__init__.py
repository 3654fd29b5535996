"""Quantized models, the low-level mechanics the loader and the engine need (bitsandbytes 8-bit /
4-bit): mode names (modes.py), what we do to the layers (layers.py) and where derivatives are taken
(derivatives.py). Below models/: nothing here imports the loader. The comparison study across modes
is the top-level quant/ folder, which builds on this."""
