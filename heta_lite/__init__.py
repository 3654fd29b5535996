"""HETA Lite: explain one prediction of a decoder-only LLM with Hessian-Enhanced Token Attribution."""
__version__ = "0.1.0"

from .errors import HetaError, InputError, ModelUnavailableError  # noqa: E402
from .settings import HetaSettings  # noqa: E402
from .targets import TargetSpec  # noqa: E402


def __getattr__(name):  # lazy: importing the package must not import torch-heavy modules
    if name in ("load_model", "wrap_model"):
        from .models import loader

        return getattr(loader, name)
    if name in ("explain", "explain_context", "Explanation"):
        from . import engine

        return getattr(engine, name)
    raise AttributeError(name)


__all__ = ["HetaError", "HetaSettings", "InputError", "ModelUnavailableError", "TargetSpec", "explain",
           "explain_context", "load_model", "wrap_model", "Explanation", "__version__"]
