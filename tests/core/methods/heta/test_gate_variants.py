"""The gate variants (spec, 'Evaluation variants of the gate') against the slow reference
(tests/reference/gate_variants.py), on tiny random models of several families."""
from __future__ import annotations

import math

import pytest
import torch

from heta_lite.methods.heta.gate import first_gate_layer, gate_scores
from heta_lite.models import wrap_model
from tests.reference.gate_variants import reference_gate_variant
from tests.reference.heta_reference import reference_gate
from tests.reference.tiny import TINY_BUILDERS

N = 8


def _lm_and_X(arch, layers=None):
    model = TINY_BUILDERS[arch](torch.float32)
    lm = wrap_model(model)
    ids = torch.randint(4, 64, (N,), generator=torch.Generator().manual_seed(7))
    return lm, lm.model.get_input_embeddings()(ids).detach()


@pytest.mark.parametrize("arch", ["qwen2", "llama", "gpt2", "phi3"])
@pytest.mark.parametrize("gate", ["last-quarter", "norm-mixing"])
def test_gate_variants_match_the_reference(arch, gate):
    lm, X = _lm_and_X(arch)
    got = gate_scores(lm, X, gate).M_raw.double()
    ref = reference_gate_variant(lm.model, X, gate)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("arch", ["qwen2", "gpt2"])
def test_full_gate_still_matches_the_spec_reference(arch):
    lm, X = _lm_and_X(arch)
    ref, _ = reference_gate(lm.model, X)
    torch.testing.assert_close(gate_scores(lm, X, "full").M_raw.double(), ref, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(reference_gate_variant(lm.model, X, "full"), ref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("L,first", [(1, 0), (2, 1), (4, 3), (5, 3), (8, 6), (30, 22), (36, 27)])
def test_last_quarter_layer_count(L, first):
    """ceil(L/4) layers: SmolLM2's 30 layers -> layers 22..29; Qwen2.5-3B's 36 -> 27..35."""
    assert first_gate_layer(L, "last-quarter") == first == L - math.ceil(L / 4)
    assert first_gate_layer(L, "full") == first_gate_layer(L, "norm-mixing") == 0


def test_variants_differ_from_the_full_gate():
    lm, X = _lm_and_X("qwen2")
    full = gate_scores(lm, X, "full").M_raw
    for gate in ("last-quarter", "norm-mixing"):
        assert not torch.allclose(gate_scores(lm, X, gate).M_raw, full)
