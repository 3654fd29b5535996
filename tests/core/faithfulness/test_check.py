"""The faithfulness check that comes with every explanation (issue #14 item 5), against a plain
reference: p(y) read by one float64 softmax of a forward with the tokens cut out of the input."""
from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
import torch

from heta_lite import HetaSettings, TargetSpec
from heta_lite.commands.explain import print_table
from heta_lite.engine import explain_context, make_context
from heta_lite.faithfulness.check import FAILED, PASSED, check_k, faithfulness_check
from heta_lite.report import build_report, validate_report
from tests.core.test_frame import _framed

LONG = "the cat sat on the mat and then slept and the cat sat"  # 12 words: 11 scored before position 12


@pytest.mark.parametrize("n_scored, k", [(1, 1), (2, 1), (3, 1), (5, 1), (6, 2), (8, 2), (9, 3), (40, 3)])
def test_k_is_three_or_a_third_of_the_scored_tokens(n_scored, k):
    assert check_k(n_scored) == k


def _p_without(lm, X, y, removed) -> float:
    keep = [i for i in range(X.shape[0]) if i not in set(removed)]
    with torch.no_grad():
        logits = lm.model(inputs_embeds=X[keep][None], use_cache=False).logits[0, -1]
    return float(torch.softmax(logits.double(), -1)[y])


@pytest.mark.parametrize("text, target, k", [(None, None, 2), (LONG, 12, 3)])
def test_check_matches_a_plain_reference(text, target, k):
    lm, ctx = _framed()
    if text is not None:
        ctx = make_context(lm, text, TargetSpec(position=target), HetaSettings())
    X = lm.model.get_input_embeddings()(torch.tensor(ctx.input_ids)).detach()
    scored = np.asarray(ctx.scored)
    assert not scored[0] and scored[1:].all()  # the frame is never a candidate
    scores = np.where(scored, np.random.default_rng(1).random(len(scored)), 0.0)
    y = ctx.target_id
    p0 = _p_without(lm, X, y, [])
    c = faithfulness_check(lm, X, y, scores, scored, p_before=p0, seed=4)
    assert c.k == k and c.draws == 5 and len(c.p_after_random_draws) == 5
    want_top = sorted(np.argsort(-scores)[:k].tolist())
    assert c.removed == want_top and 0 not in c.removed
    assert c.p_after_top == pytest.approx(_p_without(lm, X, y, want_top), rel=1e-4)
    # every random draw is the deletion of k scored tokens (never the frame): its p is one of theirs
    every = [_p_without(lm, X, y, s) for s in itertools.combinations(np.flatnonzero(scored).tolist(), k)]
    for p in c.p_after_random_draws:
        assert min(abs(p - q) for q in every) < 1e-5 * max(1.0, p)
    assert c.p_after_random == pytest.approx(np.mean(c.p_after_random_draws))
    assert c.passed == (c.p_after_top < c.p_after_random)
    assert c.verdict == (PASSED if c.passed else FAILED)
    assert c.beats_draws == sum(p > c.p_after_top for p in c.p_after_random_draws)
    again = faithfulness_check(lm, X, y, scores, scored, p_before=p0, seed=4)
    assert again.p_after_random_draws == c.p_after_random_draws  # seeded: the same draws


def test_the_verdict_follows_the_ranking():
    """Scores that rank first the k tokens whose deletion hurts p(y) most (found by trying every
    k-subset) pass; scores that rank first the k whose deletion hurts least cannot: no random draw
    of k tokens can leave p(y) higher than that."""
    lm, ctx = _framed()
    ctx = make_context(lm, LONG, TargetSpec(position=12), HetaSettings())
    X = lm.model.get_input_embeddings()(torch.tensor(ctx.input_ids)).detach()
    scored = np.asarray(ctx.scored)
    y = ctx.target_id
    p0 = _p_without(lm, X, y, [])
    subsets = list(itertools.combinations(np.flatnonzero(scored).tolist(), 3))
    p = [_p_without(lm, X, y, s) for s in subsets]
    for chosen, passes in ((subsets[int(np.argmin(p))], True), (subsets[int(np.argmax(p))], False)):
        scores = np.where(scored, 0.1, 0.0)
        scores[list(chosen)] = 1.0
        c = faithfulness_check(lm, X, y, scores, scored, p_before=p0)
        assert c.removed == list(chosen) and c.passed is passes, (chosen, c)


class SequenceCounter:
    """Counts the sequences (batch rows) of every forward of the model."""

    def __init__(self, model):
        self.n = 0
        self.h = model.register_forward_pre_hook(self.hook, with_kwargs=True)

    def hook(self, _m, args, kwargs):
        x = kwargs.get("inputs_embeds", kwargs.get("input_ids", args[0] if args else None))
        self.n += int(x.shape[0])


def test_every_explanation_carries_it_for_at_most_seven_extra_passes():
    lm, ctx = _framed()
    counts, reports = {}, {}
    for check in (True, False):
        s = HetaSettings.preset("fast", num_probes=1, check=check)
        counter = SequenceCounter(lm.model)
        try:
            exp = explain_context(lm, ctx, s, "heta")
        finally:
            counter.h.remove()
        counts[check], reports[check] = counter.n, build_report(exp)
        validate_report(reports[check])
    assert 0 < counts[True] - counts[False] <= 7
    c = reports[True]["faithfulness_check"]
    assert c["verdict"] in (PASSED, FAILED) and c["k"] == 2 and c["p_before"] == reports[True]["target"]["prob"]
    assert reports[False]["faithfulness_check"] is None
    assert HetaSettings().check is True  # on unless a caller opts out
    out = io.StringIO()
    print_table(reports[True], 5, out)  # the CLI's table says it too, with the gate and the frame
    assert f"faithfulness check: {c['verdict']}" in out.getvalue() and "gate last-quarter, frame auto" in out.getvalue()
