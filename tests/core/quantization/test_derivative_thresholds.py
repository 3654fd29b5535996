"""The derivative check's bars (heta_lite.quantization.derivatives: gradient cosine >= 0.995, HVP cosine >= 0.99)
between "clearly right" and "clearly wrong".

Fake quantized layers compute exactly x W^T + b (so the dequantized-weight path is the plain
model), but their backward is off by a seeded random matrix `skew` of relative size alpha:
- `GradSkewLinear`: the gradient through the layer uses W + skew (a straight-through estimate
  with the wrong matrix, like LLM.int8's); the skew's own term is detached, so the HVP stays
  close to right and the gradient bar alone decides;
- `HvpSkewLinear`: the gradient is exact, but its derivative (the HVP) sees W + skew.
The cosines are measured here against the unmodified model (this file's own double backprop on
the check's probe: ids 3..14, y = argmax, direction seed 0), not taken from the check.
"""
from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from heta_lite import InputError, wrap_model
from heta_lite.quantization.derivatives import MIN_GRAD_COSINE, MIN_HVP_COSINE, check_derivatives, resolve_derivative_path
from heta_lite.quantization.layers import quantized_linears, register_quantized_linear
from tests.reference.tiny import tiny_qwen2


class _GradSkew(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, skew):
        ctx.save_for_backward(weight, skew)
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad_out):
        weight, skew = ctx.saved_tensors
        return grad_out @ weight + grad_out.detach() @ skew, None, None, None


class _HvpSkew(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, skew):
        ctx.save_for_backward(weight, skew)
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad_out):
        weight, skew = ctx.saved_tensors
        extra = grad_out @ skew  # zero in value, skew in its derivative
        return grad_out @ weight + (extra - extra.detach()), None, None, None


@register_quantized_linear
class GradSkewLinear(torch.nn.Linear):
    kernel = _GradSkew

    def forward(self, x):
        return self.kernel.apply(x, self.weight, self.bias, self.skew)


@register_quantized_linear
class HvpSkewLinear(GradSkewLinear):
    kernel = _HvpSkew


def _skewed(model, cls, alpha: float):
    g = torch.Generator().manual_seed(0)
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is torch.nn.Linear and name != "lm_head":
                fake = cls(child.in_features, child.out_features, bias=child.bias is not None)
                fake.load_state_dict(child.state_dict())
                fake.register_buffer("skew", torch.randn(child.weight.shape, generator=g) * child.weight.std() * alpha)
                setattr(module, name, fake)
    return model


def _grad_and_hvp(model, X, y, v):
    Xg = X.clone().requires_grad_(True)
    g = torch.log_softmax(model(inputs_embeds=Xg[None], use_cache=False).logits[0, -1].float(), -1)[y]
    (grad,) = torch.autograd.grad(g, Xg, create_graph=True)
    (hv,) = torch.autograd.grad((grad * v).sum(), Xg)
    return grad.detach(), hv


def _cosine(a, b):
    a, b = a.double().flatten(), b.double().flatten()
    return float(a @ b / (a.norm() * b.norm()))


def _measured(model):
    """(gradient cosine, HVP cosine) of `model` against the unmodified tiny model."""
    ref = tiny_qwen2()
    ref.requires_grad_(False)
    ids = torch.arange(3, 15)
    with torch.no_grad():
        X = ref.get_input_embeddings()(ids)
        y = int(ref(inputs_embeds=X[None]).logits[0, -1].argmax())
    v = torch.randn(X.shape, generator=torch.Generator().manual_seed(0)) * X.std()
    g_ref, h_ref = _grad_and_hvp(ref, X, y, v)
    g, h = _grad_and_hvp(model, X, y, v)
    return _cosine(g, g_ref), _cosine(h, h_ref)


ROUNDING = 1e-12
CASES = {  # name: (layer, alpha, gradient-cosine band, HVP-cosine band, path chosen by 'auto')
    "gradient ~0.95": (GradSkewLinear, 0.14, (0.93, 0.97), (0.9, 0.99), "dequantized-weights"),
    "gradient just under 0.995, HVP fine": (GradSkewLinear, 0.05, (0.99, MIN_GRAD_COSINE), (MIN_HVP_COSINE, 1.0),
                                            "dequantized-weights"),
    "gradient just over 0.995": (GradSkewLinear, 0.03, (MIN_GRAD_COSINE, 0.999), (MIN_HVP_COSINE, 1.0),
                                 "quantized-layers"),
    "gradient ~0.999": (GradSkewLinear, 0.01, (0.999, 1.0), (0.999, 1.0), "quantized-layers"),
    "exact gradient, HVP just under 0.99": (HvpSkewLinear, 0.1, (0.99999, 1.0), (0.98, MIN_HVP_COSINE),
                                            "dequantized-weights"),
    "exact gradient, HVP ~0.95": (HvpSkewLinear, 0.2, (0.99999, 1.0), (0.9, 0.97), "dequantized-weights"),
    "exact gradient, HVP ~0.999": (HvpSkewLinear, 0.03, (0.99999, 1.0), (MIN_HVP_COSINE, 1.0), "quantized-layers"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_auto_picks_the_path_the_measured_cosines_call_for(case):
    cls, alpha, (g_lo, g_hi), (h_lo, h_hi), expected = CASES[case]
    lm = wrap_model(_skewed(tiny_qwen2(), cls, alpha), quantization="8bit")
    assert len(quantized_linears(lm.model)) == 14
    cos_g, cos_h = _measured(lm.model)
    # the regime this case is about (a cosine of two equal float vectors can round to 1 + 2e-16)
    assert g_lo <= cos_g <= g_hi + ROUNDING and h_lo <= cos_h <= h_hi + ROUNDING, (cos_g, cos_h)
    check = check_derivatives(lm)
    assert check.error is None
    assert check.grad_cosine == pytest.approx(cos_g, abs=2e-5) and check.hvp_cosine == pytest.approx(cos_h, abs=2e-5)
    passes = cos_g >= MIN_GRAD_COSINE and cos_h >= MIN_HVP_COSINE
    assert passes == (expected == "quantized-layers")
    path = resolve_derivative_path(lm, "auto")
    assert path.path == expected and path.check is check
    if passes:
        assert "agrees" in path.reason and resolve_derivative_path(lm, "quantized").path == "quantized-layers"
    else:
        assert "fallback" in path.reason
        reported = re.search(r"gradient cosine ([0-9.]+), HVP cosine ([0-9.]+)", path.reason)  # the numbers shown
        assert (float(reported[1]), float(reported[2])) == pytest.approx((cos_g, cos_h), abs=2e-4)
        with pytest.raises(InputError, match="not trustworthy"):
            resolve_derivative_path(lm, "quantized")


def test_the_bars_are_the_documented_ones():
    """The bands above sit on both sides of these values; if they move, the cases must be revisited."""
    assert (MIN_GRAD_COSINE, MIN_HVP_COSINE) == (0.995, 0.99)
