"""Multi-turn conversations (issue #17, correct and compare): the turns a context is built from,
and how they are rendered for a model.

A conversation alternates user and assistant turns, starts and ends with a user turn (the model
answers the last one). With a chat template the turns go through the template, as the model was
tuned to see them; without one they use a plain-text turn format:

    User: <question>
    Assistant: <answer>
    User: <correction>
    Assistant:

Only the turns' own text is scored; the template or the "User:"/"Assistant:" scaffolding around
it is context the model saw but never an attribution target (like the chat template of a
single prompt). Each turn's character span in the rendered text is found by rendering a sentinel
in its place, so templates that trim or rewrite their scaffolding are handled the same way as
the single-prompt path (heta_lite/targets.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from .errors import InputError

USER, ASSISTANT = "user", "assistant"
ROLES = (USER, ASSISTANT)
MAX_TURNS = 16
PLAIN_LABELS = {USER: "User", ASSISTANT: "Assistant"}
SENTINEL = "\u2063HETA\u2063TURN\u2063"


@dataclass(frozen=True)
class Turn:
    role: str
    content: str


@dataclass(frozen=True)
class Conversation:
    """Turns user, assistant, user, ... ending with the user turn the model answers."""

    turns: tuple[Turn, ...]

    def __post_init__(self) -> None:
        n = len(self.turns)
        if n == 0:
            raise InputError("The conversation has no turns; give at least one user turn.", "conversation")
        if n > MAX_TURNS:
            raise InputError(f"The conversation has {n} turns; the limit is {MAX_TURNS}.", "conversation")
        for i, turn in enumerate(self.turns):
            want = ROLES[i % 2]
            if turn.role != want:
                raise InputError(f"Turn {i} is '{turn.role}' but must be '{want}': turns alternate user, "
                                 "assistant, user, ... starting with the user.", "conversation")
            if not isinstance(turn.content, str) or not turn.content.strip():
                raise InputError(f"Turn {i} ({turn.role}) is empty; every turn needs some text.", "conversation")
        if self.turns[-1].role != USER:
            raise InputError("The conversation must end with a user turn: the model answers it.", "conversation")

    @classmethod
    def of(cls, turns: Iterable[Any]) -> "Conversation":
        """From [{'role': ..., 'content': ...}, ...] (JSON) or Turn objects; clear errors otherwise."""
        out = []
        for i, t in enumerate(turns):
            if isinstance(t, Turn):
                out.append(t)
            elif isinstance(t, dict) and set(t) == {"role", "content"}:
                out.append(Turn(str(t["role"]), t["content"]))
            else:
                raise InputError(f"Turn {i} must be an object with exactly 'role' and 'content'.", "conversation")
        return cls(tuple(out))

    @classmethod
    def correction(cls, question: str, answer: str, correction: str) -> "Conversation":
        """Question, the model's answer, the user's correction: the model answers again."""
        return cls((Turn(USER, question), Turn(ASSISTANT, answer), Turn(USER, correction)))

    @property
    def last_user(self) -> str:
        return self.turns[-1].content

    def total_chars(self) -> int:
        return sum(len(t.content) for t in self.turns)

    def to_list(self) -> list[dict[str, str]]:
        return [{"role": t.role, "content": t.content} for t in self.turns]

    def key(self) -> tuple:
        """Hashable identity (cache keys)."""
        return tuple((t.role, t.content) for t in self.turns)

    def render(self, tokenizer, chat: bool) -> tuple[str, list[tuple[int, int]]]:
        """The text the model reads and each turn's content span (start, end) in it."""
        def text_of(turns: list[Turn]) -> str:
            if chat:
                return tokenizer.apply_chat_template([{"role": t.role, "content": t.content} for t in turns],
                                                     tokenize=False, add_generation_prompt=True)
            return "".join(f"{PLAIN_LABELS[t.role]}: {t.content}\n" for t in turns) + f"{PLAIN_LABELS[ASSISTANT]}:"

        turns = list(self.turns)
        text = text_of(turns)
        spans = []
        for i, turn in enumerate(turns):
            probe = text_of(turns[:i] + [Turn(turn.role, SENTINEL)] + turns[i + 1:])
            before, found, after = probe.partition(SENTINEL)
            if not found:
                raise InputError("This model's chat template drops a turn of the conversation; turn chat mode "
                                 "off to use the plain turn format.", "conversation")
            spans.append((len(before), len(text) - len(after)))
        return text, spans

    def turn_at(self, tokenizer, chat: bool, char: int) -> int:
        """The turn whose text holds character `char` of the rendered conversation; a character in
        the template between two turns belongs to the turn that follows it."""
        _text, spans = self.render(tokenizer, chat)
        return next((i for i, (_a, b) in enumerate(spans) if char < b), len(spans) - 1)
