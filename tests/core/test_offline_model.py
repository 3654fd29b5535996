"""The real offline model end to end: load smollm2-135m, explain, validate the report."""
import json
import subprocess
import sys

import numpy as np
import pytest

from heta_lite import HetaSettings, TargetSpec
from heta_lite.engine import explain
from heta_lite.errors import InputError
from heta_lite.render import render_heatmap
from heta_lite.report import build_report, validate_report

pytestmark = pytest.mark.slow
PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def first_generated(smollm):
    return explain(smollm, PROMPT, TargetSpec(), HetaSettings.preset("fast"))


def test_loads_as_a_plain_folder(smollm):
    assert smollm.arch.name == "llama"
    assert (smollm.dims.num_heads, smollm.dims.num_kv_heads) == (9, 3)
    assert smollm.source.endswith("smollm2-135m")  # the converted safetensors folder, not the GGUF


def test_first_generated_token_report_is_valid(first_generated):
    exp = first_generated
    report = build_report(exp)
    validate_report(report)
    json.loads(json.dumps(report))  # strictly JSON
    toks = report["tokens"]
    assert report["target"]["mode"] == "generated" and report["target"]["generated_index"] == 0
    # the context is exactly the templated prompt: the target is the model's greedy choice
    assert report["target"]["rank"] == 1
    assert exp.context.chat  # instruct model: chat template on by default
    for t in toks:
        for comp in t["components"].values():
            assert np.isfinite(comp["raw"]) and comp["raw"] >= 0
        if t["special"]:
            assert t["score"] == 0 and t["rank"] is None and t["percentile"] is None
    assert sum(t["normalised"] for t in toks) == pytest.approx(1.0)
    for name in ("M", "S", "I"):
        assert sum(t["components"][name]["normalised"] for t in toks) == pytest.approx(1.0)
    # the user's words are scored, the template markers are not
    scored_text = "".join(t["text"] for t in toks if not t["special"])
    assert scored_text == PROMPT
    assert any(t["special"] and t["text"] == "<|im_start|>" for t in toks)


def test_teacher_forced_target_matches_greedy(smollm, first_generated):
    # position 6: positions index the framed sequence (<|endoftext|> at 0, then The capital of France is)
    exp = explain(smollm, "The capital of France is Paris", TargetSpec(position=6), HetaSettings.preset("fast"))
    assert exp.context.target_token.display == "␣Paris"
    assert exp.context.input_ids == exp.context.ids[:6]
    assert exp.target.prob > 0.3


def test_png_is_rendered(first_generated, tmp_path):
    data = render_heatmap(build_report(first_generated), tmp_path / "h.png")
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "h.png").stat().st_size > 5000


def test_same_seed_same_output(smollm):
    a = explain(smollm, "One, two, three,", TargetSpec(position=4, chat=False), HetaSettings.preset("fast"))
    b = explain(smollm, "One, two, three,", TargetSpec(position=4, chat=False), HetaSettings.preset("fast"))
    c = explain(smollm, "One, two, three,", TargetSpec(position=4, chat=False), HetaSettings.preset("fast", seed=1))
    assert np.array_equal(a.scores, b.scores)
    assert not np.array_equal(a.result.components["S"].raw, c.result.components["S"].raw)


@pytest.mark.parametrize("prompt,target,settings,match", [
    ("", TargetSpec(), None, "empty"),
    ("   \n\t ", TargetSpec(), None, "empty"),
    ("Hello world", TargetSpec(position=40), None, "outside"),
    ("Hello world", TargetSpec(position=0), None, "outside"),
    ("word " * 600, TargetSpec(position=3), HetaSettings(long_input="refuse"), "limit is 512"),
    ("word " * 40, TargetSpec(position=3), HetaSettings(max_tokens=16, long_input="refuse"), "limit is 16"),
    ("Hi", TargetSpec(generated=50, max_new_tokens=60), HetaSettings(max_tokens=40), "limit is 40"),
])
def test_bad_inputs_through_the_api(smollm, prompt, target, settings, match):
    with pytest.raises(InputError, match=match):
        explain(smollm, prompt, target, settings)


def test_zero_scored_tokens_is_refused(smollm):
    from heta_lite.engine import explain_context
    from heta_lite.targets import build_context

    ctx = build_context(smollm.model, smollm.tokenizer, "Hi", TargetSpec(generated=0, max_new_tokens=1))
    first_user = next(t.index for t in ctx.tokens if t.origin == "prompt")  # its context is all template
    with pytest.raises(InputError, match="no scorable tokens"):
        explain_context(smollm, ctx.with_target(first_user), HetaSettings.preset("fast"))


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "heta_lite.cli", *args], capture_output=True, text=True, timeout=600)


def test_cli_end_to_end(tmp_path):
    out = tmp_path / "out.json"
    png = tmp_path / "out.png"
    r = _cli("explain", "--prompt", PROMPT, "--quality", "fast", "--json", str(out), "--png", str(png))
    assert r.returncode == 0, r.stderr
    assert "rank" in r.stdout and "␣France" in r.stdout
    validate_report(json.loads(out.read_text()))
    assert png.read_bytes()[:4] == b"\x89PNG"
    r = _cli("explain", "--prompt", PROMPT, "--quality", "fast", "--target-pos", "3", "--json", "-")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["target"]["position"] == 3


@pytest.mark.parametrize("args,match", [
    (["--prompt", "  "], "empty"),
    (["--prompt", "Hello world", "--target-pos", "99"], "outside"),
    (["--prompt-file", "/nonexistent/prompt.txt"], "does not exist"),
    (["--prompt", "Hi", "--method", "nope"], "Unknown method"),
    (["--prompt", "Hi", "--model", "/nonexistent/model/folder"], "not in the local Hugging Face cache|Could not load"),
])
def test_cli_bad_input_is_one_line(args, match):
    r = _cli("explain", *args)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("heta-lite: error:")]
    assert len(lines) == 1 and __import__("re").search(match, lines[0]), r.stderr


def test_cli_all_generated_association_matrix_and_heads(tmp_path):
    out = tmp_path / "a.json"
    r = _cli("explain", "--prompt", "Name a fruit:", "--quality", "fast", "--all-generated", "--max-new-tokens", "3",
             "--heads", "--json", str(out), "--png", str(tmp_path / "a.png"), "--cache-dir", "off")
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    validate_report(report)
    assoc = report["association"]
    assert len(assoc["rows"]) == len(report["generated"]["ids"]) == len(assoc["matrix"])
    for row, pos in zip(assoc["matrix"], assoc["row_positions"]):
        vals = [v for v in row if v is not None]
        assert len(vals) == pos and sum(vals) == pytest.approx(1.0)  # exactly the context before that token
    assert (tmp_path / "a.association.png").read_bytes()[:4] == b"\x89PNG"
    heads = report["head_importance"]  # SmolLM2-135M: 30 layers of 9 heads
    assert (heads["layers"], heads["heads"]) == (30, 9) and len(heads["drop"]) == 30
    assert heads["logprob"] == pytest.approx(report["target"]["logprob"], abs=1e-4)
