"""Baselines against Captum and against hand computations on tiny models."""
import numpy as np
import pytest
import torch

from heta_lite.control import JobControl
from heta_lite.methods import MethodInput, get_method
from heta_lite.models import wrap_model
from heta_lite.settings import HetaSettings
from tests.reference.tiny import tiny_llama, tiny_qwen2

N, Y = 8, 17


@pytest.fixture(scope="module")
def lm():
    return wrap_model(tiny_qwen2())


def _inp(lm, settings=None, scored=None):
    ids = torch.arange(3, 3 + N)
    X = lm.model.get_input_embeddings()(ids).detach()
    sc = torch.ones(N, dtype=torch.bool) if scored is None else scored
    return MethodInput(lm=lm, input_ids=ids, X=X, target_id=Y, scored=sc, settings=settings or HetaSettings(),
                       control=JobControl())


def _forward(lm):
    def f(X):
        return torch.log_softmax(lm.model(inputs_embeds=X, use_cache=False).logits[:, -1].float(), -1)[:, Y]

    return f


def test_saliency_matches_captum(lm):
    from captum.attr import Saliency

    inp = _inp(lm)
    ours = get_method("saliency").attribute(inp).scores
    X = inp.X[None].clone().requires_grad_(True)
    theirs = Saliency(_forward(lm)).attribute(X, abs=False)[0].norm(dim=-1).detach().numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)


def test_input_x_gradient_matches_captum(lm):
    from captum.attr import InputXGradient

    inp = _inp(lm)
    ours = get_method("input_x_gradient").attribute(inp).scores
    theirs = InputXGradient(_forward(lm)).attribute(inp.X[None].clone().requires_grad_(True))
    np.testing.assert_allclose(ours, theirs[0].sum(-1).abs().detach().numpy(), rtol=1e-4, atol=1e-6)  # fp32 sums


def test_integrated_gradients_matches_captum(lm):
    from captum.attr import IntegratedGradients

    steps = 16
    inp = _inp(lm, HetaSettings(probe_batch=5, extra={"ig_steps": steps}))
    ours = get_method("integrated_gradients").attribute(inp).scores
    theirs = IntegratedGradients(_forward(lm)).attribute(inp.X[None], baselines=torch.zeros_like(inp.X[None]),
                                                          n_steps=steps, method="riemann_middle")
    theirs = theirs[0].sum(-1).abs().detach().numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("unscored", [[], [0, 3]])
def test_integrated_gradients_completeness(unscored):
    """The registered method's signed per-token IG sums to g(x) - g(x0), with g from two plain
    forwards (no gradients), up to the midpoint rule's O(1/steps^2) error; the scores it reports
    are the absolute values of those signed terms. x0 zeroes the scored tokens and leaves unscored
    (frame/template) tokens as they are, so those get exactly 0. On GPT-2, where position
    embeddings are added before the first LayerNorm, the path is smooth; with RMSNorm on the raw
    embeddings (Llama/Qwen) g changes sharply near alpha = 0 and a coarse Riemann sum misses it."""
    from tests.reference.tiny import tiny_gpt2

    lm = wrap_model(tiny_gpt2(torch.float64))
    method = get_method("integrated_gradients")
    f = _forward(lm)
    scored = torch.ones(N, dtype=torch.bool)
    scored[unscored] = False
    X = _inp(lm).X
    X0 = X.clone()
    X0[scored] = 0
    with torch.no_grad():
        gap = float(f(X[None]) - f(X0[None]))
    assert abs(gap) > 0.1  # a gap worth explaining
    errors = {}
    for steps in (4, 64):
        inp = _inp(lm, HetaSettings(probe_batch=5, extra={"ig_steps": steps}), scored)
        signed = method.signed_attributions(inp).double()
        errors[steps] = abs(float(signed.sum()) - gap)
        assert torch.all(signed[~scored] == 0)
        np.testing.assert_allclose(method.attribute(inp).scores, signed.abs().numpy(), rtol=1e-12)
        assert len(set(np.sign(signed[scored].numpy()))) == 2  # mixed signs: the |.| alone would not sum to the gap
    assert errors[64] < 2e-3 * abs(gap)
    assert errors[4] > 50 * errors[64]  # the error shrinks ~ 1/steps^2 (midpoint rule: 16^2 = 256)


def test_occlusion_is_leave_one_out(lm):
    inp = _inp(lm, HetaSettings(mask_batch=3))
    ours = get_method("occlusion").attribute(inp).scores
    f = _forward(lm)
    base = float(f(inp.X[None]))
    for i in range(N):
        Xm = inp.X.clone()
        Xm[i] = 0
        assert ours[i] == pytest.approx(max(0.0, base - float(f(Xm[None]))), rel=1e-4, abs=1e-6)


def test_attention_and_rollout_by_hand():
    lm = wrap_model(tiny_llama())
    inp = _inp(lm)
    out = lm.model(inputs_embeds=inp.X[None], output_attentions=True, use_cache=False)
    last = out.attentions[-1][0].mean(0)[-1].detach().numpy()
    np.testing.assert_allclose(get_method("attention").attribute(inp).scores, last, rtol=1e-5)
    R = torch.eye(N)
    for A in out.attentions:
        A_hat = 0.5 * A[0].mean(0) + 0.5 * torch.eye(N)
        R = (A_hat / A_hat.sum(-1, keepdim=True)) @ R
    np.testing.assert_allclose(get_method("rollout").attribute(inp).scores, R[-1].detach().numpy(), rtol=1e-5)


def test_every_method_zeroes_unscored_tokens(lm):
    scored = torch.ones(N, dtype=torch.bool)
    scored[[0, 3]] = False
    for name in ("attention", "rollout", "saliency", "input_x_gradient", "integrated_gradients", "occlusion",
                 "heta", "heta-M"):
        res = get_method(name).attribute(_inp(lm, HetaSettings(num_probes=1, extra={"ig_steps": 4}), scored))
        assert res.scores.shape == (N,) and np.all(res.scores >= 0), name
        assert res.scores[0] == 0 and res.scores[3] == 0, name


def test_quantized_models_record_where_gradient_methods_took_derivatives(lm):
    """Gradient methods on a model flagged quantized go through heta_lite.quantization.derivatives (the path is in
    the report); methods without gradients record none. Real and fake quantized layers, and the
    fallback's exactness, are tested in tests/core/quantization/test_quantization.py."""
    from heta_lite.engine import explain_context
    from heta_lite.targets import Context
    from heta_lite.tokens import TokenInfo

    q = wrap_model(tiny_qwen2(), quantization="8bit")  # flagged, but no bitsandbytes layers inside
    toks = [TokenInfo(i, 5 + i, "t", "t", i, i + 1, False, "prompt") for i in range(6)]
    ctx = Context("p", "tttttt", "position", False, [5 + i for i in range(6)], 5, toks, 6)
    for method in ("heta", "saliency", "integrated_gradients", "heta-S"):
        exp = explain_context(q, ctx, HetaSettings.preset("fast", frame="none"), method)
        assert exp.derivatives["path"] == "model" and "not quantized" in exp.derivatives["reason"]
    for method in ("attention", "occlusion", "heta-M"):
        assert explain_context(q, ctx, HetaSettings.preset("balanced", frame="none"), method).derivatives is None
