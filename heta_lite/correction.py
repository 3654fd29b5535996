"""Correct and compare (issue #17 item 1): the model answers a question, the user corrects it, the
model answers again, and the two first answer tokens are explained side by side.

    cmp = correct_and_compare(lm, "The capital of Australia is", "No, that is wrong. Try again.")
    cmp.summary()   # the answers, p(old answer token) after the correction, biggest attribution shifts

Both sides use the same method and settings. The "after" context is the conversation question,
the model's own first answer, correction (chat template when the model has one, else the plain
turn format of heta_lite/conversation.py); its report records the whole conversation.
Attribution shifts are compared on the question's tokens, the only text both contexts share,
matched by their character span inside the question, as shares of the question's attribution
(each side's matched tokens sum to 1), so a shift says where the explanation moved inside the
question, not that the longer "after" context spreads its attribution over more tokens. How the
"after" attribution splits over the turns (question, first answer, correction) is reported next
to it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .control import JobControl
from .conversation import USER, Conversation, Turn
from .engine import Explanation, explain
from .explore import logit_lens, prob_of
from .models.loader import LoadedModel
from .settings import HetaSettings
from .targets import TargetSpec, eos_token_ids


@dataclass
class Side:
    """One answer: its explanation (first answer token), the whole answer text and the logit lens."""

    explanation: Explanation
    answer: str
    lens: list[dict]

    def to_dict(self) -> dict[str, Any]:
        exp = self.explanation
        return {"answer": self.answer, "target": exp.context.target_token.display, "prob": exp.target.prob,
                "top5": [{"text": a.text, "prob": a.prob} for a in exp.target.alternatives],
                "logit_lens": self.lens}


@dataclass
class Shift:
    """A question token whose share of the attribution changed."""

    text: str
    start: int  # character offset inside the question
    before: float
    after: float

    @property
    def delta(self) -> float:
        return self.after - self.before


@dataclass
class Comparison:
    before: Side
    after: Side
    conversation: Conversation
    old_token_prob_after: float  # p(the first answer's first token) where the corrected answer starts
    shifts: list[Shift] = field(default_factory=list)  # every matched question token
    turn_shares: list[float] = field(default_factory=list)  # the "after" attribution per turn of the conversation

    @property
    def answer_changed(self) -> bool:
        return self.before.answer.strip() != self.after.answer.strip()

    def gained(self, k: int = 3) -> list[Shift]:
        return [s for s in sorted(self.shifts, key=lambda s: -s.delta) if s.delta > 0][:k]

    def lost(self, k: int = 3) -> list[Shift]:
        return [s for s in sorted(self.shifts, key=lambda s: s.delta) if s.delta < 0][:k]

    def summary(self) -> str:
        """One line: what changed."""
        b, a = self.before.explanation, self.after.explanation
        old = b.context.target_token.display
        answers = (f"the answer changed from {self.before.answer.strip()[:60]!r} to {self.after.answer.strip()[:60]!r}"
                   if self.answer_changed else f"the answer stayed {self.after.answer.strip()[:60]!r}")
        prob = f"p({old}) {b.target.prob:.2f} -> {self.old_token_prob_after:.2f} after the correction"

        def fmt(shifts: list[Shift]) -> str:
            return ", ".join(f"{s.text} {s.delta * 100:+.0f} pts" for s in shifts) or "none"

        moved = f"inside the question, gained: {fmt(self.gained())}; lost: {fmt(self.lost())}"
        names = ("question", "first answer", "correction")
        split = ", ".join(f"{names[i] if i < 3 else f'turn {i}'} {v:.0%}" for i, v in enumerate(self.turn_shares))
        return (f"{answers}; {prob}; {moved}; after the correction the attribution is {split} "
                f"(first answer token {old} vs {a.context.target_token.display}).")

    def to_dict(self) -> dict[str, Any]:
        return {"conversation": self.conversation.to_list(), "answer_changed": self.answer_changed,
                "old_token_prob_after": self.old_token_prob_after, "summary": self.summary(),
                "turn_shares": list(self.turn_shares),
                "before": self.before.to_dict(), "after": self.after.to_dict(),
                "shifts": [{"text": s.text, "start": s.start, "before": s.before, "after": s.after, "delta": s.delta}
                           for s in sorted(self.shifts, key=lambda s: -abs(s.delta))]}


def answer_text(lm: LoadedModel, exp: Explanation) -> str:
    """The whole generated answer of an explanation's context, without its end-of-sequence token."""
    eos = eos_token_ids(lm.model, lm.tokenizer)
    ids = [i for i in exp.context.generated_ids if i not in eos]
    return lm.tokenizer.decode(ids, skip_special_tokens=True).strip()


def turn_spans(lm: LoadedModel, exp: Explanation, question: str) -> list[tuple[int, int]]:
    """Each turn's character span in the context's text (a single prompt is one user turn)."""
    ctx = exp.context
    turns = ctx.conversation if ctx.conversation is not None else Conversation((Turn(USER, question),))
    if ctx.chat or ctx.conversation is not None:
        return turns.render(lm.tokenizer, ctx.chat)[1]
    return [(0, len(question))]


def span_shares(exp: Explanation, span: tuple[int, int]) -> dict[tuple[int, int], tuple[str, float]]:
    """Scored context tokens inside `span`, by their (start, end) relative to it: (display, share)."""
    start, end = span
    return {(t.start - start, t.end - start): (t.display, float(exp.normalised[t.index]))
            for t in exp.context.context_tokens if not t.special and start <= t.start and t.end <= end}


def _within(shares: dict, keys: list) -> dict:
    total = sum(shares[k][1] for k in keys)
    return {k: shares[k][1] / total if total > 0 else 0.0 for k in keys}


def explain_answer(lm: LoadedModel, prompt: str | Conversation, settings: HetaSettings, method: str,
                   max_new_tokens: int, chat: bool | None, control: JobControl | None, cache) -> Side:
    """Generate the answer and explain its first token (the model's own first answer token)."""
    exp = explain(lm, prompt, TargetSpec(generated=0, max_new_tokens=max_new_tokens, chat=chat), settings,
                  method=method, control=control, cache=cache)
    lens = logit_lens(lm, list(exp.context.input_ids), exp.context.target_id)
    return Side(exp, answer_text(lm, exp), lens)


def correct_and_compare(lm: LoadedModel, question: str, correction: str, settings: HetaSettings | None = None,
                        method: str = "heta", max_new_tokens: int = 20, chat: bool | None = None,
                        control: JobControl | None = None, cache=None, before: Side | None = None) -> Comparison:
    """Answer `question`, answer again after `correction`, explain both first answer tokens.
    `before` reuses a first answer already explained (the page has it after Generate)."""
    settings = settings or HetaSettings.preset("balanced")
    control = control or JobControl()
    if before is None:
        control.step("first answer", 0, 2)
        before = explain_answer(lm, question, settings, method, max_new_tokens, chat, control, cache)
    if not before.answer:
        from .errors import InputError

        raise InputError("The first answer is empty (the model stopped at once); there is nothing to correct.",
                         "correction")
    conv = Conversation.correction(question, before.answer, correction)
    control.step("corrected answer", 1, 2)
    after = explain_answer(lm, conv, settings, method, max_new_tokens, before.explanation.context.chat, control,
                           cache)
    p_old = prob_of(lm, list(after.explanation.context.input_ids), before.explanation.context.target_id)
    after_spans = turn_spans(lm, after.explanation, question)
    b = span_shares(before.explanation, turn_spans(lm, before.explanation, question)[0])
    a = span_shares(after.explanation, after_spans[0])
    both = [k for k in b if k in a]
    wb, wa = _within(b, both), _within(a, both)
    shifts = [Shift(b[k][0], k[0], wb[k], wa[k]) for k in both]
    turn_shares = [sum(v for _, v in span_shares(after.explanation, sp).values()) for sp in after_spans]
    return Comparison(before, after, conv, p_old, shifts, turn_shares)
