"""heta-lite models: the catalogue's short names, supported architectures and methods."""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list model short names, architectures and methods")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..methods import METHODS
    from ..models.arch import ARCHITECTURES
    from ..models.catalogue import SHORT_NAMES, default_model_name

    print(f"auto -> {default_model_name()} on this machine")
    for name, src in SHORT_NAMES.items():
        print(f"  {name:<14} {src.location:<28} {src.description}")
    print("Any Hugging Face causal LM id or local folder of these architectures also works:")
    print("  " + ", ".join(sorted(ARCHITECTURES)))
    print("Methods: " + ", ".join(sorted(METHODS)))
    return 0
