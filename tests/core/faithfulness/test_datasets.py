"""Evaluation items: our JSONL (with separators and offset segments) and bad lines; both passage
orders of every distractor/evidence item (ours and the authors'); the dev/test halves."""
import hashlib
import importlib.util
import json
import re
from pathlib import Path

import pytest

from heta_lite.errors import InputError
from heta_lite.faithfulness.datasets import EvalItem, first_base_items, load_items

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "experiments" / "data"
AUTHORS = ROOT.parent / "shared" / "data" / "heta_qa_dataset_100_unique.json"
# sha256 of dsa_qa.jsonl as it was before the position control (105 distractor-first lines)
OLD_DSA_SHA256 = "c139bf2bc882a7507fd9e4ba441d9e6bc5808d135661303da7b20517b2976d39"


def test_jsonl_items_separator_segments_and_bad_lines(tmp_path):
    p = tmp_path / "d.jsonl"
    lines = [
        {"id": "a", "prompt": "Q: x", "answer": "yes", "segments": {"evidence": [0, 2], "distractor": [2, 4]}},
        {"id": "code", "prompt": "print(", "answer": "i", "sep": ""},
        {"id": "bad-seg", "prompt": "abc", "answer": "d", "segments": {"evidence": [0, 9]}},
        {"id": "no-answer", "prompt": "abc", "answer": ""},
    ]
    p.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n\n")
    items, skipped = load_items(p)
    assert [i.id for i in items] == ["a", "code"]
    assert items[0].text == "Q: x yes" and items[0].text[items[0].answer_start:] == "yes"
    assert items[1].text == "print(i" and items[1].answer_start == 6
    assert [s.split(":")[0] for s in skipped] == ["line 3", "line 4", "line 5"]


def test_missing_dataset_is_an_input_error(tmp_path):
    with pytest.raises(InputError):
        load_items(tmp_path / "nope.jsonl")


def test_project_sets_are_well_formed():
    dsa, skipped = load_items(DATA / "dsa_qa.jsonl")
    assert not skipped and len(dsa) >= 200 and len({i.id for i in dsa}) == len(dsa)
    for it in dsa:
        (ea, eb), (da, db) = it.segments["evidence"], it.segments["distractor"]
        assert (db <= ea) == (it.order == "distractor_first") and (eb <= da) == (it.order == "evidence_first")
        assert it.answer.lower() not in it.prompt[da:db].lower()
    plain, skipped = load_items(DATA / "plain.jsonl")
    assert not skipped and len(plain) >= 50
    assert {"facts", "arithmetic", "code", "coreference"} <= {i.kind for i in plain}


def _make_datasets():
    spec = importlib.util.spec_from_file_location("make_datasets", DATA / "make_datasets.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _pairs(items):
    by_base: dict = {}
    for it in items:
        by_base.setdefault(it.base_id, {})[it.order] = it
    return by_base


def _after(it):
    """The prompt after the later of the two passages (the question and answer stem)."""
    return it.prompt[max(it.segments["evidence"][1], it.segments["distractor"][1]):]


def test_dsa_file_is_regenerated_deterministically_and_old_lines_are_kept():
    mod = _make_datasets()
    for name, text in mod.rendered().items():
        assert (DATA / name).read_text(encoding="utf-8") == text, f"{name}: re-run make_datasets.py"
    lines = (DATA / "dsa_qa.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    first = [x for x in lines if json.loads(x)["order"] == "distractor_first"]
    assert lines[:len(first)] == first and len(first) == len(mod.FACTS) == 105
    assert all(x.count('"order": "distractor_first", ') == 1 for x in first)
    old = "".join(x.replace('"order": "distractor_first", ', "", 1) for x in first)
    assert hashlib.sha256(old.encode("utf-8")).hexdigest() == OLD_DSA_SHA256  # byte-identical but for "order"


def test_every_dsa_item_in_both_orders_with_offset_spans():
    mod = _make_datasets()
    items, skipped = load_items(DATA / "dsa_qa.jsonl")
    assert not skipped
    pairs = _pairs(items)
    assert len(pairs) == len(mod.FACTS) and len(items) == 2 * len(mod.FACTS)
    for base, pair in pairs.items():
        assert set(pair) == {"distractor_first", "evidence_first"}
        df, ef = pair["distractor_first"], pair["evidence_first"]
        assert df.id == base and ef.id == base + "-swap"
        evidence, question, stem, answer = mod.FACTS[int(base.split("-")[1])]
        for it in (df, ef):
            assert it.prompt[slice(*it.segments["evidence"])] == evidence
            assert it.prompt[slice(*it.segments["distractor"])] in mod.DISTRACTORS
            assert _after(it) == " Question: " + question + " Answer: " + stem and it.answer == answer
        d = df.prompt[slice(*df.segments["distractor"])]
        assert ef.prompt[slice(*ef.segments["distractor"])] == d
        assert df.prompt.startswith(d + " " + evidence + " Question:")
        assert ef.prompt.startswith(evidence + " " + d + " Question:")
        assert ef.segments["evidence"] == (0, len(evidence))
        assert (df.kind, df.answer, df.sep) == (ef.kind, ef.answer, ef.sep)


@pytest.mark.skipif(not AUTHORS.exists(), reason="the authors' toy set lives in shared/data beside the repo")
def test_authors_items_in_both_orders_checked_against_the_source():
    examples = {ex["id"]: ex for ex in json.loads(AUTHORS.read_text(encoding="utf-8"))["examples"]}
    items, skipped = load_items(AUTHORS)
    pairs = _pairs(items)
    assert len(pairs) + len(skipped) == len(examples) == 100 and len(items) == 2 * len(pairs)
    # file order: every item as built, then every swap (so the first N items are unchanged)
    assert [it.order for it in items] == ["distractor_first"] * len(pairs) + ["evidence_first"] * len(pairs)
    for base, pair in pairs.items():
        ex = examples[base]
        df, ef = pair["distractor_first"], pair["evidence_first"]
        assert ef.id == base + "-swap" and df.id == base
        assert df.prompt == ex["input_text"] + " Answer:"
        assert ef.prompt == (ex["sciq_support_segment"] + " <s> " + ex["narrative_segment"] + " <s> Question: "
                             + ex["question"] + " Answer:")
        for it in (df, ef):
            assert it.prompt[slice(*it.segments["evidence"])] == ex["sciq_support_segment"]
            assert it.prompt[slice(*it.segments["distractor"])] == ex["narrative_segment"]
            assert _after(it) == " <s> Question: " + ex["question"] + " Answer:"
            assert it.answer == ex["answer"] and it.kind == "authors"
    only, _ = load_items(AUTHORS, orders=("distractor_first",))
    assert [it.id for it in only] == [it.id for it in items[:len(pairs)]]


def _all_sets():
    sets = [DATA / "dsa_qa.jsonl", DATA / "plain.jsonl"]
    return sets + ([AUTHORS] if AUTHORS.exists() else [])


@pytest.mark.parametrize("path", _all_sets(), ids=lambda p: p.name)
def test_dev_and_test_halves_are_disjoint_cover_everything_and_keep_swaps_together(path):
    items, _ = load_items(path)
    dev, _ = load_items(path, split="dev")
    test, _ = load_items(path, split="test")
    ids = [it.id for it in items]
    assert not {it.id for it in dev} & {it.id for it in test}
    assert sorted(it.id for it in dev + test) == sorted(ids) and dev and test
    assert all(it.split == "dev" for it in dev) and all(it.split == "test" for it in test)
    for it in items:  # the even/odd rule on the base item's number
        number = int(re.search(r"(\d+)$", it.base_id).group(1))
        assert it.split == ("dev" if number % 2 == 0 else "test")
    for pair in _pairs(items).values():
        assert len({it.split for it in pair.values()}) == 1


def test_split_examples_and_the_index_fallback(tmp_path):
    items, _ = load_items(DATA / "dsa_qa.jsonl")
    by_id = {it.id: it for it in items}
    assert by_id["dsa-004"].split == by_id["dsa-004-swap"].split == "dev"
    assert by_id["dsa-007"].split == by_id["dsa-007-swap"].split == "test"
    assert by_id["dsa-004-swap"].base_id == "dsa-004" and by_id["dsa-010"].split == "dev"
    if AUTHORS.exists():
        authors = {it.id: it for it in load_items(AUTHORS)[0]}
        assert authors["heta_qa_00017"].split == authors["heta_qa_00017-swap"].split == "test"
        assert authors["heta_qa_00010"].split == authors["heta_qa_00010-swap"].split == "dev"
    # ids without a number at the end: the base item's position among the file's base items
    p = tmp_path / "d.jsonl"
    segs = {"distractor": [0, 1], "evidence": [2, 3]}
    swapped = {"distractor": [2, 3], "evidence": [0, 1]}
    rows = [{"id": "alpha", "prompt": "a b c", "answer": "x", "segments": segs},
            {"id": "beta", "prompt": "a b c", "answer": "x", "segments": segs},
            {"id": "alpha-swap", "base_id": "alpha", "prompt": "b a c", "answer": "x", "segments": swapped},
            {"id": "gamma", "prompt": "q", "answer": "x"}]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = {it.id: it for it in load_items(p)[0]}
    assert [got[k].split for k in ("alpha", "beta", "alpha-swap", "gamma")] == ["dev", "test", "dev", "dev"]
    assert [got[k].order for k in ("alpha", "beta", "alpha-swap", "gamma")] == \
        ["distractor_first", "distractor_first", "evidence_first", ""]
    assert EvalItem(id="x", prompt="p", answer="a").split == ""  # no number, no position: no half


def test_order_selection_and_validation(tmp_path):
    df, _ = load_items(DATA / "dsa_qa.jsonl", orders=("distractor_first",))
    ef, _ = load_items(DATA / "dsa_qa.jsonl", orders="evidence_first", split="test")
    assert len(df) == 105 and {it.order for it in df} == {"distractor_first"}
    assert {it.order for it in ef} == {"evidence_first"} and {it.split for it in ef} == {"test"}
    assert len(ef) == 52  # dsa-001, dsa-003, ..., dsa-103
    plain, _ = load_items(DATA / "plain.jsonl", orders=("evidence_first",))
    assert len(plain) == 55  # items without passages have no order and are always kept
    for bad in ({"orders": ("sideways",)}, {"orders": ()}, {"split": "train"}):
        with pytest.raises(InputError):
            load_items(DATA / "plain.jsonl", **bad)
    p = tmp_path / "d.jsonl"  # an "order" that contradicts the spans is a bad line, not trusted
    p.write_text(json.dumps({"id": "a", "prompt": "a b c", "answer": "x", "order": "evidence_first",
                             "segments": {"distractor": [0, 1], "evidence": [2, 3]}}) + "\n")
    items, skipped = load_items(p)
    assert not items and skipped[0].startswith("line 1: ValueError")


def test_first_base_items_keeps_both_orders_of_the_first_n():
    items, _ = load_items(DATA / "dsa_qa.jsonl")
    first = first_base_items(items, 3)
    assert sorted(it.id for it in first) == sorted(["dsa-000", "dsa-001", "dsa-002", "dsa-000-swap",
                                                     "dsa-001-swap", "dsa-002-swap"])
    assert first_base_items(items, None) == items and len(first_base_items(items, 500)) == len(items)


def test_eval_command_passes_orders_split_and_limit(tmp_path, monkeypatch):
    import heta_lite.faithfulness.evaluate as ev
    import heta_lite.models as models
    from heta_lite.cli import main

    seen = {}

    def fake_evaluate(lm, items, methods, settings, out_dir, draws=5, seed=0, split=None, metrics="all", cache=None):
        seen.update(ids=[it.id for it in items], split=split)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "summary.md").write_text("table\n")
        return {"items": len(items)}

    monkeypatch.setattr(ev, "evaluate", fake_evaluate)
    monkeypatch.setattr(models, "load_model", lambda *a, **k: None)
    base = ["eval", "--dataset", str(DATA / "dsa_qa.jsonl"), "--methods", "attention", "--out", str(tmp_path / "o")]
    assert main(base + ["--split", "test", "--limit", "2"]) == 0
    assert seen == {"ids": ["dsa-001", "dsa-003", "dsa-001-swap", "dsa-003-swap"], "split": "test"}
    assert main(base + ["--orders", "evidence_first", "--limit", "1"]) == 0
    assert seen == {"ids": ["dsa-000-swap"], "split": None}
    p = tmp_path / "one.jsonl"
    p.write_text(json.dumps({"id": "q-2", "prompt": "a", "answer": "b"}) + "\n")
    assert main(["eval", "--dataset", str(p), "--methods", "attention", "--out", str(tmp_path / "o2"),
                 "--split", "test"]) == 2  # nothing in that half: an input error, no model loaded
