"""The quantization study: the same explanations in several bitsandbytes modes, compared (speed,
memory, agreement, faithfulness, Hessian stability), and its `heta-lite quant-compare` command.
Builds on the core (heta_lite.quantization loads and differentiates quantized models); the core
never imports this package: the CLI finds the command through the `heta_lite.commands` entry point."""
