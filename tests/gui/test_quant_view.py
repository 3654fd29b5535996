"""The GUI's quantization side-by-side numbers: the same agreement as quant-compare computes."""
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from gui.quant_view import agreement_html, mode_agreement, mode_header
from heta_lite import HetaSettings, TargetSpec, explain
from heta_lite.report import build_report


@pytest.fixture(scope="module")
def pair(smollm):
    """One prompt explained twice with different probe seeds (a stand-in for a second mode: the two
    differ in S and hence the final score, the gate is identical)."""
    s = HetaSettings.preset("fast")
    e_a = explain(smollm, "The capital of France is Paris", TargetSpec(position=5), s)
    e_b = explain(smollm, "The capital of France is Paris", TargetSpec(position=5), s.replace(seed=7))
    return e_a, e_b


def _top(x, k):
    return set(sorted(range(len(x)), key=lambda i: -x[i])[:k])


def test_mode_agreement_against_scipy_on_the_scored_tokens(pair):
    e_a, e_b = pair
    agree = mode_agreement(e_a, e_b)
    scored = np.asarray(e_a.context.scored, bool)
    assert set(agree) == {"final", "M", "S", "I"}
    vectors = {"final": (e_a.scores, e_b.scores)}
    vectors |= {k: (e_a.result.components[k].raw, e_b.result.components[k].raw) for k in ("M", "S", "I")}
    for comp, (a, b) in vectors.items():
        a, b = np.asarray(a)[scored], np.asarray(b)[scored]
        assert agree[comp]["n"] == len(a) == int(scored.sum())
        if comp == "M":  # the gate has no probes: the same in both runs
            np.testing.assert_array_equal(a, b)
            assert agree[comp]["spearman"] == pytest.approx(1.0) and agree[comp]["kendall"] == pytest.approx(1.0)
        assert agree[comp]["spearman"] == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12), comp
        assert agree[comp]["kendall"] == pytest.approx(stats.kendalltau(a, b).statistic, abs=1e-12), comp
        for k in (5, 10):
            kk = min(k, len(a))
            assert agree[comp][f"top{k}"] == pytest.approx(len(_top(a, kk) & _top(b, kk)) / kk), comp
    # the seeds do differ: not a comparison of a thing with itself
    assert not np.allclose(e_a.result.components["S"].raw, e_b.result.components["S"].raw)
    assert agree["S"]["n"] == int(scored.sum())
    table = agreement_html(agree)
    assert table.count("<tr>") == 5 and "top-5 overlap" in table and "S curvature" in table


def _stub(ids, scored, final, **components):
    return SimpleNamespace(context=SimpleNamespace(input_ids=ids, scored=scored), scores=np.asarray(final, float),
                           result=SimpleNamespace(components={k: SimpleNamespace(raw=np.asarray(v, float))
                                                              for k, v in components.items()}))


def test_mode_agreement_on_hand_checked_rankings():
    """Seven scored tokens and one unscored token (position 0) whose large, disagreeing values
    would change every statistic if it were compared."""
    ids = list(range(8))
    scored = [False] + [True] * 7
    down = [7.0, 6, 5, 4, 3, 2, 1]
    a = _stub(ids, scored, [100.0] + down, M=[0.0] + down, S=[50.0] + down, I=[1.0] + down)
    b = _stub(ids, scored, [-100.0] + [7.0, 6, 5, 4, 3, 1, 2], M=[9.0] + down, S=[-50.0] + down[::-1])
    agree = mode_agreement(a, b)
    assert set(agree) == {"final", "M", "S"}  # I missing on one side: not compared
    # one adjacent swap among 7: Spearman 1 - 6 * 2 / (7 * 48); Kendall (21 - 2) / 21
    assert agree["final"]["n"] == 7
    assert agree["final"]["spearman"] == pytest.approx(1 - 12 / 336)
    assert agree["final"]["kendall"] == pytest.approx(19 / 21)
    assert agree["final"]["top5"] == 1.0 and agree["final"]["top10"] == 1.0  # k capped at 7
    assert (agree["M"]["spearman"], agree["M"]["kendall"]) == pytest.approx((1.0, 1.0))
    # reversed: -1 / -1; top-5 {1..5} vs {3..7} share 3 tokens
    assert (agree["S"]["spearman"], agree["S"]["kendall"]) == pytest.approx((-1.0, -1.0))
    assert agree["S"]["top5"] == pytest.approx(3 / 5) and agree["S"]["top10"] == 1.0
    assert agreement_html(agree).count("<tr>") == 4


def test_mode_agreement_refuses_different_contexts(smollm, pair):
    other = explain(smollm, "Two plus two equals four", TargetSpec(position=4), HetaSettings.preset("fast"))
    with pytest.raises(ValueError, match="different contexts"):
        mode_agreement(pair[0], other)


def test_mode_header_names_mode_target_and_derivative_path(pair):
    report = build_report(pair[0])
    head = mode_header(report)
    # the target as the report displays it (which token position 5 is depends on the frame)
    assert "none" in head and f"“{report['target']['display']}”" in head
    assert f"{report['target']['prob']:.3f}" in head
    report["derivatives"] = {"path": "dequantized-weights", "reason": "fallback: <8bit>"}
    head = mode_header(report)
    assert "dequantized weights (fallback)" in head and "&lt;8bit&gt;" in head  # escaped
