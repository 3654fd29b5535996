"""Attribution methods behind one registry (`get_method(name).attribute(inp)`)."""
from . import heta  # noqa: F401  (registers heta, heta-M, heta-S, heta-I)
from .base import METHODS, AttributionMethod, AttributionResult, Component, MethodInput, get_method, method_names

__all__ = ["METHODS", "AttributionMethod", "AttributionResult", "Component", "MethodInput", "get_method",
           "method_names"]
