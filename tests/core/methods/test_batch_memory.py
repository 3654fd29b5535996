"""Batches sized by a memory budget (settings.batch_memory_mb, issue #16 'memory bounded by
design'): a long context gets smaller batches, never other results."""
import numpy as np
import pytest
import torch

from heta_lite.methods.heta import curvature
from heta_lite.methods.heta.curvature import curvature_scores
from heta_lite.methods.masking import chunk_sizes, copy_bytes, masked_last_logits
from heta_lite.models import wrap_model
from heta_lite.models.footprint import batch_memory_bytes, items_that_fit
from heta_lite.settings import HetaSettings
from tests.reference.tiny import TINY_BUILDERS

N = 12


@pytest.fixture(scope="module")
def tiny():
    lm = wrap_model(TINY_BUILDERS["qwen2"](torch.float32))
    ids = torch.randint(4, 64, (N,), generator=torch.Generator().manual_seed(1))
    return lm, lm.model.get_input_embeddings()(ids).detach()


@pytest.mark.parametrize("cap, item, budget, expected", [
    (16, 100, 1000, 10),   # the budget decides
    (4, 100, 1000, 4),     # the cap decides
    (16, 5000, 1000, 1),   # one item over the budget still runs, alone
    (16, 0, 1000, 16),     # a free item: the cap
])
def test_items_that_fit(cap, item, budget, expected):
    assert items_that_fit(cap, item, budget) == expected


def test_the_default_budget_depends_on_the_device(tiny):
    lm, _ = tiny
    assert batch_memory_bytes(lm, None) == 512 * 2**20  # CPU
    assert batch_memory_bytes(lm, 3) == 3 * 2**20


def test_masked_chunks_fit_the_budget_and_give_the_same_logits(tiny):
    lm, X = tiny
    budget = 3 * copy_bytes(lm, N, 0)  # three full-length copies: early chunks small, late ones large
    seen = []
    for chunk, logits in masked_last_logits(lm, X, list(range(N)), "zero", 64, budget_bytes=budget):
        seen.append((list(chunk), logits))
    sizes = [len(c) for c, _ in seen]
    assert sizes[0] == 3 and max(sizes) > 3, sizes  # the budget, not the cap, sized them
    assert sizes == list(chunk_sizes(lm, N, 64, budget).values())
    for chunk, _ in seen:
        assert len(chunk) == 1 or len(chunk) * copy_bytes(lm, N - chunk[0], chunk[0]) <= budget
    unbudgeted = torch.cat([lg for _, lg in masked_last_logits(lm, X, list(range(N)), "zero", 1)])
    torch.testing.assert_close(torch.cat([lg for _, lg in seen]), unbudgeted, rtol=1e-5, atol=1e-5)


def test_a_tight_budget_batches_fewer_probes_with_the_same_curvature(tiny, monkeypatch):
    lm, X = tiny
    scored = torch.ones(N, dtype=torch.bool)
    s = HetaSettings(estimator="global", num_probes=8, probe_batch=16, seed=2)
    full = curvature_scores(lm, X, 5, scored, s)
    sizes = []
    real_hvp = curvature.TargetGraph.hvp

    def spy(self, V):
        sizes.append(V.shape[0])
        return real_hvp(self, V)

    monkeypatch.setattr(curvature.TargetGraph, "hvp", spy)
    monkeypatch.setattr(curvature, "probe_bytes", lambda lm, n: 2**20 // 3)  # three probes per MiB
    tight = curvature_scores(lm, X, 5, scored, s.replace(batch_memory_mb=1))
    assert sizes == [3, 3, 2]
    np.testing.assert_allclose(tight.numpy(), full.numpy(), rtol=1e-5, atol=1e-7)


def test_the_estimate_counts_the_probes_a_pass_really_takes(tiny):
    """Block S batches (token, probe) pairs, n * m of them: a pass is as full as the budget and
    probe_batch allow, not m probes (the estimate read 0.65 of the measured peak at n = 16 before)."""
    from heta_lite.methods.heta.cost import estimate_memory
    from heta_lite.methods.heta.curvature import graph_bytes, probe_bytes, probes_per_batch

    lm, _ = tiny
    s = HetaSettings.preset("accurate")  # block, m = 10: 120 HVPs at n = 12, 16 per pass
    per_pass = probes_per_batch(lm, N, s)
    assert per_pass == s.probe_batch == 16
    assert estimate_memory(lm, N, s)["curvature"] == graph_bytes(lm, N) + per_pass * probe_bytes(lm, N)
    g = HetaSettings.preset("balanced", num_probes=3)  # global: only 3 probes to batch
    assert estimate_memory(lm, N, g)["curvature"] == graph_bytes(lm, N) + 3 * probe_bytes(lm, N)
