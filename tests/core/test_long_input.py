"""Long inputs beyond the context budget (issue #17 item 5; heta_lite/long_input.py).

On a tiny random model with max_tokens=32: a 400-token prompt is explained within its last window,
the report names exactly those tokens, every earlier chunk's summary effect matches an independent
float64 computation, generation saw the windowed context, 'refuse' refuses, cancellation stops
between chunk forwards. On the offline SmolLM2: a 10,000-word document gives a result (or a clear
refusal), never an OOM, with bounded memory."""
from __future__ import annotations

import json
import random
import subprocess
import sys

import psutil
import pytest
import torch

from heta_lite import HetaSettings, TargetSpec
from heta_lite.control import JobControl
from heta_lite.engine import explain, explain_context, make_context
from heta_lite.errors import InputError, JobCancelled, ResourceLimitError
from heta_lite.long_input import check_memory, chunk_seconds, estimate
from heta_lite.methods.heta.cost import Calibration, estimate_seconds_long
from heta_lite.models import wrap_model
from heta_lite.report import build_report, validate_report
from heta_lite.targets import encode_prompt
from tests.core.test_frame import FAMILIES, WORDS, family_tokenizer
from tests.reference.tiny import TINY_BUILDERS

MAX = 32


@pytest.fixture(scope="module")
def tiny():
    specials, bos, eos, adds_bos, *_ = FAMILIES["qwen2"]
    tok = family_tokenizer(specials, bos, eos, adds_bos)
    model = TINY_BUILDERS["qwen2"](torch.float32)
    model.config.pad_token_id = 1
    return wrap_model(model, tok)


def _prompt(n: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n))


PROMPT = _prompt(400)


def _settings(**kw):
    return HetaSettings.preset("fast", max_tokens=MAX, **kw)


def _full(lm, prompt: str = PROMPT):
    return encode_prompt(lm.tokenizer, prompt, False, "auto", ("<|endoftext|>",))


@torch.no_grad()
def _logprob(lm, ids: list[int], y: int) -> float:
    """An independent log p(y | ids): a plain full forward (all positions' logits, the same sdpa
    kernel as the engine: eager attention differs by ~1e-6 in float32), float64 log-softmax."""
    from heta_lite.models.loader import attention_implementation

    with attention_implementation(lm.model, "sdpa"):
        logits = lm.model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1]
    return float(torch.log_softmax(logits.double(), dim=-1)[y])


@pytest.fixture(scope="module")
def long_exp(tiny):
    return explain(tiny, PROMPT, TargetSpec(generated=0, max_new_tokens=4), _settings())


def test_scored_tokens_are_exactly_the_last_window(tiny, long_exp):
    full = _full(tiny)
    assert len(full.ids) == 401  # the frame + 400 words
    ctx = long_exp.context
    li = build_report(long_exp)["long_input"]
    W = li["window_budget"]
    assert W == MAX - 1 - 4  # max_tokens - frame - room for the 4 generated tokens
    first, last = li["window"]["first_index"], li["window"]["last_index"]
    assert (first, last) == (401 - W, 400) and li["window"]["n_tokens"] == W
    # the model saw the frame + exactly the last W tokens, cut at a token boundary
    assert ctx.input_ids == full.ids[:1] + full.ids[first:last + 1]
    report = build_report(long_exp)
    validate_report(report)
    scored = [t for t in report["tokens"] if not t["special"]]
    assert [t["id"] for t in scored] == full.ids[first:last + 1]
    # char offsets index the full text, so the page can render the window where it is
    assert [(t["start"], t["end"]) for t in scored] == [tuple(o) for o in full.offsets[first:last + 1]]
    assert report["text"].startswith(PROMPT) and report["prompt"] == PROMPT
    assert (li["window"]["start_char"], li["window"]["end_char"]) == (full.offsets[first][0], full.offsets[last][1])
    assert report["summary"]["num_scored"] == W
    assert f"tokens {first}-{last}" in li["statement"] and "summary effect" in li["statement"]


def test_chunks_cover_the_earlier_text_and_their_effects_match_an_independent_computation(tiny, long_exp):
    full = _full(tiny)
    ctx = long_exp.context
    li = build_report(long_exp)["long_input"]
    chunks = li["chunks"]
    # from the end backwards, each at most W tokens, together exactly tokens 1..first-1
    assert all(1 <= c["n_tokens"] <= li["window_budget"] for c in chunks)
    assert all(c["n_tokens"] == li["window_budget"] for c in chunks[1:])
    assert chunks[0]["first_index"] == 1 and chunks[-1]["last_index"] == li["window"]["first_index"] - 1
    assert all(a["last_index"] + 1 == b["first_index"] for a, b in zip(chunks, chunks[1:]))
    assert sum(c["n_tokens"] for c in chunks) == li["window"]["first_index"] - 1
    base = _logprob(tiny, ctx.input_ids, ctx.target_id)
    assert li["baseline_logprob"] == pytest.approx(base, abs=1e-6)
    for c in chunks:
        a, b = c["first_index"], c["last_index"]
        assert (c["start_char"], c["end_char"]) == (full.offsets[a][0], full.offsets[b][1])
        with_chunk = _logprob(tiny, ctx.input_ids[:1] + full.ids[a:b + 1] + ctx.input_ids[1:], ctx.target_id)
        assert c["effect_logprob"] == pytest.approx(with_chunk - base, abs=1e-6)


def test_generation_ran_on_the_windowed_context(tiny):
    seen: list[list[int]] = []

    def hook(_module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None:
            seen.append(ids[0].tolist())

    handle = tiny.model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        ctx = make_context(tiny, PROMPT, TargetSpec(generated=2, max_new_tokens=4), _settings())
    finally:
        handle.remove()
    full = _full(tiny)
    plan = ctx.long_input
    windowed = full.ids[:1] + full.ids[plan.window_first:]
    assert seen[0] == windowed  # the prompt pass of greedy decoding: frame + window
    assert all(len(s) <= MAX for s in seen)
    assert ctx.ids[: ctx.prompt_len] == windowed and len(ctx.generated_ids) >= 3
    assert ctx.target_pos == len(windowed) + 2 <= MAX
    # another generated token of the same window keeps the plan (the page picks targets this way)
    assert ctx.with_target(ctx.prompt_len).long_input is plan


def test_refuse_is_the_old_behaviour_with_what_to_do(tiny):
    with pytest.raises(InputError, match=r"limit is 32 tokens.*long_input=window"):
        explain(tiny, PROMPT, TargetSpec(generated=0, max_new_tokens=4), _settings(long_input="refuse"))
    with pytest.raises(InputError, match=r"limit is 32 tokens.*long_input=window"):
        explain(tiny, PROMPT, TargetSpec(position=300), _settings(long_input="refuse"))


def test_a_short_prompt_has_no_long_input(tiny):
    exp = explain(tiny, "the cat sat on the mat", TargetSpec(generated=0, max_new_tokens=2), _settings())
    report = build_report(exp)
    validate_report(report)
    assert report["long_input"] is None and exp.context.long_input is None


def test_a_generation_that_does_not_fit_is_still_refused(tiny):
    """Windowing cuts the prompt, never the generation: a short prompt with a target past the budget
    is refused as before."""
    with pytest.raises(InputError, match="limit is 32"):
        explain(tiny, "the cat", TargetSpec(generated=40, max_new_tokens=41), _settings())


def test_position_mode_windows_the_tokens_before_the_target(tiny):
    full = _full(tiny)
    exp = explain(tiny, PROMPT, TargetSpec(position=300), _settings(), method="saliency")
    ctx = exp.context
    W = MAX - 2  # the frame and the target itself
    assert ctx.target_id == full.ids[300]
    assert ctx.input_ids == full.ids[:1] + full.ids[300 - W:300]
    li = build_report(exp)["long_input"]
    assert (li["window"]["first_index"], li["window"]["last_index"]) == (300 - W, 299)
    assert sum(c["n_tokens"] for c in li["chunks"]) == 300 - W - 1
    validate_report(build_report(exp))
    # a target whose context fits needs no window: the text after it is not context
    near = make_context(tiny, PROMPT, TargetSpec(position=10), _settings())
    assert near.long_input is None and near.input_ids == full.ids[:10] and near.target_id == full.ids[10]


def test_cancellation_between_chunk_forwards(tiny, monkeypatch):
    import heta_lite.long_input as long_input

    calls = []
    real = long_input.target_logprob
    monkeypatch.setattr(long_input, "target_logprob", lambda *a: calls.append(1) or real(*a))
    ctx = make_context(tiny, PROMPT, TargetSpec(generated=0, max_new_tokens=4), _settings())
    control = JobControl()

    def progress(stage, done, total):
        if stage.startswith("long input") and done == 3:
            control.cancel()

    control.progress = progress
    with pytest.raises(JobCancelled):
        explain_context(tiny, ctx, _settings(), "saliency", control)
    # cancelled while forward 3 ran: it finishes, the next step stops the job (baseline + 3 chunks of 14)
    assert len(calls) == 4 < len(ctx.long_input.chunks) + 1


def test_the_chunk_estimate_grows_with_the_number_of_chunks(tiny):
    secs = [chunk_seconds(0.5, 32, n, 60, 30) for n in range(6)]
    assert all(a < b for a, b in zip(secs, secs[1:]))
    cal = Calibration(n=32, forward_s=0.01, hvp_s=0.02, graph_s=0.03)
    s = _settings()
    totals = []
    for words in (40, 100, 200, 400):
        ctx = make_context(tiny, _prompt(words), TargetSpec(generated=0, max_new_tokens=4), s)
        n_chunks = len(ctx.long_input.chunks)
        totals.append((n_chunks, estimate_seconds_long(cal, ctx.target_pos, sum(ctx.scored), s, ctx.long_input)))
    assert [n for n, _ in totals] == sorted(n for n, _ in totals) and totals[0][0] < totals[-1][0]
    assert all(a[1]["total"] < b[1]["total"] for a, b in zip(totals, totals[1:]))
    assert all(e["total"] > e["long_input"] > 0 for _, e in totals)
    plain = estimate_seconds_long(cal, 27, 26, s, None)
    assert "long_input" not in plain


def test_memory_estimate_and_refusal(tiny):
    ctx = make_context(tiny, PROMPT, TargetSpec(generated=0, max_new_tokens=4), _settings())
    est = estimate(tiny, ctx.long_input, ctx.target_pos)
    assert est["chunk_forwards"] == len(ctx.long_input.chunks) + 1 and est["peak_bytes"] > 0 and est["fits"]
    with pytest.raises(ResourceLimitError, match="lower max_tokens"):
        check_memory(tiny, ctx.long_input, ctx.target_pos, limit_bytes=1)


def test_beyond_the_character_cap_is_refused_with_what_to_do(tiny):
    with pytest.raises(InputError, match="split the document"):
        explain(tiny, "word " * 50_000, TargetSpec(generated=0), _settings())


def test_the_setting_is_declared_once_and_reaches_the_cli():
    from heta_lite.options import options_of

    opts = {f.name: o for f, o in options_of(HetaSettings)}
    assert opts["long_input"].choices == ("window", "refuse") and HetaSettings().long_input == "window"
    with pytest.raises(InputError, match="long_input"):
        HetaSettings(long_input="truncate")
    r = subprocess.run([sys.executable, "-m", "heta_lite.cli", "explain", "--help"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and "--long-input" in r.stdout and "{window,refuse}" in r.stdout


# ---- the offline SmolLM2 -------------------------------------------------------------------------

def _document(words: int) -> str:
    """A long plain document of real words (sentences of 8-20 words)."""
    rng = random.Random(7)
    vocab = ("the river city council report water budget year people school morning winter light north "
             "market garden station bridge history letter village doctor music paper family road summer "
             "farmers decided that their old mill would open again after a long and difficult season").split()
    out, n = [], 0
    while n < words:
        k = min(rng.randint(8, 20), words - n)
        out.append(" ".join(rng.choice(vocab) for _ in range(k)).capitalize() + ".")
        n += k
    return " ".join(out)


def test_a_ten_thousand_word_document_on_smollm2(smollm):
    doc = _document(10_000)
    assert len(doc.split()) == 10_000
    settings = HetaSettings.preset("fast", max_tokens=256, check=False)
    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    import time

    from heta_lite.profiling import PeakMemory

    t0 = time.perf_counter()
    with PeakMemory() as peak:
        exp = explain(smollm, doc, TargetSpec(generated=0, max_new_tokens=2), settings, method="saliency")
    seconds = time.perf_counter() - t0
    growth = peak.peak_rss - rss0
    report = build_report(exp)
    validate_report(report)
    li = report["long_input"]
    assert li is not None and li["total_tokens"] > 10_000
    assert exp.context.target_pos <= 256 and report["summary"]["num_context_tokens"] <= 256
    assert sum(c["n_tokens"] for c in li["chunks"]) + li["window"]["n_tokens"] + li["frame_tokens"] <= li["total_tokens"]
    assert all(c["effect_logprob"] is not None for c in li["chunks"])
    assert growth < 3 * 2**30, f"RSS grew by {growth / 2**30:.2f} GiB"
    print(f"\n10k words: {li['total_tokens']} tokens, {len(li['chunks'])} chunks, {seconds:.1f} s, "
          f"RSS growth {growth / 2**20:.0f} MiB, peak RSS {peak.peak_rss / 2**20:.0f} MiB; {li['statement']}")
    json.dumps(report)


@pytest.mark.slow  # loads the offline model in a subprocess
def test_cli_long_input_flag(tmp_path):
    prompt = _document(600)
    r = subprocess.run([sys.executable, "-m", "heta_lite.cli", "explain", "--prompt", prompt, "--method", "saliency",
                        "--max-tokens", "64", "--max-new-tokens", "2", "--long-input", "refuse", "--no-chat"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode != 0 and "long_input=window" in r.stderr + r.stdout
    out = tmp_path / "r.json"
    r = subprocess.run([sys.executable, "-m", "heta_lite.cli", "explain", "--prompt", prompt, "--method", "saliency",
                        "--max-tokens", "64", "--max-new-tokens", "2", "--long-input", "window", "--no-chat",
                        "--no-check", "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "long input:" in r.stderr and "scored: Long input" in r.stdout
    report = json.loads(out.read_text())
    validate_report(report)
    assert report["long_input"]["window"]["n_tokens"] == report["summary"]["num_scored"]


def test_the_page_view_shows_the_statement_and_one_bar_per_chunk(long_exp):
    pytest.importorskip("nicegui")
    from gui.page.long_input import long_input_html

    report = build_report(long_exp)
    html = long_input_html(report)
    assert "summary effect" in html and html.count("<tr>") == len(report["long_input"]["chunks"])
    assert "#2e7d32" in html or "#c62828" in html
    assert long_input_html({**report, "long_input": None}) == ""
