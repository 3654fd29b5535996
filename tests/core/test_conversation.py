"""Conversations and correct-and-compare (issue #17 item 1).

The rendered text is checked against the tokenizer's own chat template (the independent
reference), the generation against transformers' `generate`, and every number of the comparison
against a direct computation from the two explanations."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from heta_lite import HetaSettings, TargetSpec
from heta_lite.cli import main
from heta_lite.conversation import Conversation, Turn
from heta_lite.engine import explain
from heta_lite.errors import InputError
from heta_lite.report import Report, build_report, validate_report
from heta_lite.targets import encode_prompt

FAST = HetaSettings.preset("fast")
TURNS = [{"role": "user", "content": "Name a colour of the sky."},
         {"role": "assistant", "content": "Green."},
         {"role": "user", "content": "No, that is wrong. Try again."}]


@pytest.fixture(scope="module")
def tiny(tiny_folder):
    from heta_lite.models import load_model

    return load_model(tiny_folder, device="cpu")


@pytest.mark.parametrize("turns, message", [
    ([], "no turns"),
    ([{"role": "assistant", "content": "hi"}], "must be 'user'"),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "end with a user turn"),
    ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "alternate"),
    ([{"role": "user", "content": "  "}], "empty"),
    ([{"role": "user", "content": "a", "extra": 1}], "exactly 'role' and 'content'"),
    (["just text"], "exactly 'role' and 'content'"),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}] * 8 + [{"role": "user", "content": "c"}],
     "limit is 16"),
])
def test_bad_conversations_are_refused_with_a_reason(turns, message):
    with pytest.raises(InputError, match=message):
        Conversation.of(turns)


def test_chat_rendering_is_the_templates_own_and_spans_hold_each_turn(tiny):
    conv = Conversation.of(TURNS)
    text, spans = conv.render(tiny.tokenizer, chat=True)
    assert text == tiny.tokenizer.apply_chat_template(TURNS, tokenize=False, add_generation_prompt=True)
    assert [text[a:b] for a, b in spans] == [t["content"] for t in TURNS]


def test_plain_turn_format_without_a_template(tiny):
    text, spans = Conversation.of(TURNS).render(tiny.tokenizer, chat=False)
    assert text == ("User: Name a colour of the sky.\nAssistant: Green.\nUser: No, that is wrong. Try again.\n"
                    "Assistant:")
    assert [text[a:b] for a, b in spans] == [t["content"] for t in TURNS]


@pytest.mark.parametrize("chat", [True, False])
def test_only_the_turns_text_is_scored(tiny, chat):
    conv = Conversation.of(TURNS)
    enc = encode_prompt(tiny.tokenizer, conv, chat)
    _, spans = conv.render(tiny.tokenizer, chat)
    scored_text = "".join(enc.text[s:e] for (s, e), sp in zip(enc.offsets, enc.special) if not sp)
    assert scored_text.replace(" ", "") == "".join(t["content"] for t in TURNS).replace(" ", "")
    for (s, e), sp in zip(enc.offsets, enc.special):
        inside = e > s and any(s < b and e > a for a, b in spans)  # a token that overlaps a turn's text
        assert sp != inside, (enc.text[s:e], sp)
    assert len(enc.frame) >= 1 and all(o == "frame" for o in enc.origin[: len(enc.frame)])


def test_generation_continues_the_framed_conversation(tiny):
    conv = Conversation.of(TURNS)
    exp = explain(tiny, conv, TargetSpec(generated=1, max_new_tokens=4), FAST, method="saliency")
    ctx = exp.context
    prompt_ids = tiny.tokenizer(tiny.tokenizer.apply_chat_template(TURNS, tokenize=False, add_generation_prompt=True),
                                add_special_tokens=False)["input_ids"]
    assert ctx.ids[: ctx.prompt_len] == prompt_ids and ctx.conversation == conv
    ref = tiny.model.generate(torch.tensor([prompt_ids]), max_new_tokens=len(ctx.generated_ids), do_sample=False,
                              attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long))[0, len(prompt_ids):]
    assert ctx.generated_ids == ref.tolist()[: len(ctx.generated_ids)]
    report = Report.from_explanation(exp).validate().to_dict()
    assert report["conversation"] == TURNS and report["prompt"] == TURNS[-1]["content"]


def test_a_conversation_is_not_explained_at_a_position(tiny):
    with pytest.raises(InputError, match="generated token"):
        explain(tiny, Conversation.of(TURNS), TargetSpec(position=3), FAST, method="saliency")


def test_a_conversation_and_its_last_turn_do_not_share_a_cache_entry(tiny, tmp_path):
    from heta_lite.cache import HetaCache

    cache = HetaCache(tmp_path / "c")
    single = explain(tiny, TURNS[-1]["content"], TargetSpec(max_new_tokens=2), FAST, method="saliency", cache=cache)
    conv = explain(tiny, Conversation.of(TURNS), TargetSpec(max_new_tokens=2), FAST, method="saliency", cache=cache)
    assert conv.context.ids != single.context.ids and "cache_hit" not in conv.timings


def test_correct_and_compare_numbers_match_a_direct_computation(smollm):
    from heta_lite.correction import correct_and_compare

    q, c = "What is the capital of Australia?", "No, that is not right. Answer with one city name."
    cmp = correct_and_compare(smollm, q, c, FAST, method="saliency", max_new_tokens=10)
    before, after = cmp.before.explanation, cmp.after.explanation
    # the conversation is question, the model's own first answer, the correction
    eos = {smollm.tokenizer.eos_token_id, smollm.tokenizer.convert_tokens_to_ids("<|im_end|>")}
    answer = smollm.tokenizer.decode([i for i in before.context.generated_ids if i not in eos],
                                     skip_special_tokens=True).strip()
    assert cmp.conversation.turns == (Turn("user", q), Turn("assistant", answer), Turn("user", c))
    assert after.context.conversation == cmp.conversation and before.context.generated_index == 0
    # p(old first token) where the corrected answer starts: float64 softmax of a separate forward
    with torch.no_grad():
        logits = smollm.model(torch.tensor([after.context.input_ids])).logits[0, -1].double()
    assert cmp.old_token_prob_after == pytest.approx(float(torch.softmax(logits, -1)[before.context.target_id]),
                                                      rel=1e-4)  # float32 forwards of two shapes
    # shifts: shares of the question's attribution on each side, so each side sums to 1
    assert cmp.shifts and sum(s.before for s in cmp.shifts) == pytest.approx(1.0)
    assert sum(s.after for s in cmp.shifts) == pytest.approx(1.0)
    q_tokens = [t for t in before.context.context_tokens if not t.special]
    assert {s.text for s in cmp.shifts} <= {t.display for t in q_tokens}
    # the turn split of the "after" attribution: three turns, all scored tokens fall in one of them
    assert len(cmp.turn_shares) == 3 and sum(cmp.turn_shares) == pytest.approx(float(np.sum(after.normalised)))
    # top-5 and logit lens on both sides, and a summary that names what changed
    for side in (cmp.before, cmp.after):
        assert len(side.explanation.target.alternatives) == 5
        assert len(side.lens) == smollm.model.config.num_hidden_layers
        assert side.lens[-1]["p_target"] == pytest.approx(side.explanation.target.prob, rel=1e-3)
    text = cmp.summary()
    assert ("changed" in text) == cmp.answer_changed and "after the correction" in text
    json.dumps(cmp.to_dict())


def test_cli_correct_writes_both_reports_and_the_comparison(smollm, tmp_path, capsys):
    out = tmp_path / "cmp.json"
    rc = main(["correct", "--prompt", "2 + 2 =", "--correction", "Check that again.", "--method", "saliency",
               "--quality", "fast", "--max-new-tokens", "6", "--model", "smollm2-135m", "--device", "cpu",
               "--cache-dir", "off", "--json", str(out)])
    assert rc == 0
    doc = json.loads(out.read_text())
    Report.from_dict(doc["before"]), Report.from_dict(doc["after"])
    assert doc["after"]["conversation"][0]["content"] == "2 + 2 =" and doc["before"]["conversation"] is None
    assert "summary:" in capsys.readouterr().out


def test_cli_explain_conversation_file_and_its_errors(smollm, tmp_path, capsys):
    path = tmp_path / "conv.json"
    path.write_text(json.dumps(TURNS))
    out = tmp_path / "r.json"
    assert main(["explain", "--conversation", str(path), "--method", "saliency", "--quality", "fast",
                 "--max-new-tokens", "2", "--model", "smollm2-135m", "--device", "cpu", "--cache-dir", "off",
                 "--json", str(out)]) == 0
    assert json.loads(out.read_text())["conversation"] == TURNS
    capsys.readouterr()
    for bad, message in [("[{\"role\": \"user\"}]", "exactly 'role' and 'content'"), ("{", "not valid"),
                         ("{\"role\": \"user\"}", "list of turns")]:
        path.write_text(bad)
        assert main(["explain", "--conversation", str(path), "--model", "smollm2-135m", "--device", "cpu"]) == 2
        assert message in capsys.readouterr().err
    assert main(["explain", "--conversation", str(tmp_path / "missing.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_conversation_longer_than_the_budget_names_the_turn_its_window_starts_in(tiny):
    """Windowing cuts a long conversation inside an earlier turn: the report says which one, and
    the window's first scored token is indeed text of that turn."""
    long_turn = " ".join(f"word{i}" for i in range(150))
    turns = [{"role": "user", "content": long_turn}, {"role": "assistant", "content": "Short answer here."},
             {"role": "user", "content": "And again, " + long_turn}]
    conv = Conversation.of(turns)
    exp = explain(tiny, conv, TargetSpec(generated=0, max_new_tokens=1),
                  HetaSettings.preset("fast", max_tokens=96, check=False), method="saliency")
    report = build_report(exp)
    validate_report(report)
    window = report["long_input"]["window"]
    text, spans = conv.render(tiny.tokenizer, chat=True)
    first = next(t for t in exp.context.tokens if t.origin == "prompt")
    a, b = spans[window["turn"]]
    assert a <= first.start < b  # the window's first scored token lies in that turn's text
    assert window["turn"] == 2  # 96 tokens cannot reach back past the 150-word last turn
    assert "from turn 3 of the conversation on" in report["long_input"]["statement"]

    single = build_report(explain(tiny, long_turn, TargetSpec(generated=0, max_new_tokens=1),
                                  HetaSettings.preset("fast", max_tokens=96, check=False), method="saliency"))
    assert single["long_input"]["window"]["turn"] is None and "turn" not in single["long_input"]["statement"]


def test_turn_at_reads_the_rendered_spans(tiny):
    conv = Conversation.of(TURNS)
    text, spans = conv.render(tiny.tokenizer, chat=True)
    assert [conv.turn_at(tiny.tokenizer, True, a) for a, _ in spans] == [0, 1, 2]
    assert conv.turn_at(tiny.tokenizer, True, spans[0][1]) == 1  # template between turns 0 and 1: the next turn
    assert conv.turn_at(tiny.tokenizer, True, 0) == 0 and conv.turn_at(tiny.tokenizer, True, len(text)) == 2
