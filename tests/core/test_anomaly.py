"""Anomaly flags (issue #17): each signal against an independent construction, and each flag
raised exactly when its signal leaves the measured range."""
from __future__ import annotations

import math

import pytest
import torch

from heta_lite import anomaly
from heta_lite.anomaly import anomaly_flags, repetition, signals
from heta_lite.models import wrap_model
from tests.reference.tiny import TINY_BUILDERS

IDS = [3, 17, 5, 9, 22, 41, 8, 13, 2, 30]


def test_repetition_is_zero_without_repeats_and_high_on_a_loop():
    assert repetition(list(range(40))) == 0.0
    assert repetition([7, 8, 9, 10] * 12) > 0.9
    assert repetition([1, 2, 3]) == 0.0  # shorter than one 4-gram


def test_uniform_attention_has_entropy_one_and_rms_matches_the_hidden_states():
    lm = wrap_model(TINY_BUILDERS["qwen2"](torch.float64))
    for block in lm.arch.blocks(lm.model):  # zero queries: every score equal, each row uniform over its past
        block.self_attn.q_proj.weight.data.zero_()
        block.self_attn.q_proj.bias.data.zero_()
    s = signals(lm, IDS)
    assert s.attention_entropy == pytest.approx(1.0, abs=1e-6)  # eager attention: softmax in float32
    with torch.no_grad():
        hs = lm.model(input_ids=torch.tensor([IDS]), output_hidden_states=True).hidden_states
    d = hs[0].shape[-1]
    assert s.layer_rms == pytest.approx([float(h[0, -1].pow(2).mean().sqrt()) for h in hs[1:]])
    assert len(s.layer_rms) == len(lm.arch.blocks(lm.model)) and d > 0


def _fake(monkeypatch, lm, **over):
    s = signals(lm, IDS)
    th = {"attention_entropy": {"p0_5": s.attention_entropy - 0.01, "p99_5": s.attention_entropy + 0.01},
          "activation_ratio": {"p0_5": 0.5, "p99_5": 1.5}, "layer_rms_median": list(s.layer_rms),
          "repetition": {"p0_5": 0.0, "p99_5": 0.2}}
    th.update(over)
    monkeypatch.setattr(anomaly, "thresholds_for", lambda name: th)
    return s


def test_flags_fire_exactly_outside_the_measured_range(monkeypatch):
    lm = wrap_model(TINY_BUILDERS["llama"](torch.float32))
    s = _fake(monkeypatch, lm)
    ok = anomaly_flags(lm, IDS, target_prob=0.3)
    assert ok.flags == [] and ok.calibrated and ok.values["activation_ratio"] == pytest.approx(1.0)
    _fake(monkeypatch, lm, attention_entropy={"p0_5": s.attention_entropy + 0.1, "p99_5": 1.0})
    assert anomaly_flags(lm, IDS, 0.3).flags == ["attention_collapse"]
    _fake(monkeypatch, lm, layer_rms_median=[r / 3 for r in s.layer_rms])  # every layer 3x its median
    assert anomaly_flags(lm, IDS, 0.3).flags == ["activation_norm"]
    assert anomaly_flags(lm, IDS, 5e-5).flags[0] == "unlikely_target"
    assert "degenerate_repetition" in anomaly_flags(lm, [7, 8, 9, 10] * 6, 0.3).flags


def test_an_uncalibrated_model_gets_only_the_model_independent_flags(monkeypatch):
    lm = wrap_model(TINY_BUILDERS["llama"](torch.float32))
    monkeypatch.setattr(anomaly, "thresholds_for", lambda name: None)
    rep = anomaly_flags(lm, IDS, 0.3)
    assert not rep.calibrated and rep.flags == [] and "not calibrated" in rep.notes[0]
    assert "activation_ratio" not in rep.values and 0 < rep.values["attention_entropy"] < 1
    assert math.isclose(rep.thresholds["target_prob_min"], 1e-4)


def test_lens_settle_against_a_layer_by_layer_reading():
    from heta_lite.explore import logit_lens

    lm = wrap_model(TINY_BUILDERS["llama"](torch.float64))
    s = signals(lm, IDS)
    rows = logit_lens(lm, IDS, target_id=0, k=1)  # the explorer's independent lens
    final = rows[-1]["top"][0]["id"]
    L = len(rows)
    settle = next(l for l in range(1, L + 1) if all(r["top"][0]["id"] == final for r in rows[l - 1:]))
    assert s.lens_settle == pytest.approx(settle / L)
