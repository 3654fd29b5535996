"""The model catalogue, loading, and the per-architecture table."""
from .arch import ARCHITECTURES, ArchSpec, HeadDims, arch_for, head_dims
from .loader import LoadedModel, attention_implementation, load_model, wrap_model
from .catalogue import SHORT_NAMES, ModelSource, default_model_name, resolve_model_name

__all__ = [
    "ARCHITECTURES", "ArchSpec", "HeadDims", "LoadedModel", "ModelSource", "SHORT_NAMES",
    "arch_for", "attention_implementation", "default_model_name", "head_dims", "load_model",
    "resolve_model_name", "wrap_model",
]
