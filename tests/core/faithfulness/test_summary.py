"""The evaluation summary from hand-made result rows (no model): tables, random row, top-5 split,
DSA per passage order (pooled, per order, worse order) and the dev/test halves."""
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


def _tagged(item, method, dsa, order, split, in_top5=True, uniform=0.0):
    r = _row(item, method, 0.2, in_top5=in_top5, dsa=dsa)
    r.update(base_id=item.removesuffix("-swap"), order=order, split=split, dsa_uniform=uniform)
    return r


def _order_rows():
    """Two base items (0: dev, 1: test), each in both orders, for heta and attention."""
    rows = []
    for method, d in (("heta", {("i0", "distractor_first"): -0.8, ("i0", "evidence_first"): 0.6,
                                ("i1", "distractor_first"): -0.4, ("i1", "evidence_first"): 0.2}),
                      ("attention", {("i0", "distractor_first"): 0.1, ("i0", "evidence_first"): 0.3,
                                     ("i1", "distractor_first"): 0.5, ("i1", "evidence_first"): -0.1})):
        for (base, order), v in d.items():
            item = base if order == "distractor_first" else base + "-swap"
            rows.append(_tagged(item, method, v, order, "dev" if base == "i0" else "test",
                                uniform=0.1 if order == "evidence_first" else -0.1))
    return rows


def test_dsa_per_order_pooled_and_worse_order(tmp_path):
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _order_rows()))
    s = summarise(tmp_path / "results.jsonl", ["heta", "attention"], tmp_path)
    h, a, rnd = s["methods"]["heta"], s["methods"]["attention"], s["methods"]["random"]
    assert h["dsa_distractor_first"]["mean"] == pytest.approx(-0.6) and h["dsa_distractor_first"]["n"] == 2
    assert h["dsa_evidence_first"]["mean"] == pytest.approx(0.4) and h["dsa_evidence_first"]["n"] == 2
    assert h["dsa"]["mean"] == pytest.approx(-0.1) and h["dsa"]["n"] == 4  # pooled over both orders
    assert h["dsa_worse_order"] == {"mean": pytest.approx(-0.6), "order": "distractor_first"}
    assert a["dsa_distractor_first"]["mean"] == pytest.approx(0.3)
    assert a["dsa_evidence_first"]["mean"] == pytest.approx(0.1)
    assert a["dsa_worse_order"] == {"mean": pytest.approx(0.1), "order": "evidence_first"}
    # the uniform attribution, once per item
    assert rnd["n"] == 4 and rnd["dsa_distractor_first"]["mean"] == pytest.approx(-0.1)
    assert rnd["dsa_worse_order"]["order"] == "distractor_first"
    assert s["items"] == 4 and s["base_items"] == 2
    assert s["items_per_order"] == {"distractor_first": 2, "evidence_first": 2}
    # one block per half: dev holds i0 and its swap only
    dev, test = s["by_split"]["dev"]["methods"]["heta"], s["by_split"]["test"]["methods"]["heta"]
    assert dev["n"] == 2 and dev["dsa_distractor_first"]["mean"] == pytest.approx(-0.8)
    assert dev["dsa_worse_order"]["mean"] == pytest.approx(-0.8)
    assert test["dsa_evidence_first"]["mean"] == pytest.approx(0.2)
    assert test["dsa_worse_order"] == {"mean": pytest.approx(-0.4), "order": "distractor_first"}
    md = (tmp_path / "summary.md").read_text()
    assert "| method | dsa (pooled) | dsa_distractor_first | dsa_evidence_first | dsa_worse_order |" in md
    assert "-0.600 (distractor_first)" in md and "### dev half" in md and "### test half" in md


def test_summary_of_one_split_uses_only_its_rows(tmp_path):
    rows = _order_rows() + [{"item": "i3", "base_id": "i3", "order": "distractor_first", "split": "test",
                             "method": "heta", "error": "answer token not found"}]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    s = summarise(tmp_path / "results.jsonl", ["heta", "attention"], tmp_path, split="test")
    h = s["methods"]["heta"]
    assert s["split"] == "test" and "by_split" not in s and s["items"] == 3 and len(s["errors"]) == 1
    assert h["n"] == 2 and h["dsa"]["mean"] == pytest.approx(-0.1)
    assert h["dsa_distractor_first"]["mean"] == pytest.approx(-0.4)
    assert h["dsa_worse_order"] == {"mean": pytest.approx(-0.4), "order": "distractor_first"}
    assert "test half only" in (tmp_path / "summary.md").read_text()
    s = summarise(tmp_path / "results.jsonl", ["heta"], tmp_path, split="dev")
    assert s["methods"]["heta"]["n"] == 2 and not s["errors"]
    with pytest.raises(ValueError):
        summarise(tmp_path / "results.jsonl", ["heta"], tmp_path, split="train")


def test_one_order_only_has_no_worse_order_and_old_rows_get_tags_from_items(tmp_path):
    from heta_lite.faithfulness.datasets import EvalItem

    rows = [_row("dsa-001", "heta", 0.2, dsa=-0.5), _row("dsa-002", "heta", 0.2, dsa=0.3)]  # untagged rows
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    s = summarise(tmp_path / "results.jsonl", ["heta"], tmp_path)
    h = s["methods"]["heta"]
    assert h["dsa_distractor_first"]["n"] == 0 and h["dsa_worse_order"] == {"mean": None, "order": None}
    assert s["by_split"] == {}  # no split is guessed from the ids
    items = [EvalItem(id=i, prompt="p", answer="a", order="distractor_first", segments={"distractor": (0, 1),
                                                                                       "evidence": (1, 1)})
             for i in ("dsa-001", "dsa-002")]
    s = summarise(tmp_path / "results.jsonl", ["heta"], tmp_path, split="test", items=items)
    h = s["methods"]["heta"]
    assert h["n"] == 1 and h["dsa_distractor_first"]["mean"] == pytest.approx(-0.5)
    assert h["dsa_worse_order"]["mean"] is None  # a single order


def test_method_specs_override_settings_but_never_the_frame():
    from heta_lite.errors import InputError
    from heta_lite.faithfulness.evaluate import parse_method_spec, spec_settings
    from heta_lite.settings import HetaSettings

    assert parse_method_spec("heta[gate=full, mask=mean]") == ("heta", {"gate": "full", "mask": "mean"})
    name, s = spec_settings("heta-M[gate=norm-mixing]", HetaSettings())
    assert name == "heta-M" and s.gate == "norm-mixing" and s.frame == "auto"
    with pytest.raises(InputError, match="the frame is set for the whole run"):
        parse_method_spec("heta[frame=none]")  # it once passed here and made every row an error row
    with pytest.raises(InputError, match="key=value"):
        parse_method_spec("heta[seed=3]")
