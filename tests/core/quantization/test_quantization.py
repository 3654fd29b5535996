"""Quantized loading, the derivative check and its fallback (heta_lite.quantization). Agreement
metrics: tests/core/test_agreement.py; the quant-compare study: tests/quant/test_compare.py.

Real bitsandbytes layers (its CPU backend) on a tiny random Llama saved as a folder, so the
ordinary `load_model(folder, quantization=...)` path is the one tested; a fake quantized layer
whose backward cannot be differentiated twice stands in for versions/devices where the real one
raises. Reference values come from finite differences and from the unquantized engine.
"""
from __future__ import annotations

import contextlib
import functools
import json

import numpy as np
import pytest
import torch

from heta_lite import HetaSettings, InputError, TargetSpec, explain, load_model, wrap_model
from heta_lite.control import JobControl
from heta_lite.methods import MethodInput, get_method
from heta_lite.quantization.derivatives import check_derivatives, resolve_derivative_path
from heta_lite.quantization.layers import dequantized_forward, quantized_linears, register_quantized_linear
from heta_lite.quantization.modes import QUANT_MODES, QuantMode
from heta_lite.report import build_report, validate_report

bnb = pytest.importorskip("bitsandbytes")
PROMPT = "The quick brown fox jumps over the lazy dog and"


# ---------------------------------------------------------------- modes
def test_mode_names_aliases_and_configs():
    assert QuantMode.parse("4bit").name == "4bit-nf4"
    assert QuantMode.parse("NF4").name == "4bit-nf4"
    assert QuantMode.parse("4bit-fp4-dq") == QuantMode(4, "fp4", True)
    assert [QuantMode.parse(m).name for m in QUANT_MODES] == list(QUANT_MODES)
    assert QuantMode.parse("none").bnb_config(torch.float32) is None
    cfg = QuantMode.parse("4bit-fp4-dq").bnb_config(torch.bfloat16)
    assert cfg.load_in_4bit and cfg.bnb_4bit_quant_type == "fp4" and cfg.bnb_4bit_use_double_quant
    assert cfg.bnb_4bit_compute_dtype == torch.bfloat16
    assert QuantMode.parse("8bit").bnb_config(torch.float32).load_in_8bit
    with pytest.raises(InputError, match="Unknown quantization mode '3bit'"):
        QuantMode.parse("3bit")


def test_derivatives_setting_is_validated():
    assert HetaSettings.preset("fast").derivatives == "auto"
    with pytest.raises(InputError, match="derivatives"):
        HetaSettings.preset("fast", derivatives="sometimes")


# ---------------------------------------------------------------- real bitsandbytes, tiny folder model
def _embeddings(lm):
    ids = lm.tokenizer(PROMPT, return_tensors="pt").input_ids[0]
    with torch.no_grad():
        X = lm.model.get_input_embeddings()(ids).float()
        y = int(lm.model(inputs_embeds=X[None]).logits[0, -1].argmax())
    return X, y


def _g(model, X, y):
    return torch.log_softmax(model(inputs_embeds=X[None], use_cache=False).logits[0, -1].float(), -1)[y]


def _autograd(model, X, y, v):
    Xg = X.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(_g(model, Xg, y), Xg, create_graph=True)
    (hv,) = torch.autograd.grad((grad * v).sum(), Xg)
    return float((grad * v).sum().detach()), hv.detach()


def _finite_differences(model, X, y, v, eps=1e-3):
    with torch.no_grad():
        d1 = float(_g(model, X + eps * v, y) - _g(model, X - eps * v, y)) / (2 * eps)

    def grad_at(Z):
        Zg = Z.clone().requires_grad_(True)
        return torch.autograd.grad(_g(model, Zg, y), Zg)[0]

    hv = (grad_at(X + eps * v) - grad_at(X - eps * v)) / (2 * eps)
    return d1, hv


@pytest.mark.parametrize("mode", ["4bit-nf4", "4bit-fp4", "4bit-nf4-dq"])
def test_4bit_loads_and_report_records_the_mode(tiny_folder, mode):
    lm = load_model(tiny_folder, device="cpu", quantization=mode)
    layers = quantized_linears(lm.model)
    assert len(layers) == 14 and all(isinstance(m, bnb.nn.Linear4bit) for m in layers)  # 7 per block
    assert not any(getattr(m, "support_avx512bf16_for_cpu", False) for m in layers)  # repack off
    q = lm.describe()["quant"]
    mode_ = QuantMode.parse(mode)
    assert q["mode"] == mode and q["quant_type"] == mode_.quant_type and q["double_quant"] == mode_.double_quant
    assert q["bitsandbytes"] == bnb.__version__


def test_4bit_gradients_and_hvps_match_finite_differences_after_no_grad_forwards(tiny_folder):
    lm = load_model(tiny_folder, device="cpu", quantization="4bit-nf4")
    X, y = _embeddings(lm)  # a no-grad forward first: the one that used to repack the weights
    v = torch.randn(X.shape, generator=torch.Generator().manual_seed(1)) * X.std()
    d1, hv = _autograd(lm.model, X, y, v)
    d1_fd, hv_fd = _finite_differences(lm.model, X, y, v)
    assert d1 == pytest.approx(d1_fd, rel=2e-2, abs=1e-4)
    assert float((hv - hv_fd).norm() / hv_fd.norm()) < 5e-2
    path = resolve_derivative_path(lm, "auto")
    assert path.path == "quantized-layers" and path.check.passed
    assert path.check.grad_cosine > 0.9999 and "agrees" in path.reason


@pytest.mark.filterwarnings("ignore:bitsandbytes:UserWarning")  # 'gemv_4bit has no autograd kernel': the bug's trace
def test_cpu_repack_breaks_gradients_and_the_check_catches_it(tiny_folder):
    if not bnb.functional.has_avx512bf16():  # forcing the flag below repacks anyway, but gradients stay right
        pytest.skip("this CPU has no AVX512-BF16: bitsandbytes does not repack, the bug cannot occur")
    lm = load_model(tiny_folder, device="cpu", quantization="4bit-nf4")
    layers = quantized_linears(lm.model)
    for m in layers:  # undo the loader's fix: bitsandbytes' default on this CPU
        m.support_avx512bf16_for_cpu = True
    X, y = _embeddings(lm)
    if not getattr(layers[0].weight.quant_state, "packing_format_for_cpu", False):
        pytest.skip("this CPU has no AVX512-BF16: bitsandbytes does not repack, the bug cannot occur")
    v = torch.randn(X.shape, generator=torch.Generator().manual_seed(1)) * X.std()
    d1, _ = _autograd(lm.model, X, y, v)
    d1_fd, _ = _finite_differences(lm.model, X, y, v)
    assert abs(d1 - d1_fd) > 0.1 * abs(d1_fd)  # the silent bug the loader avoids
    path = resolve_derivative_path(lm, "auto")
    assert not path.check.passed and path.path == "dequantized-weights" and "fallback" in path.reason
    with pytest.raises(InputError, match="not trustworthy"):
        resolve_derivative_path(lm, "quantized")


def test_dequantized_forward_is_the_4bit_function_smooth_and_restored(tiny_folder):
    lm = load_model(tiny_folder, device="cpu", quantization="4bit-fp4")
    X, y = _embeddings(lm)
    v = torch.randn(X.shape, generator=torch.Generator().manual_seed(2)) * X.std()
    with torch.no_grad():
        g_q = float(_g(lm.model, X, y))
    with dequantized_forward(lm.model) as n:
        assert n == 14
        with torch.no_grad():
            g_d = float(_g(lm.model, X, y))
        d1, hv = _autograd(lm.model, X, y, v)
        d1_fd, hv_fd = _finite_differences(lm.model, X, y, v)
    assert g_d == pytest.approx(g_q, abs=1e-4)  # same function as the 4-bit layers
    assert d1 == pytest.approx(d1_fd, rel=2e-2, abs=1e-4)
    assert float((hv - hv_fd).norm() / hv_fd.norm()) < 5e-2
    assert not any("forward" in m.__dict__ for m in quantized_linears(lm.model))  # class forward back


def _cosine(a, b):
    a, b = a.double().flatten(), b.double().flatten()
    return float(a @ b / (a.norm() * b.norm()))


def test_8bit_explains_with_a_recorded_derivative_path(tiny_folder):
    """The expected path comes from cosines measured here (this file's own double backprop, on the
    check's probe text and direction), not from the check itself."""
    from heta_lite.quantization.derivatives import CHECK_TEXT, MIN_GRAD_COSINE, MIN_HVP_COSINE

    lm = load_model(tiny_folder, device="cpu", quantization="8bit")
    assert all(isinstance(m, bnb.nn.Linear8bitLt) for m in quantized_linears(lm.model))
    ids = lm.tokenizer(CHECK_TEXT, return_tensors="pt").input_ids[0]
    with torch.no_grad():
        X = lm.model.get_input_embeddings()(ids).float()
        y = int(lm.model(inputs_embeds=X[None]).logits[0, -1].argmax())
    v = torch.randn(X.shape, generator=torch.Generator().manual_seed(0)) * X.std()

    def grad_and_hvp():
        Xg = X.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(_g(lm.model, Xg, y), Xg, create_graph=True)
        (hv,) = torch.autograd.grad((grad * v).sum(), Xg)
        return grad.detach(), hv

    grad_q, hv_q = grad_and_hvp()
    with dequantized_forward(lm.model):
        grad_d, hv_d = grad_and_hvp()
    cos_g, cos_h = _cosine(grad_q, grad_d), _cosine(hv_q, hv_d)
    # the decision is not a rounding question: both cosines are clearly on one side of their bar
    assert abs(cos_g - MIN_GRAD_COSINE) > 1e-3 and abs(cos_h - MIN_HVP_COSINE) > 1e-3
    expected = "quantized-layers" if cos_g >= MIN_GRAD_COSINE and cos_h >= MIN_HVP_COSINE else "dequantized-weights"
    exp = explain(lm, PROMPT, TargetSpec(position=6), HetaSettings.preset("fast"))
    assert exp.derivatives["path"] == expected
    assert exp.derivatives["check"]["grad_cosine"] == pytest.approx(cos_g, abs=1e-5)
    assert exp.derivatives["check"]["hvp_cosine"] == pytest.approx(cos_h, abs=1e-5)
    forced = explain(lm, PROMPT, TargetSpec(position=6), HetaSettings.preset("fast", derivatives="dequantized"))
    assert forced.derivatives["path"] == "dequantized-weights"
    report = build_report(forced)
    validate_report(report)
    assert report["model"]["quant"]["mode"] == "8bit" and report["settings"]["derivatives"] == "dequantized"
    assert np.isfinite(forced.scores).all() and forced.scores.sum() > 0


# ---------------------------------------------------------------- fake layers: silent and loud failures
class _OnceDifferentiableLinear(torch.autograd.Function):
    """y = x W^T + b whose backward is not itself differentiable (like a quantized kernel with a
    hand-written backward): first derivatives are right, second derivatives silently miss it."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(weight)
        return torch.nn.functional.linear(x, weight, bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        (weight,) = ctx.saved_tensors
        return grad_out @ weight, None, None


class _NoBackwardLinear(torch.autograd.Function):
    """A kernel whose backward raises the error bitsandbytes' LLM.int8 gave without its CB state."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        return torch.nn.functional.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad_out):
        raise RuntimeError("State must contain either CBt or CB matrix for backward")


@register_quantized_linear
class FakeQuantLinear(torch.nn.Linear):
    kernel = _OnceDifferentiableLinear

    def forward(self, x):
        return self.kernel.apply(x, self.weight, self.bias)


@register_quantized_linear
class FakeNoBackwardLinear(FakeQuantLinear):
    kernel = _NoBackwardLinear


def _fake_quantized(model, cls=FakeQuantLinear):
    for name, child in list(model.named_children()):
        if isinstance(child, torch.nn.Linear) and name != "lm_head":
            fake = cls(child.in_features, child.out_features, bias=child.bias is not None)
            fake.load_state_dict(child.state_dict())
            setattr(model, name, fake)
        else:
            _fake_quantized(child, cls)
    return model


def test_a_backward_that_raises_is_reported_and_falls_back():
    from tests.reference.tiny import tiny_qwen2

    lm = wrap_model(_fake_quantized(tiny_qwen2(), FakeNoBackwardLinear), quantization="8bit")
    check = check_derivatives(lm)
    assert check.error == "RuntimeError: State must contain either CBt or CB matrix for backward"
    assert not check.passed and check.grad_cosine is None
    path = resolve_derivative_path(lm, "auto")
    assert path.path == "dequantized-weights" and "backward failed" in path.reason
    exp_ids = torch.arange(3, 12)
    X = lm.model.get_input_embeddings()(exp_ids).detach()
    inp = MethodInput(lm=lm, input_ids=exp_ids, X=X, target_id=5, scored=torch.ones(9, dtype=torch.bool),
                      settings=HetaSettings.preset("fast"), control=JobControl(),
                      grad_context=functools.partial(path.context, lm.model))
    assert np.isfinite(get_method("saliency").attribute(inp).scores).all()


def test_silently_wrong_second_derivatives_are_caught_and_the_fallback_is_exact():
    from tests.reference.tiny import tiny_qwen2

    ref = wrap_model(tiny_qwen2())
    lm = wrap_model(_fake_quantized(tiny_qwen2()), quantization="8bit")
    assert len(quantized_linears(lm.model)) == 14
    check = check_derivatives(lm)
    assert check.error is None and check.grad_cosine > 0.9999  # first derivatives are fine...
    assert check.hvp_cosine < 0.9 and not check.passed  # ...the HVP is not, and nothing raised
    with pytest.raises(InputError, match="not trustworthy"):
        resolve_derivative_path(lm, "quantized")
    path = resolve_derivative_path(lm, "auto")
    assert path.path == "dequantized-weights" and "HVP cosine" in path.reason
    # the fallback must give exactly the unquantized model's numbers (the fake's weights are exact)
    settings = HetaSettings.preset("balanced")
    ids = torch.arange(3, 15)
    scored = torch.ones(len(ids), dtype=torch.bool)
    scored[0] = False
    results = []
    for model, ctx in ((ref, contextlib.nullcontext), (lm, functools.partial(path.context, lm.model))):
        X = model.model.get_input_embeddings()(ids).detach()
        inp = MethodInput(lm=model, input_ids=ids, X=X, target_id=17, scored=scored, settings=settings,
                          control=JobControl(), grad_context=ctx)
        results.append(get_method("heta").attribute(inp))
    (r_ref, r_q) = results
    np.testing.assert_allclose(r_q.components["S"].raw, r_ref.components["S"].raw, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(r_q.scores, r_ref.scores, rtol=1e-4, atol=1e-8)
    assert r_q.components["S"].raw[1:].max() > 0
    inp = MethodInput(lm=lm, input_ids=ids, X=lm.model.get_input_embeddings()(ids).detach(), target_id=17,
                      scored=scored, settings=settings, control=JobControl())
    wrong = get_method("heta-S").attribute(inp)  # what the quantized path alone would have returned
    assert not np.allclose(wrong.components["S"].raw, r_ref.components["S"].raw, rtol=1e-2)


def test_explain_cli_in_a_quantized_mode_says_where_derivatives_came_from(tiny_folder, tmp_path, capsys):
    from heta_lite.cli import main

    out = tmp_path / "r.json"
    rc = main(["explain", "--model", tiny_folder, "--device", "cpu", "--quant", "4bit-fp4-dq", "--prompt", PROMPT,
               "--target-pos", "5", "--quality", "fast", "--no-chat", "--json", str(out), "--cache-dir", "off"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "derivatives (4bit-fp4-dq): quantized-layers: autograd through the 4bit-fp4-dq layers agrees" in text
    report = json.loads(out.read_text())
    assert report["model"]["quant"] == {"mode": "4bit-fp4-dq", "bits": 4, "bitsandbytes": bnb.__version__,
                                        "quant_type": "fp4", "double_quant": True}
    assert report["derivatives"]["check"]["passed"] is True
