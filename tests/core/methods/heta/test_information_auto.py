"""information='auto' (the fast preset's): the exact KL while it costs at most twice the Taylor
estimate, so a short context gets the spec's exact I, a long one the estimate."""
import numpy as np
import pytest
import torch

from heta_lite.control import JobControl
from heta_lite.methods import MethodInput, get_method
from heta_lite.methods.heta.cost import AUTO_EXACT_FACTOR, information_costs, plan_heta, resolve_information
from heta_lite.models import wrap_model
from heta_lite.settings import HetaSettings
from tests.reference.tiny import TINY_BUILDERS

FAST = HetaSettings.preset("fast")


def test_the_fast_preset_is_auto_and_resolves_by_cost():
    assert FAST.information == "auto"
    assert resolve_information(FAST, 10).information == "exact"
    assert resolve_information(FAST, 64).information == "taylor"
    # exact while it costs at most twice the estimate (fast: 5 + n_scored/2 forwards vs 8 logit VJPs ~ 8)
    for n_scored in range(1, 80):
        cost = information_costs(n_scored, FAST)
        want = "exact" if cost["exact"] <= AUTO_EXACT_FACTOR * cost["taylor"] else "taylor"
        assert resolve_information(FAST, n_scored).information == want
    assert resolve_information(FAST, 22).information == "exact"
    assert resolve_information(FAST, 23).information == "taylor"


@pytest.mark.parametrize("mode", ["exact", "taylor"])
def test_an_explicit_mode_is_never_changed(mode):
    s = FAST.replace(information=mode)
    assert resolve_information(s, 5) is s and resolve_information(s, 500) is s


def _run(lm, ids, settings):
    X = lm.model.get_input_embeddings()(ids).detach()
    scored = torch.ones(len(ids), dtype=torch.bool)
    inp = MethodInput(lm=lm, input_ids=ids, X=X, target_id=11, scored=scored, settings=settings, control=JobControl())
    return get_method("heta").attribute(inp)


def test_auto_on_a_short_context_is_the_exact_kl_and_plan_says_so():
    lm = wrap_model(TINY_BUILDERS["qwen2"](torch.float32))
    ids = torch.randint(4, 64, (9,), generator=torch.Generator().manual_seed(0))
    auto = _run(lm, ids, FAST)
    exact = _run(lm, ids, FAST.replace(information="exact"))
    taylor = _run(lm, ids, FAST.replace(information="taylor"))
    np.testing.assert_allclose(auto.components["I"].raw, exact.components["I"].raw, rtol=1e-6, atol=1e-9)
    assert not np.allclose(auto.components["I"].raw, taylor.components["I"].raw, rtol=1e-3)
    planned, notes = plan_heta(lm, 9, 9, FAST, memory_limit_bytes=2**34)
    assert planned.information == "exact" and any(n.startswith("information: auto -> exact") for n in notes)
    planned, notes = plan_heta(lm, 60, 60, FAST, memory_limit_bytes=2**34)
    assert planned.information == "taylor" and any(n.startswith("information: auto -> taylor") for n in notes)
