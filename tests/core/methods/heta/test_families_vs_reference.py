"""Every architecture family listed as supported (heta_lite.models.arch.ARCHITECTURES) against the
plain reference (tests/reference/heta_reference.py, which has its own per-architecture knowledge),
on tiny random models (tests/reference/tiny.py); and bf16 against fp32 on the same weights."""
import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from heta_lite.models.arch import ARCHITECTURES, head_dims
from heta_lite.settings import HetaSettings
from tests.reference.tiny import TINY_BUILDERS
from tests.core.methods.heta.test_engine_vs_reference import PAD_ID, _engine, _reference, _setup, assert_matches_reference

FAMILIES = sorted(ARCHITECTURES)


def test_every_listed_family_has_a_tiny_model():
    """A family added to ARCHITECTURES without a tiny builder is never checked: fail instead."""
    assert set(ARCHITECTURES) - set(TINY_BUILDERS) == set()


@pytest.mark.parametrize("arch", FAMILIES)
def test_tiny_model_is_of_its_family(arch):
    model = TINY_BUILDERS[arch]()
    assert model.config.model_type == arch
    assert model.config._attn_implementation == "eager"


def test_tiny_models_cover_head_dim_and_fused_qkv_layouts():
    """The layouts the gate has to get right are all present among the tiny models."""
    dims = {arch: head_dims(TINY_BUILDERS[arch]().config) for arch in ("qwen3", "mistral", "gemma", "gemma2", "phi3")}
    for arch in ("qwen3", "mistral", "gemma", "gemma2"):  # head_dim set in the config, != hidden / H
        d = dims[arch]
        assert d.num_heads * d.head_dim != d.hidden, arch
    assert dims["gemma"].num_kv_heads == 1  # multi-query
    phi3 = TINY_BUILDERS["phi3"]()
    d = dims["phi3"]
    assert d.num_kv_heads < d.num_heads  # GQA: v is NOT the last third of the fused qkv output
    assert phi3.model.layers[0].self_attn.qkv_proj.out_features == (d.num_heads + 2 * d.num_kv_heads) * d.head_dim


def _check_against_reference(lm, ids, scored, settings):
    res, y = _engine(lm, ids, scored, settings)
    ref = _reference(lm, ids, scored, settings, y)
    sc = scored.numpy()
    assert_matches_reference(res, ref, sc)
    for key in ("M_raw", "S_raw", "I_raw"):  # not vacuous (a sliding window may leave far tokens at 0)
        assert np.count_nonzero(ref[key].numpy()[sc] > 0) >= sc.sum() // 2, key


@pytest.mark.parametrize("arch", FAMILIES)
def test_family_matches_reference_block_zero_mask(arch):
    """Paper estimator, zero mask; several probe and mask chunks with different prefix lengths."""
    _check_against_reference(*_setup(arch), HetaSettings(estimator="block", num_probes=3, mask="zero", probe_batch=5,
                                                         mask_batch=3, seed=3))


@pytest.mark.parametrize("arch", FAMILIES)
def test_family_matches_reference_global_delete(arch):
    """Global estimator; deleting tokens shifts later positions (rotary / learned positions)."""
    _check_against_reference(*_setup(arch), HetaSettings(estimator="global", num_probes=4, mask="delete",
                                                         probe_batch=3, mask_batch=4, beta=0.3, gamma=0.7))


@pytest.mark.parametrize("arch", ["mistral", "gemma2"])
def test_sliding_window_shorter_than_the_context(arch):
    """The prefix cache keeps every key even where the model's own cache would keep only a window
    (failed before: wrong I for Mistral, a shape error for Gemma-2)."""
    from heta_lite.models import wrap_model

    _, ids, scored = _setup(arch)  # N = 9 context tokens
    model = TINY_BUILDERS[arch](sliding_window=4)  # the window bites
    model.config.pad_token_id = PAD_ID
    _check_against_reference(wrap_model(model), ids, scored,
                             HetaSettings(estimator="global", num_probes=2, mask="zero", mask_batch=3))


# ---- bf16 (the GPU default) on CPU, against fp32 on the same weights --------------------------------

BF16_N = 24


def _bf16_and_fp32(arch, settings):
    from heta_lite.control import JobControl
    from heta_lite.methods import MethodInput, get_method
    from heta_lite.models import wrap_model

    g = torch.Generator().manual_seed(42)
    ids = torch.randint(4, 64, (BF16_N,), generator=g)
    scored = torch.ones(BF16_N, dtype=torch.bool)
    scored[0] = scored[4] = False
    out = []
    for model in (TINY_BUILDERS[arch](torch.bfloat16), TINY_BUILDERS[arch](torch.bfloat16).float()):
        model.config.pad_token_id = PAD_ID
        lm = wrap_model(model)
        X = lm.model.get_input_embeddings()(ids).detach()
        inp = MethodInput(lm=lm, input_ids=ids, X=X, target_id=17, scored=scored, settings=settings,
                          control=JobControl())
        out.append((lm, get_method("heta").attribute(inp)))
    return out, scored.numpy()


@pytest.mark.parametrize("arch,estimator", [(a, "global") for a in FAMILIES] + [("qwen2", "block")])
def test_bf16_agrees_with_fp32_on_the_same_weights(arch, estimator):
    """A bf16 model (weights rounded to bf16) against the same bf16 weights cast to fp32, 24 context tokens
    (22 scored), zero mask, 2 probes. Measured on CPU (AVX2) over 3 random contexts x 8 families x both
    estimators: Spearman rank correlation of the normalised scores >= 0.993, max |difference| of the
    normalised scores <= 0.020 (qwen2, block; most are < 0.006), top-1 token the same in all 48.
    Asserted with margin: rho >= 0.97, max |diff| <= 0.05, all finite."""
    settings = HetaSettings(estimator=estimator, num_probes=2, mask="zero", probe_batch=16, mask_batch=8, seed=3)
    ((lm16, r16), (lm32, r32)), sc = _bf16_and_fp32(arch, settings)
    assert lm16.dtype == torch.bfloat16 and lm32.dtype == torch.float32
    a = r16.scores / r16.scores.sum()
    b = r32.scores / r32.scores.sum()
    assert np.all(np.isfinite(a)) and np.all(a[~sc] == 0)
    for comp in ("M", "S", "I"):
        assert np.all(np.isfinite(r16.components[comp].raw)), comp
    rho = spearmanr(a[sc], b[sc]).statistic
    assert rho >= 0.97, rho
    assert np.abs(a - b).max() <= 0.05, np.abs(a - b).max()
