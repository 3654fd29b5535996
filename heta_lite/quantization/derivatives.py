"""Where gradients and Hessian-vector products of a quantized model are taken, and why.

Whether autograd through bitsandbytes layers is right depends on the layer, the version and the
device (LLM.int8's backward is straight-through; some versions/devices fail double backward;
a CPU repack broke 4-bit gradients in 0.50), so it is measured, not assumed: `check_derivatives`
compares the gradient and an HVP of g(X) = log p(y | X) through the quantized layers with the
same quantities through the dequantized weights (`layers.dequantized_forward`), whose
autograd is plain torch and exact for the function it computes. For 4-bit layers the two are the
same function, so they must agree to rounding; if they do not, or the backward raises, the
fallback path (dequantized weights) is used and the report says so with the measured numbers.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..errors import InputError
from ..settings import DERIVATIVE_PATHS
from .layers import dequantized_forward, quantized_linears

MIN_GRAD_COSINE = 0.995  # 4-bit in fp32 measures 1.00000; LLM.int8's straight-through gradient 0.947
MIN_HVP_COSINE = 0.99  # 4-bit 1.00000; LLM.int8 0.893 (SmolLM2-135M, CPU, bitsandbytes 0.50.2)
CHECK_TEXT = "The quick brown fox jumps over the lazy dog because"


@dataclass
class DerivativeCheck:
    """Quantized-layer autograd vs the dequantized-weight reference on one fixed probe input."""

    grad_cosine: float | None = None
    hvp_cosine: float | None = None
    grad_rel_error: float | None = None
    hvp_rel_error: float | None = None
    logprob_quantized: float | None = None
    logprob_dequantized: float | None = None
    error: str | None = None  # the quantized backward raised: type and first line
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return (self.error is None and self.grad_cosine is not None and self.grad_cosine >= MIN_GRAD_COSINE
                and self.hvp_cosine is not None and self.hvp_cosine >= MIN_HVP_COSINE)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def summary(self) -> str:
        if self.error:
            return f"the quantized backward failed: {self.error}"
        return f"gradient cosine {self.grad_cosine:.4f}, HVP cosine {self.hvp_cosine:.4f}"


@dataclass
class DerivativePath:
    """path: 'model' (not quantized), 'quantized-layers' or 'dequantized-weights'."""

    path: str
    requested: str
    reason: str
    check: DerivativeCheck | None = field(default=None)

    def context(self, model) -> contextlib.AbstractContextManager:
        """Enter around every differentiable forward of an explanation."""
        return dequantized_forward(model) if self.path == "dequantized-weights" else contextlib.nullcontext()

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "requested": self.requested, "reason": self.reason,
                "check": None if self.check is None else self.check.to_dict()}


def _probe_input(lm) -> tuple[torch.Tensor, int]:
    if lm.tokenizer is not None:
        ids = lm.tokenizer(CHECK_TEXT, return_tensors="pt").input_ids[0]
    else:
        ids = torch.arange(3, 15) % lm.model.config.vocab_size
    ids = ids.to(lm.device)
    with torch.no_grad():
        X = lm.model.get_input_embeddings()(ids)
        y = int(lm.model(inputs_embeds=X[None], use_cache=False).logits[0, -1].argmax())
    return X.detach(), y


def _derivatives(model, X: torch.Tensor, y: int, v: torch.Tensor):
    """(g, grad g, H v) at X, by double backprop (torch.func can't see through bitsandbytes)."""
    with torch.enable_grad():
        Xg = X.clone().requires_grad_(True)
        logits = model(inputs_embeds=Xg[None], use_cache=False).logits[0, -1].float()
        g = torch.log_softmax(logits, -1)[y]
        (grad,) = torch.autograd.grad(g, Xg, create_graph=True)
        (hv,) = torch.autograd.grad((grad * v).sum(), Xg)
    return float(g.detach()), grad.detach().float(), hv.detach().float()


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.flatten() @ b.flatten()) / (a.norm() * b.norm()).clamp_min(1e-30))


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def check_derivatives(lm) -> DerivativeCheck:
    """Measure (once per loaded model; cached in lm.extra) whether quantized-layer autograd is right."""
    cached = lm.extra.get("derivative_check")
    if isinstance(cached, DerivativeCheck):
        return cached
    t0 = time.perf_counter()
    X, y = _probe_input(lm)
    gen = torch.Generator().manual_seed(0)
    v = (torch.randn(X.shape, generator=gen) * X.float().std().cpu()).to(X.device, X.dtype)
    check = DerivativeCheck()
    with dequantized_forward(lm.model):
        g_ref, grad_ref, hv_ref = _derivatives(lm.model, X, y, v)
    check.logprob_dequantized = g_ref
    try:
        g_q, grad_q, hv_q = _derivatives(lm.model, X, y, v)
    except (RuntimeError, NotImplementedError, TypeError, AttributeError) as err:
        check.error = f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
    else:
        check.logprob_quantized = g_q
        check.grad_cosine, check.hvp_cosine = _cos(grad_q, grad_ref), _cos(hv_q, hv_ref)
        check.grad_rel_error, check.hvp_rel_error = _rel(grad_q, grad_ref), _rel(hv_q, hv_ref)
    check.seconds = time.perf_counter() - t0
    lm.extra["derivative_check"] = check
    return check


def resolve_derivative_path(lm, requested: str = "auto") -> DerivativePath:
    """Pick the path for `requested` ('auto' | 'quantized' | 'dequantized'); never a silently wrong one."""
    if requested not in DERIVATIVE_PATHS:
        raise InputError(f"derivatives must be one of {DERIVATIVE_PATHS}, got {requested!r}.", "derivatives")
    if lm.quantization == "none" or not quantized_linears(lm.model):
        return DerivativePath("model", requested, "not quantized: autograd through the model itself")
    if requested == "dequantized":
        return DerivativePath("dequantized-weights", requested,
                              "requested: gradients and HVPs through x @ dequant(W)^T of every quantized layer")
    check = check_derivatives(lm)
    if check.passed:
        return DerivativePath("quantized-layers", requested,
                              f"autograd through the {lm.quantization} layers agrees with the dequantized-weight "
                              f"reference ({check.summary()})", check)
    if requested == "quantized":
        raise InputError(
            f"Gradients through this model's {lm.quantization} layers are not trustworthy here: {check.summary()} "
            f"against the dequantized-weight reference (needs >= {MIN_GRAD_COSINE} / {MIN_HVP_COSINE}). Use "
            "derivatives 'auto' or 'dequantized', which take gradients through the dequantized weights.",
            "derivatives")
    return DerivativePath("dequantized-weights", requested,
                          f"fallback: autograd through the {lm.quantization} layers disagrees with the "
                          f"dequantized-weight reference ({check.summary()}), so gradients and HVPs are taken "
                          "through x @ dequant(W)^T of every quantized layer; forwards (gate, KL) stay quantized",
                          check)
