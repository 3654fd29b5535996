"""Attribution methods behind one registry (`get_method(name).attribute(inp)`), one module per
family: attention.py (attention, rollout), gradient.py (saliency, input x gradient, integrated
gradients), perturbation.py (occlusion), heta/ (HETA and its ablations)."""
from . import attention, gradient, heta, perturbation  # noqa: F401  (registers the methods)
from .base import AttributionMethod, AttributionResult, Component, MethodInput
from .registry import METHODS, get_method, method_names, register

__all__ = ["METHODS", "AttributionMethod", "AttributionResult", "Component", "MethodInput", "get_method",
           "method_names", "register"]
