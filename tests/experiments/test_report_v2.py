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


def _write_half(root, keep=lambda frame, s, row: True):
    """A test half of hand-made rows under `root`, and the dev selection's default."""
    for frame in FRAMES:
        for s in SETS:
            d = root / "test" / f"frame-{frame}" / s
            d.mkdir(parents=True)
            rows = [r for r in _rows(s, frame) if keep(frame, s, r)]
            d.joinpath("results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "selection.json").write_text(json.dumps({"default": "frame=auto, gate=last-quarter"}))


def test_report_reads_common_items_splits_orders_and_checks_the_bars(tmp_path):
    _write_half(tmp_path)
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
    _write_half(tmp_path, keep=lambda frame, s, r: r["method"] != "saliency"  # saliency never ran
                and not (frame == "none" and s == "plain" and r["item"].startswith("plain-004")))
    for s in SETS:
        (tmp_path / "test" / f"{s}.items").write_text("".join(
            f"{s}-{i:03d}-{o}\n" for i in range(6) for o in ("distractor_first", "evidence_first")))
    rep = build(tmp_path, "test")
    aopc_bar = rep["bars"]["per_set"]["dsa_qa"]["aopc_at_least_attention_and_saliency"]
    assert aopc_bar["pass"] is None and aopc_bar["saliency"] is None and aopc_bar["attention"] == 0.4
    assert rep["bars"]["all_pass"] is None
    assert rep["complete"] is False and rep["missing_rows"]["none/plain"] == 4  # 2 orders x 2 methods
    assert rep["missing_rows"]["auto/dsa_qa"] == 0
    md = markdown(rep)
    assert "Incomplete: the run still owes rows" in md and "All bars met: not measured" in md
    assert "saliency not measured" in md


def test_head_to_head_pairs_rows_per_item_and_order(tmp_path):
    """Rival minus default on the same (item, order): a constant gap is a clear lead either way, a
    gap that changes sign from item to item is no lead, and DSA is compared within each order."""
    from experiments.report_v2 import head_to_head

    rows = []
    for i in range(8):
        for order in ("distractor_first", "evidence_first"):
            base = {"item": f"dsa-{i:03d}-{order}", "order": order}
            rows.append({**base, "method": "heta", "aopc_zero": 0.5 + i / 10, "soft_nc_ratio": 1.0,
                         "dsa": 0.3 if order == "evidence_first" else -0.2})
            rows.append({**base, "method": "saliency", "aopc_zero": 0.6 + i / 10,  # +0.1 on every item
                         "soft_nc_ratio": 1.0 + (0.2 if i % 2 else -0.2),  # no lead
                         "dsa": 0.1})
    rows.append({"item": "dsa-999", "order": "distractor_first", "method": "saliency", "aopc_zero": 9.0})  # unpaired
    h = head_to_head(rows, "heta")["saliency"]
    assert abs(h["aopc_zero"]["diff"] - 0.1) < 1e-9 and h["aopc_zero"]["ahead"] == "rival"
    assert h["aopc_zero"]["n"] == 16  # the unpaired row is left out
    assert h["soft_nc_ratio"]["ahead"] == "neither" and h["soft_nc_ratio"]["ci95"][0] < 0 < h["soft_nc_ratio"]["ci95"][1]
    assert abs(h["dsa_distractor_first"]["diff"] - 0.3) < 1e-9 and h["dsa_distractor_first"]["ahead"] == "rival"
    assert abs(h["dsa_evidence_first"]["diff"] + 0.2) < 1e-9 and h["dsa_evidence_first"]["ahead"] == "default"
    assert h["dsa_evidence_first"]["n"] == 8 and "sufficiency" not in h


def test_report_has_the_head_to_head_section(tmp_path):
    _write_half(tmp_path)
    rep = build(tmp_path, "test")
    h = rep["head_to_head"]["plain"]
    assert h["attention"]["aopc_zero"]["ahead"] == "default" and h["saliency"]["aopc_zero"]["ahead"] == "rival"
    assert h["saliency"]["aopc_zero"]["n"] == 10  # the items common to both frames only
    md = markdown(rep)
    assert "## Head to head: heta[gate=last-quarter] (frame auto)" in md and "### plain" in md


def test_dsa_plot_is_written_per_set_and_frame(tmp_path):
    from experiments.report_v2 import dsa_plot

    _write_half(tmp_path)
    rep = build(tmp_path, "test")
    out = tmp_path / "dsa.png"
    assert dsa_plot(rep, out) and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not dsa_plot({"table": {}}, tmp_path / "none.png") and not (tmp_path / "none.png").exists()


def test_owed_prints_counts_only_and_writes_nothing(tmp_path, capsys):
    """Mid-run, `--owed` says how much is left without showing (or writing) any test number."""
    from experiments.report_v2 import main

    d = tmp_path / "test" / "frame-auto" / "plain"
    d.mkdir(parents=True)
    d.joinpath("results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows("plain", "auto")[:3]))
    (tmp_path / "test" / "plain.items").write_text("plain-000-distractor_first\nplain-000-evidence_first\n")
    assert main(["--root", str(tmp_path), "--owed"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"auto/plain": 3, "none/plain": 6}  # 2 items x 3 methods; 3 rows exist, all under frame auto
    assert not list(tmp_path.glob("test_report.*"))


def test_last_token_diagnostic_reads_the_predicting_position():
    """Top-1 is exact; the share is the last token's weight when it is in the top-5, else 0."""
    from experiments.report_v2 import last_token, method_block

    on_top = {"n": 10, "top_tokens": [[9, ":", 0.6], [3, " x", 0.2], [1, " y", 0.1]]}
    second = {"n": 10, "top_tokens": [[3, " x", 0.5], [9, ":", 0.3]]}
    absent = {"n": 10, "top_tokens": [[3, " x", 0.5], [8, " z", 0.3]]}
    assert last_token(on_top) == (True, 0.6) and last_token(second) == (False, 0.3)
    assert last_token(absent) == (False, 0.0)
    b = method_block([on_top, second, absent, {"n": 4}])  # a row without top tokens is not counted
    assert abs(b["last_token_top1_rate"] - 1 / 3) < 1e-12 and abs(b["last_token_share_min"]["mean"] - 0.3) < 1e-12


def test_head_to_head_intervals_do_not_depend_on_row_order():
    """The paired bootstrap is seeded; its interval must not change with the order rows arrive in
    (or with the interpreter's hash seed, which orders sets of item keys)."""
    from experiments.report_v2 import head_to_head

    rows = []
    for i in range(30):
        base = {"item": f"dsa-{i:03d}", "order": "distractor_first"}
        rows.append({**base, "method": "heta", "aopc_zero": (i * 7919 % 13) / 13})
        rows.append({**base, "method": "saliency", "aopc_zero": (i * 104729 % 17) / 17})
    from heta_lite.faithfulness.metrics import bootstrap_ci

    forward = head_to_head(rows, "heta")["saliency"]["aopc_zero"]
    backward = head_to_head(rows[::-1], "heta")["saliency"]["aopc_zero"]
    assert forward["ci95"] == backward["ci95"] and forward["n"] == 30
    by_item = sorted(rows, key=lambda r: r["item"])  # the reference: diffs in item order
    diffs = [s["aopc_zero"] - h["aopc_zero"] for h, s in zip(by_item[0::2], by_item[1::2])]
    assert forward["ci95"] == list(bootstrap_ci(diffs)[1:])
