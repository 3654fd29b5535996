"""The page's pure view functions (no NiceGUI, no model): the heatmap HTML is rendered
unsanitised, so it must escape token text; tooltips carry the numbers; charts are valid."""
import json

from gui.page.compare import compare_summary
from gui.views import heatmap_html, legend_html, logit_lens_chart, next_token_chart, strips_html, tooltip


def _tok(i, display, text=None, special=False, score=0.1, norm=0.5, pct=50.0, rank=1):
    comps = {} if special else {c: {"raw": 1.5 * (k + 1), "normalised": 0.2 * (k + 1)} for k, c in enumerate("MSI")}
    return {"index": i, "display": display, "text": text if text is not None else display, "special": special,
            "score": 0.0 if special else score, "normalised": 0.0 if special else norm,
            "percentile": 0.0 if special else pct, "rank": None if special else rank, "components": comps}


def _report(tokens, target_display="␣Paris", prob=0.77, target_id=7, alternatives=None):
    alts = alternatives or [{"id": target_id, "text": target_display, "prob": prob}]
    return {"tokens": tokens, "target": {"id": target_id, "display": target_display, "prob": prob, "rank": 1,
                                         "alternatives": alts},
            "summary": {"top": [{"display": t["display"]} for t in tokens if not t["special"]]}}


def test_heatmap_escapes_token_text_and_marks_specials_and_newlines():
    rep = _report([_tok(0, "<|im_start|>", special=True), _tok(1, "<script>alert(1)</script>", norm=1.0),
                   _tok(2, "↵", text="\n", norm=0.2)], target_display="<b>")
    out = heatmap_html(rep)
    assert "<script>" not in out and "&lt;script&gt;" in out and "<b>" not in out
    assert "background:#eee;color:#999" in out  # the special token is grey
    assert "<br>" in out  # a newline token breaks the line
    assert out.count('class="heta-tok"') == 3 and 'class="heta-target"' in out


def test_tooltip_has_raw_normalised_percentile_rank_and_components():
    tip = tooltip(_tok(3, "␣France", score=0.0123, norm=0.043, pct=80, rank=2))
    for part in ("position 3", "␣France", "score 0.0123", "normalised 4.3%", "percentile 80", "rank 2",
                 "M 1.5 (20.0%)", "S 3 (40.0%)", "I 4.5 (60.0%)"):
        assert part in tip, part
    assert "not scored" in tooltip(_tok(0, "<|im_start|>", special=True))


def test_strips_have_one_row_per_component_and_skip_specials():
    out = strips_html(_report([_tok(0, "<s>", special=True), _tok(1, "A"), _tok(2, "B")]))
    assert out.count('class="heta-strip"') == 3 and "&lt;s&gt;" not in out
    assert strips_html(_report([_tok(0, "<s>", special=True)])) == ""


def test_charts_are_json_and_highlight_the_target():
    rows = [{"id": 7, "text": "␣Paris", "prob": 0.7}, {"id": 8, "text": "␣the", "prob": 0.1}]
    opt = next_token_chart(rows, target_id=7)
    json.dumps(opt)
    colours = {d["itemStyle"]["color"] for d in opt["series"][0]["data"]}
    assert len(colours) == 2 and opt["yAxis"]["data"][-1] == "␣Paris"  # highest bar on top
    lens = logit_lens_chart([{"layer": 1, "p_target": 0.1, "top": rows}, {"layer": 2, "p_target": 0.7, "top": rows}])
    json.dumps(lens)
    assert [s["name"] for s in lens["series"]] == ["p(target)", "p(top-1 of the layer)"]
    assert "more influential" in legend_html()


def test_compare_summary_same_and_different_targets():
    a = _report([_tok(0, "The")], "␣Paris", 0.77, 7)
    b_same = _report([_tok(0, "No")], "␣Paris", 0.60, 7)
    assert "p changes by -0.170" in compare_summary(a, b_same)
    b_diff = _report([_tok(0, "No")], "␣Lyon", 0.5, 9,
                     alternatives=[{"id": 9, "text": "␣Lyon", "prob": 0.5}, {"id": 7, "text": "␣Paris", "prob": 0.2}])
    assert "B gives A's “␣Paris” p 0.200 (-0.570)" in compare_summary(a, b_diff)
    b_far = _report([_tok(0, "No")], "␣Lyon", 0.5, 9, alternatives=[{"id": 9, "text": "␣Lyon", "prob": 0.5}])
    assert "not in B's top-5" in compare_summary(a, b_far)


def test_risk_line_shows_the_measured_accuracy_and_the_flags_escaped():
    from gui.views import risk_html

    rep = {"failure_risk": {"p_wrong": 0.37, "test_accuracy": 0.71, "test_auc": 0.66, "fitted_on": "<i>x</i>",
                            "calibrated": True, "features": {}},
           "anomalies": {"flags": ["attention_collapse", "<script>"], "values": {}, "thresholds": {}, "calibrated": True}}
    out = risk_html(rep)
    assert "37%" in out and "71% of held-out questions" in out and "AUC 0.66" in out
    assert "unusually concentrated" in out and "<script>" not in out and "<i>" not in out
    calm = risk_html({"failure_risk": {"p_wrong": None, "calibrated": False, "features": {}},
                      "anomalies": {"flags": [], "values": {}, "thresholds": {}, "calibrated": False}})
    assert "not measured for this model" in calm and "No anomaly flags" in calm
    assert risk_html({}) == ""
    forced = risk_html({"failure_risk": {"p_wrong": None, "calibrated": True, "features": {},
                                         "note": "not shown: the risk is about the model's own answer"}})
    assert "not shown" in forced and "Risk that the answer is wrong" not in forced


def test_head_importance_chart_has_one_cell_per_head_and_a_symmetric_scale():
    from gui.views import head_importance_chart

    opts = head_importance_chart([[0.5, -0.1, 0.0], [-2.0, 0.25, 0.3]])
    cells = opts["series"][0]["data"]
    assert len(cells) == 6 and [0, 1, -2.0] in cells and [2, 0, 0.0] in cells  # [head, layer, drop]
    assert opts["visualMap"]["min"] == -2.0 and opts["visualMap"]["max"] == 2.0
    assert json.loads(json.dumps(opts)) == opts


def test_frame_tokens_are_greyed_and_say_why():
    frame = {**_tok(0, "<|endoftext|>", special=True), "origin": "frame"}
    rep = {**_report([frame, _tok(1, "The")]), "frame": {"why": "the model's document separator"}}
    out = heatmap_html(rep)
    first = out.split("</span>")[0]
    assert 'data-origin="frame"' in first and "background:#eee;color:#999;font-style:italic" in first
    assert "never scored" in first and "document separator" in first  # the tooltip says why it is there
    assert "frame/template/special" in legend_html()


def test_check_line_has_the_verdict_numbers_and_a_hover_that_shows():
    from gui.page.theme import CSS
    from gui.views import check_html

    c = {"k": 3, "draws": 5, "beats_draws": 4, "passed": True, "verdict": "the top tokens matter more than random ones",
         "p_before": 0.77, "p_after_top": 0.12, "p_after_random": 0.70}
    out = check_html({"faithfulness_check": c})
    assert "the top tokens matter more than random ones" in out and "0.770 → 0.120" in out and "0.700" in out
    assert 'class="heta-check heta-tip"' in out and "4 of 5 draws" in out
    assert ".heta-tip[data-tip]:hover::after" in CSS  # the theme shows data-tip on hover for this class
    failed = check_html({"faithfulness_check": {**c, "passed": False, "verdict": "no better than random"}})
    assert 'data-passed="false"' in failed and "#b71c1c" in failed
    assert check_html({"faithfulness_check": None}) == ""
