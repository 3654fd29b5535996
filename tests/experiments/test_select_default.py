"""The pre-registered selection rule (experiments/select_default.py) on hand-made dev rows."""
import json

import pytest

from experiments.select_default import FRAMES, GATES, SETS, rank_configs, select


def _row(item, gate, order, aopc, dsa, nc, top5=True):
    r = {"item": item, "method": f"heta[gate={gate}]", "order": order, "in_top5": top5, "aopc_zero": aopc,
         "soft_nc_ratio": nc, "first_content_top1": False}
    if dsa is not None:
        r["dsa"] = dsa
    return r


def _write(root, frame, s, rows):
    d = root / "dev" / f"frame-{frame}" / s
    d.mkdir(parents=True, exist_ok=True)
    (d / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_rule_reads_common_top5_items_and_the_worse_order(tmp_path):
    # last-quarter: best worse-order DSA; full: best AOPC; norm-mixing: best Soft-NC
    vals = {"full": (0.9, (-0.5, 0.6), 1.0), "last-quarter": (0.8, (0.1, 0.2), 1.1), "norm-mixing": (0.7, (-0.4, 0.5), 1.2)}
    for frame in FRAMES:
        for s in SETS:
            rows = []
            for g in GATES:
                aopc, (d_first, e_first), nc = vals[g]
                seg = s != "plain"
                rows.append(_row("a", g, "distractor_first" if seg else "", aopc, d_first if seg else None, nc))
                rows.append(_row("a-swap", g, "evidence_first" if seg else "", aopc, e_first if seg else None, nc))
                # an item in the top-5 under one frame only: never read, though it would change every mean
                rows.append(_row("b", g, "distractor_first" if seg else "", 100.0, -1.0 if seg else None, 100.0,
                                 top5=(frame == "auto")))
            _write(tmp_path, frame, s, rows)
    sel = select(tmp_path)
    assert sel["complete"] and sel["items"] == {s: 2 for s in SETS}
    table = {t["config"]: t for t in sel["eligible_ranking"]}
    assert table["frame=auto, gate=full"]["aopc_zero"] == pytest.approx(0.9)
    assert table["frame=auto, gate=full"]["dsa_worse_order"] == pytest.approx(-0.5)  # min of the two orders
    assert table["frame=auto, gate=last-quarter"]["dsa_worse_order"] == pytest.approx(0.1)
    # ranks (AOPC / DSA worse order / Soft-NC): full 1/3/3, last-quarter 2/1/2, norm-mixing 3/2/1
    assert table["frame=auto, gate=full"]["mean_rank"] == pytest.approx(7 / 3)
    assert table["frame=auto, gate=last-quarter"]["mean_rank"] == pytest.approx(5 / 3)
    assert table["frame=auto, gate=norm-mixing"]["mean_rank"] == pytest.approx(2)
    assert sel["default"] == "frame=auto, gate=last-quarter"
    assert all(t["config"].startswith("frame=auto") for t in sel["eligible_ranking"])
    assert len(sel["all_six_ranking"]) == 6


def test_ties_share_the_average_rank_and_break_by_dsa_then_aopc():
    scores = {"A": {"aopc_zero": 0.5, "dsa_worse_order": 0.1, "soft_nc_ratio": 1.0},
              "B": {"aopc_zero": 0.5, "dsa_worse_order": 0.1, "soft_nc_ratio": 1.0},
              "C": {"aopc_zero": 0.4, "dsa_worse_order": 0.3, "soft_nc_ratio": 0.9}}
    table = rank_configs(scores)
    a = next(t for t in table if t["config"] == "A")
    assert a["ranks"]["aopc_zero"] == 1.5 and a["ranks"]["soft_nc_ratio"] == 1.5 and a["ranks"]["dsa_worse_order"] == 2.5
    assert table[-1]["config"] == "C"  # mean rank 2.33 vs 1.83


def test_no_default_from_an_incomplete_run(tmp_path):
    _write(tmp_path, "auto", "dsa_qa", [_row("a", g, "distractor_first", 0.5, 0.1, 1.0) for g in GATES])
    sel = select(tmp_path)
    assert not sel["complete"] and sel["default"] is None
