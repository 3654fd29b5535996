"""Cache keys are complete by construction: every input that changes the numbers changes the key,
and a cached value equals a fresh computation in every quantization mode.

The bugs these tests were written against (issue #19): the KV-prefix and generation caches were
keyed by revision only, so a 4-bit load read the unquantized model's entries; a method's own
knobs (`settings.extra`, e.g. integrated gradients' `ig_steps`) were not in the report key."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from heta_lite import HetaSettings, TargetSpec, explain, load_model
from heta_lite.cache import HetaCache, ModelIdentity, _digest, cache_key
from heta_lite.engine import make_context, report_key
from heta_lite.frame import NO_FRAME, Frame
from heta_lite.settings import COMBINATIONS, DERIVATIVE_PATHS, ESTIMATORS, FRAMES, GATES, INFORMATION_MODES, \
    LONG_INPUT_STRATEGIES, MASK_SCHEMES, QUALITIES
from heta_lite.targets import Context

LONG = ("The old lighthouse keeper climbed the stairs every evening to light the lamp, and the ships that passed "
        "the rocks at night were safe because of him. One winter the lamp went dark, and the keeper walked down "
        "to the harbour to find out why the oil had not come")  # 50 tokens: a 32-token KV prefix is stored


def _fake_lm(**over):
    base = dict(name="m", revision="r1", quantization="none", dtype=torch.float32, device=torch.device("cpu"))
    base.update(over)
    return SimpleNamespace(**base)


def _ctx(**over) -> Context:
    base = dict(prompt="a b c", text="a b c", mode="position", chat=False, ids=[0, 5, 6, 7], target_pos=3,
                tokens=[], prompt_len=4, generated_ids=[], frame=Frame("auto", "document_separator", (0,), True, "x"))
    base.update(over)
    return Context(**base)


def _other_value(field: dataclasses.Field, value):
    """A valid value different from `value` for one HetaSettings field."""
    choices = {"quality": QUALITIES, "estimator": ESTIMATORS, "mask": MASK_SCHEMES, "combination": COMBINATIONS,
               "information": INFORMATION_MODES, "derivatives": DERIVATIVE_PATHS, "frame": FRAMES, "gate": GATES,
               "long_input": LONG_INPUT_STRATEGIES}
    if field.name in choices:
        return next(c for c in choices[field.name] if c != value and not (field.name == "mask" and c == "delete"))
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value + 0.25
    if value is None:
        return 5.0
    if isinstance(value, dict):
        return {**value, "ig_steps": 7}
    raise AssertionError(f"no alternative value for settings field {field.name!r}: extend this test")


def _key_digest(lm, ctx, settings, method="heta") -> str:
    return _digest(*report_key(lm, ctx, settings, method))


def test_every_settings_field_changes_the_report_key():
    lm, ctx, s = _fake_lm(), _ctx(), HetaSettings()
    base = _key_digest(lm, ctx, s)
    for f in dataclasses.fields(HetaSettings):
        other = s.replace(**{f.name: _other_value(f, getattr(s, f.name))})
        assert _key_digest(lm, ctx, other) != base, f"settings.{f.name} does not change the cache key"


def test_method_knobs_change_the_report_key():
    lm, ctx = _fake_lm(), _ctx()
    a = HetaSettings(extra={"ig_steps": 2})
    b = HetaSettings(extra={"ig_steps": 256})
    assert a != b  # extra takes part in equality too: two step counts are two settings
    assert _key_digest(lm, ctx, a, "integrated_gradients") != _key_digest(lm, ctx, b, "integrated_gradients")


@pytest.mark.parametrize("field,value", [("name", "other"), ("revision", "r2"), ("quantization", "4bit-nf4"),
                                         ("dtype", torch.bfloat16), ("device", torch.device("meta"))])
def test_every_model_identity_field_changes_the_report_key(field, value):
    ctx, s = _ctx(), HetaSettings()
    assert _key_digest(_fake_lm(**{field: value}), ctx, s) != _key_digest(_fake_lm(), ctx, s)


@pytest.mark.parametrize("change", [dict(ids=[0, 5, 6, 8]), dict(target_pos=2), dict(prompt="a b d"),
                                    dict(chat=True), dict(mode="generated"), dict(prompt_len=3),
                                    dict(frame=NO_FRAME)])
def test_every_context_input_changes_the_report_key(change):
    s = HetaSettings()
    assert _key_digest(_fake_lm(), _ctx(**change), s) != _key_digest(_fake_lm(), _ctx(), s)


def test_method_and_code_version_change_the_key(monkeypatch):
    lm, ctx, s = _fake_lm(), _ctx(), HetaSettings()
    assert _key_digest(lm, ctx, s, "heta") != _key_digest(lm, ctx, s, "occlusion")
    before = _key_digest(lm, ctx, s)
    import heta_lite.cache as cache_mod

    monkeypatch.setattr(cache_mod, "code_fingerprint", lambda: "another-build")
    assert _key_digest(lm, ctx, s) != before


def test_every_cache_kind_keys_on_the_full_identity():
    """Tokenization, generation and KV-prefix keys all carry the quantization mode, dtype and device."""
    a = ModelIdentity.of(_fake_lm())
    for field, value in (("quantization", "4bit-nf4"), ("dtype", "bfloat16"), ("device_type", "cuda")):
        b = dataclasses.replace(a, **{field: value})
        for kind, inputs in (("encode", dict(prompt="x", chat=False, frame="auto")),
                             ("generate", dict(ids=[1, 2], max_new_tokens=3)),
                             ("kvidx", dict(ids=[1, 2], dtype="torch.float32"))):
            assert _digest(*cache_key(a, kind, **inputs)) != _digest(*cache_key(b, kind, **inputs)), (kind, field)


# -- against real computations ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_modes(tiny_folder):
    pytest.importorskip("bitsandbytes")
    return {mode: load_model(tiny_folder, device="cpu", quantization=mode) for mode in ("none", "8bit", "4bit-nf4")}


def _same(a, b):
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6, atol=1e-12)
    for k in a.result.components:
        np.testing.assert_allclose(a.result.components[k].raw, b.result.components[k].raw, rtol=1e-6, atol=1e-12)
    assert a.target.prob == pytest.approx(b.target.prob, rel=1e-9)


@pytest.mark.parametrize("mode", ["8bit", "4bit-nf4", "none"])
def test_cached_explanation_equals_a_fresh_one_in_every_mode(tiny_modes, tmp_path, mode):
    """The cache is shared with every other mode first (as the GUI's quantization view shares it);
    then this mode's explanation, its KV prefix (>= 32 tokens) and its second, cached, run must equal a
    fresh run without any cache."""
    cache = HetaCache(tmp_path)
    s = HetaSettings.preset("balanced", num_probes=2)
    target = TargetSpec(position=40, chat=False)
    for other, lm in tiny_modes.items():
        if other != mode:
            explain(lm, LONG, target, s, cache=cache)
    lm = tiny_modes[mode]
    first = explain(lm, LONG, target, s, cache=cache)
    assert "cache_hit" not in first.timings  # another mode's entry was never served
    again = explain(lm, LONG, target, s, cache=cache)
    assert again.timings.get("cache_hit") == 1.0
    fresh = explain(lm, LONG, target, s)
    _same(first, fresh)
    _same(again, fresh)


def test_kv_prefix_of_another_mode_is_never_used(tiny_modes, tmp_path):
    """Exact I of the 4-bit model with the unquantized model's prefix cache on disk = I without a cache.
    (Before the fix the 4-bit run read the fp32 prefix: I was off by ~15% on SmolLM2.)"""
    cache = HetaCache(tmp_path)
    s = HetaSettings.preset("balanced", num_probes=1)
    other = TargetSpec(position=38, chat=False)
    explain(tiny_modes["none"], LONG, other, s, cache=cache)  # stores the fp32 model's 32-token prefix
    ctx = make_context(tiny_modes["4bit-nf4"], LONG, TargetSpec(position=41, chat=False), s)
    ids32 = ctx.input_ids[:32]
    assert cache.get_kv_prefix(ModelIdentity.of(tiny_modes["none"]), ids32, "torch.float32") is not None
    assert cache.get_kv_prefix(ModelIdentity.of(tiny_modes["4bit-nf4"]), ids32, "torch.float32") is None
    with_cache = explain(tiny_modes["4bit-nf4"], LONG, TargetSpec(position=41, chat=False), s, cache=cache)
    fresh = explain(tiny_modes["4bit-nf4"], LONG, TargetSpec(position=41, chat=False), s)
    np.testing.assert_allclose(with_cache.result.components["I"].raw, fresh.result.components["I"].raw,
                               rtol=1e-6, atol=1e-12)


def test_generation_of_another_mode_is_never_used(tiny_modes, tmp_path):
    """Greedy generations are per mode: find a prompt where fp32 and 4-bit generate different tokens
    (so the test can fail), then generate with a shared cache, fp32 first."""
    s = HetaSettings.preset("fast")
    spec = TargetSpec(generated=0, max_new_tokens=4, chat=False)
    prompts = [f"{w} is the word number {i} of a long list" for i, w in enumerate(
        ["apple", "river", "stone", "cloud", "lamp", "door", "tree", "bird", "glass", "music", "paper", "wind"])]
    gen = {m: [make_context(lm, p, spec, s).generated_ids for p in prompts] for m, lm in tiny_modes.items()}
    differing = [i for i in range(len(prompts)) if gen["none"][i] != gen["4bit-nf4"][i]]
    assert differing, "fp32 and 4-bit generate the same tokens on every prompt: pick other prompts"
    p = prompts[differing[0]]
    cache = HetaCache(tmp_path)
    assert make_context(tiny_modes["none"], p, spec, s, cache).generated_ids == gen["none"][differing[0]]
    assert make_context(tiny_modes["4bit-nf4"], p, spec, s, cache).generated_ids == gen["4bit-nf4"][differing[0]]


def test_two_ig_step_counts_never_share_an_entry(tiny_modes, tmp_path):
    cache = HetaCache(tmp_path)
    lm = tiny_modes["none"]
    target = TargetSpec(position=12, chat=False)
    runs = {}
    for steps in (2, 64):
        s = HetaSettings.preset("fast", extra={"ig_steps": steps})
        runs[steps] = explain(lm, LONG, target, s, method="integrated_gradients", cache=cache)
        assert "cache_hit" not in runs[steps].timings
        _same(runs[steps], explain(lm, LONG, target, s, method="integrated_gradients"))
        assert explain(lm, LONG, target, s, method="integrated_gradients", cache=cache).timings.get("cache_hit")
    assert not np.allclose(runs[2].scores, runs[64].scores)  # the step count matters, so sharing would be wrong


def test_a_changed_setting_is_a_miss_and_the_same_setting_a_hit(tiny_modes, tmp_path):
    cache = HetaCache(tmp_path)
    lm = tiny_modes["none"]
    target = TargetSpec(position=12, chat=False)
    s = HetaSettings.preset("fast")
    explain(lm, LONG, target, s, cache=cache)
    other_gate = next(g for g in GATES if g != s.gate)
    for changed in (s.replace(seed=1), s.replace(gate=other_gate), s.replace(beta=0.2), s.replace(frame="none")):
        res = explain(lm, LONG, target, changed, cache=cache)
        assert "cache_hit" not in res.timings, changed
        _same(res, explain(lm, LONG, target, changed))
    hit = explain(lm, LONG, target, s, cache=cache)
    assert hit.timings.get("cache_hit") == 1.0
    _same(hit, explain(lm, LONG, target, s))
