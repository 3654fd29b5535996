"""Attribution methods behind one registry (`get_method(name).attribute(inp)`)."""
from . import baselines, heta  # noqa: F401  (registers the methods)
from .base import METHODS, AttributionMethod, AttributionResult, Component, MethodInput, get_method, method_names

__all__ = ["METHODS", "AttributionMethod", "AttributionResult", "Component", "MethodInput", "get_method",
           "method_names"]
