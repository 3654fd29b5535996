"""The evaluation summary from hand-made result rows (no model): tables, random row, top-5 split."""
import json

import pytest

from heta_lite.faithfulness.evaluate import summarise


def _row(item, method, aopc, in_top5=True, dsa=None):
    r = {"item": item, "kind": "", "method": method, "n": 12, "n_scored": 12, "target": " x", "p_target": 0.5,
         "target_rank": 1 if in_top5 else 9, "in_top5": in_top5, "seconds": 1.0,
         "deletion_zero": {"ks": [1, 2], "drop_top": [aopc, aopc], "drop_random": [0.1, 0.1]},
         "deletion_delete": {"ks": [1, 2], "drop_top": [aopc, aopc], "drop_random": [0.1, 0.1]},
         "aopc_zero": aopc, "aopc_random_zero": 0.1, "win_zero": float(aopc > 0.1),
         "aopc_delete": aopc, "aopc_random_delete": 0.1, "win_delete": float(aopc > 0.1),
         "sufficiency": 0.2, "sufficiency_random": 0.1, "win_sufficiency": 1.0, "soft_ns": 0.2, "soft_nc": 0.4,
         "soft_ns_ratio": 2.0, "soft_nc_ratio": 0.5, "soft_ns_ratio_shuffled": 1.5, "soft_nc_ratio_shuffled": 1.2, "first_token_mass": 0.1, "components": {}}
    if dsa is not None:
        r.update(dsa=dsa, dsa_uniform=0.0, win_dsa=float(dsa > 0))
    return r


def test_summary_splits_top5_and_counts_wins(tmp_path):
    rows = [_row("a", "heta", 0.3, dsa=0.5), _row("a", "attention", 0.05, dsa=-0.2),
            _row("b", "heta", 0.0, dsa=-0.1), _row("b", "attention", 0.2, dsa=0.1),
            _row("c", "heta", 0.9, in_top5=False), _row("c", "attention", 0.9, in_top5=False),
            {"item": "d", "method": "heta", "error": "answer token not found"}]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    s = summarise(tmp_path / "results.jsonl", ["heta", "attention"], tmp_path)
    m = s["methods"]
    assert s["top5_items"] == 2 and s["not_top5_items"] == ["c"] and len(s["errors"]) == 1
    assert m["heta"]["n"] == 2 and m["heta"]["aopc_zero"]["mean"] == pytest.approx(0.15)
    assert m["heta"]["win_zero"]["mean"] == 0.5 and m["attention"]["win_zero"]["mean"] == 0.5
    assert m["heta"]["dsa"]["mean"] == pytest.approx(0.2) and m["heta"]["win_dsa"]["mean"] == 0.5
    assert m["random"]["aopc_zero"]["mean"] == pytest.approx(0.1) and m["random"]["n"] == 2
    assert m["_heta_vs"]["attention"]["heta_wins_aopc_zero"] == 0.5
    assert s["not_top5"]["heta"]["n"] == 1 and s["not_top5"]["heta"]["aopc_zero"]["mean"] == pytest.approx(0.9)
    md = (tmp_path / "summary.md").read_text()
    assert "| heta | 2 | 0.150" in md and "NOT in the model's top-5 (1: c)" in md and "| random | 2 |" in md
    for f in ("summary.json", "deletion_curves.png", "aopc.png"):
        assert (tmp_path / f).stat().st_size > 0
