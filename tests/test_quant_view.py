"""The GUI's quantization side-by-side numbers: the same agreement as quant-compare computes."""
import numpy as np
import pytest

from gui.quant_view import agreement_html, mode_agreement, mode_header
from heta_lite import HetaSettings, TargetSpec, explain
from heta_lite.report import build_report
from quant.agreement import agreement


@pytest.fixture(scope="module")
def pair(smollm):
    """One prompt explained twice with different probe seeds (a stand-in for a second mode: the two
    differ in S and hence the final score, the gate is identical)."""
    s = HetaSettings.preset("fast")
    e_a = explain(smollm, "The capital of France is Paris", TargetSpec(position=5), s)
    e_b = explain(smollm, "The capital of France is Paris", TargetSpec(position=5), s.replace(seed=7))
    return e_a, e_b


def test_mode_agreement_matches_quant_agreement(pair):
    e_a, e_b = pair
    agree = mode_agreement(e_a, e_b)
    scored = np.asarray(e_a.context.scored)
    assert set(agree) == {"final", "M", "S", "I"}
    assert agree["final"] == agreement(e_a.scores, e_b.scores, scored).to_dict()
    assert agree["M"]["spearman"] == pytest.approx(1.0)  # the gate has no probes: same in both
    assert agree["S"]["n"] == int(scored.sum())
    table = agreement_html(agree)
    assert table.count("<tr>") == 5 and "top-5 overlap" in table and "S curvature" in table


def test_mode_agreement_refuses_different_contexts(smollm, pair):
    other = explain(smollm, "Two plus two equals four", TargetSpec(position=4), HetaSettings.preset("fast"))
    with pytest.raises(ValueError, match="different contexts"):
        mode_agreement(pair[0], other)


def test_mode_header_names_mode_target_and_derivative_path(pair):
    report = build_report(pair[0])
    head = mode_header(report)
    assert "none" in head and "Paris" in head and f"{report['target']['prob']:.3f}" in head
    report["derivatives"] = {"path": "dequantized-weights", "reason": "fallback: <8bit>"}
    head = mode_header(report)
    assert "dequantized weights (fallback)" in head and "&lt;8bit&gt;" in head  # escaped
