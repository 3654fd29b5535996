"""Frame tokens (spec 'Frame token'): the right frame per family, nothing removes it, generation sees it.

Tokenizers are built in-process to behave like each family's (which add a BOS, which have a
document separator, which chat-turn tokens exist), so the rule is checked without downloads."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from heta_lite import HetaSettings, TargetSpec
from heta_lite.engine import explain_context, make_context
from heta_lite.faithfulness import metrics
from heta_lite.faithfulness.check import faithfulness_check
from heta_lite.methods import method_names
from heta_lite.models import wrap_model
from heta_lite.models.arch import ARCHITECTURES
from heta_lite.report import build_report, validate_report
from heta_lite.targets import build_context
from tests.reference.tiny import TINY_BUILDERS

WORDS = ["hello", "world", "the", "cat", "sat", "on", "mat", "and", "then", "slept"]
TEXT = "the cat sat on the mat and then slept"


def family_tokenizer(specials: list[str], bos: str | None, eos: str | None, adds_bos: bool):
    """A WordLevel tokenizer with the family's special tokens; `adds_bos` = the tokenizer puts its BOS first."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["<unk>"] + specials + WORDS)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tk.add_special_tokens(specials)
    if adds_bos:
        tk.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, vocab[bos])])
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token=bos, eos_token=eos, unk_token="<unk>")


# family -> (specials, bos, eos, adds BOS?, expected frame source, expected frame token)
FAMILIES = {
    "llama": (["<|endoftext|>", "<|im_start|>", "<|im_end|>"], None, "<|im_end|>", False,
              "document_separator", "<|endoftext|>"),  # SmolLM2-Instruct: eos is the turn end, not the separator
    "qwen2": (["<|endoftext|>", "<|im_start|>", "<|im_end|>"], None, "<|im_end|>", False,
              "document_separator", "<|endoftext|>"),
    "qwen3": (["<|endoftext|>", "<|im_start|>", "<|im_end|>"], None, "<|im_end|>", False,
              "document_separator", "<|endoftext|>"),
    "mistral": (["<s>", "</s>"], "<s>", "</s>", True, "bos", "<s>"),
    "gemma": (["<bos>", "<eos>", "<start_of_turn>"], "<bos>", "<eos>", True, "bos", "<bos>"),
    "gemma2": (["<bos>", "<eos>", "<start_of_turn>"], "<bos>", "<eos>", True, "bos", "<bos>"),
    "phi3": (["<s>", "<|endoftext|>", "<|user|>", "<|end|>"], "<s>", "<|endoftext|>", False,
             "document_separator", "<|endoftext|>"),
    "gpt2": (["<|endoftext|>"], "<|endoftext|>", "<|endoftext|>", False, "document_separator", "<|endoftext|>"),
}
LLAMA3 = (["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"], "<|begin_of_text|>", "<|eot_id|>", True, "bos",
          "<|begin_of_text|>")


def test_every_listed_family_has_a_frame_case():
    assert set(FAMILIES) == set(ARCHITECTURES)


def _model(family):
    model = TINY_BUILDERS[family](torch.float32)
    return model


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_gets_its_frame(family):
    specials, bos, eos, adds_bos, source, token = FAMILIES[family]
    tok = family_tokenizer(specials, bos, eos, adds_bos)
    model = _model(family)
    ctx = build_context(model, tok, TEXT, TargetSpec(position=4))
    fid = tok.convert_tokens_to_ids(token)
    assert ctx.frame.source == source
    assert ctx.frame.ids == (fid,)
    assert ctx.ids[0] == fid and ctx.ids[1:].count(fid) == 0  # exactly one frame token, at position 0
    assert ctx.tokens[0].origin == "frame" and ctx.tokens[0].special and not ctx.scored[0]
    assert ctx.frame.added == (not adds_bos)  # a tokenizer's own BOS is used as it is, never doubled
    assert tok.convert_ids_to_tokens(ctx.ids[0]) not in ("<|im_start|>", "<|user|>", "<start_of_turn>")
    # the text after the frame is exactly the plain tokenization of the text
    plain = tok(TEXT, add_special_tokens=False)["input_ids"]
    assert ctx.ids[1:] == plain
    assert [t.text for t in ctx.tokens[1:]] == TEXT.split()


def test_a_tokenizer_that_adds_a_bos_on_the_llama_architecture_uses_it():
    """Llama-3 style: the BOS the tokenizer adds is the frame; the separator table is not reached."""
    tok = family_tokenizer(*LLAMA3[:4])
    ctx = build_context(_model("llama"), tok, TEXT, TargetSpec(position=3))
    assert ctx.frame.source == "bos" and ctx.frame.ids == (tok.convert_tokens_to_ids("<|begin_of_text|>"),)
    assert not ctx.frame.added


def test_frame_none_is_the_plain_tokenization():
    specials, bos, eos, adds_bos, *_ = FAMILIES["qwen2"]
    tok = family_tokenizer(specials, bos, eos, adds_bos)
    ctx = build_context(_model("qwen2"), tok, TEXT, TargetSpec(position=3), frame="none")
    assert ctx.frame.source == "none" and ctx.frame_len == 0
    assert ctx.ids == tok(TEXT)["input_ids"]
    assert ctx.scored[0]  # the authors' setting: the first word is scored


def test_fallback_when_no_separator_is_known():
    tok = family_tokenizer(["<pad>", "</s>"], None, "</s>", False)
    ctx = build_context(_model("qwen2"), tok, TEXT, TargetSpec(position=3))
    assert ctx.frame.source == "fallback" and ctx.frame.ids == (tok.convert_tokens_to_ids("</s>"),)
    assert "eos_token" in ctx.frame.why


def _framed(family="qwen2"):
    specials, bos, eos, adds_bos, *_ = FAMILIES[family]
    tok = family_tokenizer(specials, bos, eos, adds_bos)
    model = _model(family)
    model.config.pad_token_id = 1
    lm = wrap_model(model, tok)
    ctx = make_context(lm, TEXT, TargetSpec(position=9), HetaSettings())
    return lm, ctx


class FrameWatch:
    """Records every forward of the model whose sequence starts at position 0 and checks that
    position 0 holds the frame token's embedding, untouched."""

    def __init__(self, lm, frame_id: int):
        self.e = lm.model.get_input_embeddings().weight[frame_id].detach().clone()
        self.frame_id = frame_id
        self.calls = 0
        self.bad: list[str] = []
        self.handle = lm.model.register_forward_pre_hook(self.hook, with_kwargs=True)

    def hook(self, _module, args, kwargs):
        pos = kwargs.get("position_ids")
        if pos is not None and int(pos.reshape(-1)[0]) != 0:
            return  # a suffix pass over a cached prefix: position 0 is in the cache, not the input
        self.calls += 1
        emb = kwargs.get("inputs_embeds")
        if emb is not None:
            ok = torch.equal(emb[:, 0].detach(), self.e.to(emb.dtype).expand_as(emb[:, 0]))
            if not ok:
                self.bad.append(f"call {self.calls}: position 0 is not the frame embedding")
        else:
            ids = kwargs.get("input_ids", args[0] if args else None)
            if ids is not None and ids.shape[-1] > 1 and not bool((ids[:, 0] == self.frame_id).all()):
                self.bad.append(f"call {self.calls}: input ids do not start with the frame")

    def close(self):
        self.handle.remove()


@pytest.mark.parametrize("method", method_names())
def test_no_method_touches_the_frame(method):
    lm, ctx = _framed()
    s = HetaSettings.preset("balanced", num_probes=2, check=True, extra={"ig_steps": 4})
    watch = FrameWatch(lm, ctx.ids[0])
    try:
        exp = explain_context(lm, ctx, s, method)
    finally:
        watch.close()
    assert watch.calls > 0 and not watch.bad, watch.bad
    assert exp.scores[0] == 0 and exp.rank[0] == 0 and np.isnan(exp.percentile[0])
    report = build_report(exp)
    validate_report(report)
    assert report["tokens"][0]["origin"] == "frame" and report["frame"]["ids"] == [ctx.ids[0]]


def test_no_metric_touches_the_frame():
    lm, ctx = _framed()
    X = lm.model.get_input_embeddings()(torch.tensor(ctx.input_ids)).detach()
    scored = np.asarray(ctx.scored)
    assert not scored[0]
    scores = np.where(scored, np.linspace(1.0, 2.0, len(scored)), 0.0)
    y = ctx.target_id
    watch = FrameWatch(lm, ctx.ids[0])
    try:
        for mode in ("zero", "delete"):
            metrics.deletion(lm, X, y, scores, scored, mode=mode)
        metrics.sufficiency(lm, X, y, scores, scored)
        metrics.sufficiency_random(lm, X, y, scored)
        metrics.soft_metrics(lm, X, scores, scored)
        metrics.soft_metrics(lm, X, np.where(scored, 1.0, 0.0), scored)
        faithfulness_check(lm, X, y, scores, scored, p_before=0.5)
    finally:
        watch.close()
    assert watch.calls > 0 and not watch.bad, watch.bad


def test_generation_sees_the_frame():
    specials, bos, eos, adds_bos, *_ = FAMILIES["qwen2"]
    tok = family_tokenizer(specials, bos, eos, adds_bos)
    model = _model("qwen2")
    lm = wrap_model(model, tok)
    seen = []
    h = model.register_forward_pre_hook(lambda m, a, kw: seen.append(kw.get("input_ids")), with_kwargs=True)
    try:
        ctx = make_context(lm, TEXT, TargetSpec(generated=1, max_new_tokens=3, chat=False), HetaSettings())
    finally:
        h.remove()
    first = seen[0][0].tolist()
    assert first == ctx.ids[:ctx.prompt_len] and first[0] == tok.convert_tokens_to_ids("<|endoftext|>")
    # every later step feeds one generated token: the context of generated token k is exactly what produced it
    assert [int(s[0, 0]) for s in seen[1:]] == ctx.generated_ids[:len(seen) - 1]
    assert ctx.input_ids == ctx.ids[:ctx.prompt_len] + ctx.generated_ids[:1]


def test_report_records_frame_and_diagnostics():
    lm, ctx = _framed()
    exp = explain_context(lm, ctx, HetaSettings.preset("fast", num_probes=1), "heta")
    fr = build_report(exp)["frame"]
    assert fr["source"] == "document_separator" and fr["added"] is True and fr["tokens"] == ["<|endoftext|>"]
    M = np.clip(exp.result.gate_raw, 0, None)
    assert fr["gate_mass_on_frame"] == pytest.approx(M[0] / M.sum())
    assert fr["first_content_index"] == 1
    assert fr["first_content_share"] == pytest.approx(exp.normalised[1])


def test_a_context_built_with_another_frame_is_refused():
    lm, ctx = _framed()
    from heta_lite.errors import InputError

    with pytest.raises(InputError, match="frame"):
        explain_context(lm, ctx, HetaSettings.preset("fast", frame="none"), "heta")


@pytest.mark.slow
def test_smollm2_frames_with_its_document_separator_not_its_eos(smollm):
    ctx = make_context(smollm, "The capital of France is", TargetSpec(position=5), HetaSettings())
    assert ctx.frame.ids == (0,) and smollm.tokenizer.convert_ids_to_tokens(0) == "<|endoftext|>"
    assert smollm.tokenizer.eos_token_id != 0  # <|im_end|>: the chat turn end is not the separator
    assert [t.display for t in ctx.tokens[1:]] == ["The", "\u2423capital", "\u2423of", "\u2423France", "\u2423is"]
    chat = make_context(smollm, "Hi", TargetSpec(generated=0, max_new_tokens=1, chat=True), HetaSettings())
    assert chat.frame.source == "chat_template" and chat.frame.ids == tuple(chat.ids[:len(chat.frame)])
    assert all(t.origin == "frame" for t in chat.tokens[:len(chat.frame)])
    assert chat.tokens[len(chat.frame)].origin == "prompt"  # the frame ends where the user's text starts
