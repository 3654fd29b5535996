"""Evaluation items: our JSONL (with separators and offset segments) and bad lines."""
import json

import pytest

from heta_lite.errors import InputError
from heta_lite.faithfulness.datasets import load_items


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
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "experiments" / "data"
    dsa, skipped = load_items(root / "dsa_qa.jsonl")
    assert not skipped and len(dsa) >= 100 and len({i.id for i in dsa}) == len(dsa)
    for it in dsa:
        (ea, eb), (da, db) = it.segments["evidence"], it.segments["distractor"]
        assert db <= ea and it.answer.lower() not in it.prompt[da:db].lower()
    plain, skipped = load_items(root / "plain.jsonl")
    assert not skipped and len(plain) >= 50
    assert {"facts", "arithmetic", "code", "coreference"} <= {i.kind for i in plain}
