"""The evaluation command end to end on the offline model (tiny limit), resumable; and the CLI's
default cache, which in a test session is the session's temporary one, never the user's."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from heta_lite.faithfulness.datasets import load_items


AUTHORS = Path(__file__).resolve().parents[4] / "shared" / "data" / "heta_qa_dataset_100_unique.json"


@pytest.mark.skipif(not AUTHORS.exists(), reason="the authors' toy set lives in shared/data beside the repo")
def test_authors_format_targets_the_answer_with_offset_segments():
    items, skipped = load_items(AUTHORS, orders=("distractor_first",))  # the swaps: test_faithfulness_datasets
    assert len(items) + len(skipped) == 100 and len(items) >= 95
    it = items[0]
    assert it.text.endswith("Answer: " + it.answer)  # the answer is the target, not the final '?'
    a, b = it.segments["evidence"]
    assert it.prompt[a:b].startswith("Photosynthesis")


@pytest.mark.slow
def test_eval_command_writes_outputs_and_resumes(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"id": "a", "prompt": "The protagonist went home. Paris is the capital of France. "
                                "Question: What is the capital of France? Answer:", "answer": "Paris",
                                "segments": {"distractor": [0, 26], "evidence": [27, 58]}}) + "\nnot json\n")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "heta_lite.cli", "eval", "--dataset", str(data), "--methods", "heta,attention",
           "--out", str(out), "--draws", "2"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "skipped line 2" in r.stdout
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert {x["method"] for x in rows} == {"heta", "attention"}
    assert all(-1 <= x["dsa"] <= 1 and x["in_top5"] is not None for x in rows)
    assert all(x["target"] == " Paris" for x in rows)  # the answer token, teacher-forced
    # random baselines are per item: identical in every method's row
    assert rows[0]["aopc_random_zero"] == rows[1]["aopc_random_zero"] and rows[0]["dsa_uniform"] == rows[1]["dsa_uniform"]
    heta = next(x for x in rows if x["method"] == "heta")
    assert set(heta["components"]) == {"M", "S", "I"} and "dsa" in heta["components"]["M"]
    md = (out / "summary.md").read_text()
    assert "| random |" in md and "NOT in the model's top-5" in md
    for f in ("summary.json", "summary.md", "deletion_curves.png", "aopc.png"):
        assert (out / f).stat().st_size > 0
    r2 = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r2.returncode == 0
    assert len((out / "results.jsonl").read_text().splitlines()) == 2  # resumed: nothing recomputed
    assert "resuming: 2" in r2.stderr


@pytest.mark.slow
def test_selection_metrics_write_their_summary_and_plots(tmp_path):
    """`--metrics selection` (the pre-registered dev run) measures deletion by zeroing only; its
    summary's plots once asked for the token-deleted curves too and the run died after its last row
    (KeyError 'deletion_delete'), which also stopped the dev script before its next data set."""
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"id": "a", "prompt": "The protagonist went home. Paris is the capital of France. "
                                "Question: What is the capital of France? Answer:", "answer": "Paris",
                                "segments": {"distractor": [0, 26], "evidence": [27, 58]}}) + "\n")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "heta_lite.cli", "eval", "--dataset", str(data), "--methods",
                        "attention,saliency", "--metrics", "selection", "--out", str(out), "--draws", "2"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert rows and all("deletion_zero" in x and "deletion_delete" not in x for x in rows)
    for f in ("summary.json", "summary.md", "deletion_curves.png", "aopc.png"):
        assert (out / f).stat().st_size > 0


def test_eval_items_file_keeps_only_the_listed_items(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"id": i, "prompt": "The capital of France is", "answer": "Paris"}) + "\n"
                            for i in ("keep", "drop")))
    cmd = [sys.executable, "-m", "heta_lite.cli", "eval", "--dataset", str(data), "--methods", "attention",
           "--metrics", "selection", "--draws", "1", "--out", str(tmp_path / "out")]
    missing = subprocess.run(cmd + ["--items", str(tmp_path / "nope.items")], capture_output=True, text=True,
                             timeout=600)
    assert missing.returncode != 0 and "nope.items does not exist" in missing.stderr
    (tmp_path / "k.items").write_text("keep\n\n")
    r = subprocess.run(cmd + ["--items", str(tmp_path / "k.items")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [x["item"] for x in rows] == ["keep"]


def test_batch_command_skips_bad_lines_and_resumes(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "prompt": "The capital of France is", "target_pos": 4}\nnot json\n'
                   '{"prompt": ""}\n{"id": "b", "prompt": "Two plus two is", "target_pos": 3, "method": "attention"}\n')
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "heta_lite.cli", "batch", "--input", str(src), "--out", str(out), "--quality",
           "fast", "--cache-dir", "off"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "2 explained, 2 bad lines skipped" in r.stdout
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    good = [x for x in rows if "error" not in x]
    assert [x["batch_id"] for x in good] == ["a", "b"] and good[1]["method"] == "attention"
    assert {x["line"] for x in rows if "error" in x} == {2, 3}
    r2 = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert "0 explained, 0 bad lines skipped" in r2.stdout
    assert len(out.read_text().splitlines()) == 4


def test_cli_default_cache_is_the_sessions_temporary_one(session_home):
    """A CLI run without --cache-dir (tests/core/test_offline_model.py has some) uses HETA_LITE_CACHE:
    in a test session that is inside the session's temporary HETA_LITE_HOME, so a rerun can't be
    answered from reports cached by an earlier run, and nothing lands in the user's home. Checked in
    a subprocess, as the CLI tests run it, with the CLI's own --cache-dir handling."""
    code = ("import argparse; from heta_lite.commands.common import cache_from_args; "
            "print(cache_from_args(argparse.Namespace(cache_dir=None)).folder.resolve())")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    folder = Path(r.stdout.strip())
    assert folder == Path(os.environ["HETA_LITE_CACHE"]).resolve()
    assert folder.is_relative_to(session_home.resolve())
    assert not folder.is_relative_to(Path.home() / ".cache")


def test_the_sessions_model_folder_rule_is_the_apps(monkeypatch, tmp_path):
    """conftest repeats cache_home()'s rule to find the user's converted models; they must agree."""
    from heta_lite.models.catalogue import cache_home
    from tests.conftest import _user_models_folder

    monkeypatch.setenv("HETA_LITE_HOME", str(tmp_path))
    assert _user_models_folder() == cache_home() / "models" == tmp_path / "models"
    monkeypatch.delenv("HETA_LITE_HOME")
    assert _user_models_folder() == cache_home() / "models"
