"""The test-half report (experiments/report_v2.py) on hand-made rows: statistics per order, the
item rule shared with the selection, and the issue's bars computed from the right numbers."""
import json

from experiments.report_v2 import build, markdown
from experiments.select_default import FRAMES, SETS

METHODS = ("heta[gate=last-quarter]", "attention", "saliency")


def _rows(s, frame):
    rows = []
    for i in range(6):
        for order in ("distractor_first", "evidence_first"):
            item = f"{s}-{i:03d}-{order}"
            top5 = not (i == 5 and frame == "none")  # item 5 misses the top-5 without the frame only
            for m in METHODS:
                heta = m.startswith("heta")
                rows.append({"item": item, "method": m, "order": order, "in_top5": top5,
                             "aopc_zero": 0.5 if heta else (0.4 if m == "attention" else 0.6),
                             "aopc_delete": 0.3, "soft_nc_ratio": 1.1, "soft_ns_ratio": 0.9,
                             "first_token_mass": 0.1, "first_content_top1": heta and i == 0,
                             "check_passed": True,
                             **({"dsa": (0.2 if order == "evidence_first" else -0.1) if heta else 0.0}
                                if s != "plain" else {})})
    return rows


def test_report_reads_common_items_splits_orders_and_checks_the_bars(tmp_path):
    for frame in FRAMES:
        for s in SETS:
            d = tmp_path / "test" / f"frame-{frame}" / s
            d.mkdir(parents=True)
            d.joinpath("results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows(s, frame)))
    (tmp_path / "selection.json").write_text(json.dumps({"default": "frame=auto, gate=last-quarter"}))
    rep = build(tmp_path, "test")
    assert rep["items"] == {s: 10 for s in SETS}  # item 5 (2 orders) dropped under both frames
    b = rep["table"]["auto/dsa_qa"]["heta[gate=last-quarter]"]
    assert b["dsa_distractor_first"]["mean"] == -0.1 and b["dsa_evidence_first"]["mean"] == 0.2
    assert abs(b["dsa_pooled"]["mean"] - 0.05) < 1e-12 and b["dsa_worse_order"] == -0.1
    assert b["first_content_top1_rate"] == 0.2  # item 0 of 5, both orders
    bars = rep["bars"]["per_set"]
    assert bars["dsa_qa"]["dsa_both_orders_positive"]["pass"] is False  # distractor-first is negative
    assert bars["dsa_qa"]["first_content_top1_at_most_25pct"]["pass"] is True
    assert bars["plain"]["aopc_at_least_attention_and_saliency"]["pass"] is False  # saliency 0.6 > 0.5
    assert "dsa_both_orders_positive" not in bars["plain"]
    assert rep["bars"]["all_pass"] is False
    md = markdown(rep)
    assert "## auto/dsa_qa" in md and "**no**" in md and "All bars met: no" in md


def test_a_missing_rival_or_row_is_reported_not_passed(tmp_path):
    """The dev half has no baseline rows, and a half in progress lacks some: neither may read as a
    met (or failed) bar, and the report says which rows are still owed."""
    for frame in FRAMES:
        for s in SETS:
            d = tmp_path / "test" / f"frame-{frame}" / s
            d.mkdir(parents=True)
            rows = [r for r in _rows(s, frame) if r["method"] != "saliency"]  # saliency never ran
            rows = [r for r in rows if not (frame == "none" and s == "plain" and r["item"].startswith("plain-004"))]
            d.joinpath("results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for s in SETS:
        (tmp_path / "test" / f"{s}.items").write_text("".join(
            f"{s}-{i:03d}-{o}\n" for i in range(6) for o in ("distractor_first", "evidence_first")))
    (tmp_path / "selection.json").write_text(json.dumps({"default": "frame=auto, gate=last-quarter"}))
    rep = build(tmp_path, "test")
    aopc_bar = rep["bars"]["per_set"]["dsa_qa"]["aopc_at_least_attention_and_saliency"]
    assert aopc_bar["pass"] is None and aopc_bar["saliency"] is None and aopc_bar["attention"] == 0.4
    assert rep["bars"]["all_pass"] is None
    assert rep["complete"] is False and rep["missing_rows"]["none/plain"] == 4  # 2 orders x 2 methods
    assert rep["missing_rows"]["auto/dsa_qa"] == 0
    md = markdown(rep)
    assert "Incomplete: the run still owes rows" in md and "All bars met: not measured" in md
    assert "saliency not measured" in md
