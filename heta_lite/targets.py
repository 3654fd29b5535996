"""Which prediction to explain, and the exact context the model saw for it.

Two modes (spec, 'Target selection'):
- position: the user picks t inside the tokenized text; y = ids[t], context = ids[:t].
- generated: the model greedily generates after the prompt (chat template applied in chat
  mode); the user picks generated token k (0 = first); context = prompt ids + generated
  ids before k, exactly the ids that produced token k.

Every context starts with its frame tokens (heta_lite/frame.py): positions 0..k-1, special,
origin 'frame'. Positions index the framed sequence, the one the model saw, everywhere
(report, GUI, `TargetSpec.position`).

A prompt longer than max_tokens is refused (long_input='refuse') or windowed (long_input='window',
heta_lite/long_input.py): the context is the frame + the last tokens of the prompt that fit, and
`Context.long_input` holds the plan (which tokens, and the earlier chunks). `TargetSpec.position`
indexes the full framed tokenization; the windowed context's positions index what the model saw.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from .conversation import USER, Conversation, Turn
from .errors import InputError
from .frame import BOS, CHAT_TEMPLATE, NO_FRAME, Frame, leading_frame, separator_frame
from .long_input import LongInputPlan, fit_generated, fit_position
from .tokens import TokenInfo, token_infos


@dataclass(frozen=True)
class TargetSpec:
    """position: teacher-forced t (1..len-1); generated: index k of a generated token (0-based).
    Neither given means the first generated token. chat: None = use the chat template when the
    tokenizer has one."""

    position: int | None = None
    generated: int | None = None
    max_new_tokens: int = 20
    chat: bool | None = None

    def __post_init__(self) -> None:
        if self.position is not None and self.generated is not None:
            raise InputError("Give either a target position or a generated-token index, not both.", "target")
        if self.position is not None and int(self.position) < 0:
            raise InputError(f"Target position must be >= 1, got {self.position}.", "target_pos")
        if self.generated is not None and int(self.generated) < 0:
            raise InputError(f"Generated-token index must be >= 0, got {self.generated}.", "target_gen")
        if not (1 <= int(self.max_new_tokens) <= 1024):
            raise InputError(f"max_new_tokens must be between 1 and 1024, got {self.max_new_tokens}.", "max_new_tokens")

    @property
    def mode(self) -> str:
        return "position" if self.position is not None else "generated"


@dataclass
class Context:
    """The context x_0..x_{t-1}, the target y = x_t, and every token's text and flags."""

    prompt: str
    text: str  # rendered prompt (+ generated text): offsets index into this
    mode: str
    chat: bool
    ids: list[int]  # all ids: prompt (+ generated)
    target_pos: int  # t
    tokens: list[TokenInfo]  # all tokens of `ids`
    prompt_len: int  # number of prompt ids, frame included (the rest are generated)
    generated_ids: list[int] = field(default_factory=list)
    frame: Frame = NO_FRAME
    conversation: Conversation | None = None  # the turns, when the context is a conversation
    long_input: LongInputPlan | None = None  # a windowed long prompt: which tokens the model saw (long_input.py)

    @property
    def input_ids(self) -> list[int]:
        return self.ids[: self.target_pos]

    @property
    def target_id(self) -> int:
        return self.ids[self.target_pos]

    @property
    def context_tokens(self) -> list[TokenInfo]:
        return self.tokens[: self.target_pos]

    @property
    def target_token(self) -> TokenInfo:
        return self.tokens[self.target_pos]

    @property
    def scored(self) -> list[bool]:
        return [not t.special for t in self.context_tokens]

    @property
    def generated_text(self) -> str:
        """The text the model generated ('' in a position-mode context)."""
        return self.text[self.tokens[self.prompt_len].start:] if self.generated_ids else ""

    @property
    def generated_index(self) -> int | None:
        return self.target_pos - self.prompt_len if self.mode == "generated" else None

    def with_target(self, target_pos: int) -> "Context":
        """The same sequence with another target (no re-generation: ids are reused exactly)."""
        _check_position(target_pos, len(self.ids))
        return Context(self.prompt, self.text, self.mode if target_pos >= self.prompt_len else "position",
                       self.chat, self.ids, target_pos, self.tokens, self.prompt_len, self.generated_ids, self.frame,
                       self.conversation, self.long_input)

    @property
    def frame_len(self) -> int:
        return len(self.frame)

    @property
    def first_content_index(self) -> int | None:
        """The first scored context token (the first word of the text), or None."""
        return next((i for i, s in enumerate(self.scored) if s), None)


def _check_position(t: int, length: int) -> None:
    if not (1 <= t < length):
        raise InputError(
            f"Target position {t} is outside the text: it has {length} tokens, so pick 1..{length - 1} "
            "(position 0 has no context before it).", "target_pos")


MAX_PROMPT_CHARS = 200_000  # the hard cap of the CLI and the page (longer: windowed, heta_lite/long_input.py)


def check_prompt(prompt: str, max_chars: int = MAX_PROMPT_CHARS) -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError("The prompt is empty; type some text to explain.", "prompt")
    if len(prompt) > max_chars:
        todo = "split the document and explain the part that matters"
        if max_chars < MAX_PROMPT_CHARS:  # a tighter cap (the API's): the CLI and the page take more
            todo = f"explain long documents with the CLI or the page (up to {MAX_PROMPT_CHARS:,} characters), or {todo}"
        raise InputError(f"The prompt has {len(prompt):,} characters; the limit is {max_chars:,} ({todo}).", "prompt")
    return prompt


def use_chat(tokenizer, chat: bool | None) -> bool:
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if chat and not has_template:
        raise InputError("This model has no chat template; turn chat mode off.", "chat")
    return has_template if chat is None else bool(chat)


@dataclass
class Encoded:
    """A tokenized prompt: rendered text, ids, char offsets, special flags, origin, frame."""

    text: str
    ids: list[int]
    offsets: list[tuple[int, int]]
    special: list[bool]
    origin: list[str]
    frame: Frame


def encode_prompt(tokenizer, prompt: str | Conversation, chat: bool, frame: str = "auto",
                  separators: tuple[str, ...] = ("<|endoftext|>",)) -> Encoded:
    """Tokenize the prompt or conversation (chat template in chat mode, else a conversation's plain
    turn format) and put its frame at positions 0..k-1. Only the text of the prompt (every turn of
    a conversation) has origin 'prompt'; the rest is 'template' and never scored."""
    special_ids = set(tokenizer.all_special_ids)
    if isinstance(prompt, Conversation):
        text, spans = prompt.render(tokenizer, chat)
        add_special = not chat
    elif chat:
        text, spans = Conversation((Turn(USER, prompt),)).render(tokenizer, chat=True)
        add_special = False
    else:
        text, spans, add_special = prompt, [(0, len(prompt))], True
    ids, offsets = _encode_with_offsets(tokenizer, text, add_special)
    origin = ["prompt" if e > s and any(s < b and e > a for a, b in spans) else "template" for s, e in offsets]
    special = [tid in special_ids or o == "template" for tid, o in zip(ids, origin)]
    if frame == "none":
        fr = NO_FRAME
    elif chat:
        fr = leading_frame(ids, origin, CHAT_TEMPLATE,
                           "the chat template's opening tokens come before the text: they are the frame")
    elif ids and origin[0] == "template" and ids[0] in special_ids:
        fr = leading_frame(ids, origin, BOS, "the tokenizer starts every text with its BOS token: it is the frame")
    else:
        fr = separator_frame(tokenizer, separators)
        k = len(fr.ids)
        ids, offsets = list(fr.ids) + ids, [(0, 0)] * k + offsets
        special, origin = [True] * k + special, ["template"] * k + origin
    origin = ["frame"] * len(fr) + origin[len(fr):]
    return Encoded(text, ids, offsets, special, origin, fr)


def _encode_with_offsets(tokenizer, text: str, add_special: bool) -> tuple[list[int], list[tuple[int, int]]]:
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=add_special, return_offsets_mapping=True)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
    ids = tokenizer(text, add_special_tokens=add_special)["input_ids"]
    return list(ids), offsets_by_decoding(tokenizer, ids, base=0)


def offsets_by_decoding(tokenizer, ids: list[int], base: int) -> list[tuple[int, int]]:
    """Char offsets of ids in decode(ids), by incremental decoding (for generated tokens)."""
    offsets, prev = [], 0
    for j in range(len(ids)):
        cur = len(tokenizer.decode(ids[: j + 1], skip_special_tokens=False, clean_up_tokenization_spaces=False))
        offsets.append((base + prev, base + max(cur, prev)))
        prev = max(cur, prev)
    return offsets


@torch.no_grad()
def greedy_generate(model, ids: list[int], max_new_tokens: int, eos_ids: set[int]) -> list[int]:
    """Plain greedy decoding with a KV cache; stops after an end-of-sequence token."""
    from .models.kv_cache import returned_cache, with_cache
    from .models.loader import attention_implementation

    device = next(model.parameters()).device
    out_ids: list[int] = []
    with attention_implementation(model, "sdpa"):
        inp = torch.tensor([ids], device=device)
        past = None
        for _ in range(max_new_tokens):
            out = model(input_ids=inp, **with_cache(model, past), use_cache=True, logits_to_keep=1)
            past = returned_cache(out)
            nxt = int(out.logits[0, -1].argmax())
            out_ids.append(nxt)
            if nxt in eos_ids:
                break
            inp = torch.tensor([[nxt]], device=device)
    return out_ids


def eos_token_ids(model, tokenizer) -> set[int]:
    ids = set()
    for src in (getattr(model, "generation_config", None), tokenizer):
        eos = getattr(src, "eos_token_id", None)
        if isinstance(eos, int):
            ids.add(eos)
        elif isinstance(eos, (list, tuple)):
            ids.update(int(e) for e in eos)
    return ids


def document_separators(model) -> tuple[str, ...]:
    """The model family's document separator candidates (models/arch.py), for the frame."""
    from .models.arch import ARCHITECTURES, ArchSpec

    spec = ARCHITECTURES.get(getattr(model.config, "model_type", ""))
    return spec.document_separators if spec else ArchSpec.document_separators


def build_context(model, tokenizer, prompt: str | Conversation, target: TargetSpec, max_tokens: int = 512,
                  cache=None, identity=None, frame: str = "auto", long_input: str = "window") -> Context:
    """Tokenize (and generate, in generated mode) and check the limits the spec names. The context
    starts with its frame (`frame='auto'`; 'none' = nothing prepended). A conversation is explained
    at the model's answer to its last turn (generated mode). With a HetaCache and the model's
    `ModelIdentity`, tokenization and greedy generations are reused across calls."""
    conversation = prompt if isinstance(prompt, Conversation) else None
    if conversation is not None:
        if target.mode == "position":
            raise InputError("A conversation is explained at the model's answer to its last turn: pick a generated "
                             "token, not a position.", "target")
        check_prompt("".join(t.content for t in conversation.turns))
    else:
        check_prompt(prompt)
    prompt_key = conversation.key() if conversation is not None else prompt
    if cache is not None and identity is None:
        raise ValueError("build_context needs the model's identity to use a cache")
    from .cache import cache_key

    def encode(chat: bool) -> Encoded:
        def run() -> Encoded:
            return encode_prompt(tokenizer, prompt, chat, frame, document_separators(model))

        if cache is None:
            return run()
        return cache.get_or_compute(cache_key(identity, "encode", prompt=prompt_key, chat=chat, frame=frame), run)

    if target.mode == "position":
        enc, t, plan = encode(False), int(target.position), None
        if long_input == "window" and len(enc.ids) > max_tokens:  # long input: keep the tokens before t that fit
            _check_position(t, len(enc.ids))
            enc, t, plan = fit_position(enc, t, max_tokens, model)
        text, ids = enc.text, enc.ids
        _check_length(len(ids), max_tokens, "The text", long_input)
        _check_position(t, len(ids))
        tokens = token_infos(tokenizer, ids, text, enc.offsets, enc.special, enc.origin)
        ctx = Context(prompt, text, "position", False, ids, t, tokens, len(ids), frame=enc.frame, long_input=plan)
    else:
        chat = use_chat(tokenizer, target.chat)
        enc = encode(chat)
        text, ids, offsets, special, origin = enc.text, enc.ids, enc.offsets, enc.special, enc.origin
        k = int(target.generated or 0)
        new_tokens = max(int(target.max_new_tokens), k + 1)
        plan = None
        if long_input == "window" and len(ids) + k + 1 > max_tokens:  # long input: the last tokens that fit
            enc, plan = fit_generated(enc, k, new_tokens, max_tokens, model)
            if plan is not None and conversation is not None:
                plan = replace(plan, window_turn=conversation.turn_at(tokenizer, chat, plan.window_chars[0]))
            text, ids, offsets, special, origin = enc.text, enc.ids, enc.offsets, enc.special, enc.origin
        _check_length(len(ids) + k + 1, max_tokens, "The prompt plus the generated tokens up to the target",
                      long_input)
        budget = min(new_tokens, max_tokens - len(ids))
        if cache is None:
            gen = greedy_generate(model, ids, budget, eos_token_ids(model, tokenizer))
        else:
            gen = cache.get_or_compute(cache_key(identity, "generate", ids=ids, max_new_tokens=budget),
                                       lambda: greedy_generate(model, ids, budget, eos_token_ids(model, tokenizer)))
        if k >= len(gen):
            raise InputError(
                f"The model generated only {len(gen)} token(s) (it stopped at end-of-sequence); "
                f"pick a generated token 0..{len(gen) - 1}.", "target_gen")
        gen_text = tokenizer.decode(gen, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        gen_offsets = offsets_by_decoding(tokenizer, gen, base=len(text))
        special_ids = set(tokenizer.all_special_ids)
        all_ids = ids + gen
        tokens = token_infos(tokenizer, all_ids, text + gen_text, offsets + gen_offsets,
                             special + [g in special_ids for g in gen], origin + ["generated"] * len(gen))
        ctx = Context(conversation.last_user if conversation else prompt, text + gen_text, "generated", chat,
                      all_ids, len(ids) + k, tokens, len(ids), gen, enc.frame, conversation, plan)
    if ctx.mode == "generated" and not any(ctx.scored):  # a position may be a placeholder (`with_target`)
        raise InputError(
            "The context before the target has no scorable tokens (only special or chat-template tokens); "
            "pick a later target.", "target")
    return ctx


def _check_length(n: int, limit: int, what: str, long_input: str = "window") -> None:
    if n > limit:
        todo = ("raise max_tokens, shorten it, or use long_input=window to explain its last tokens"
                if long_input == "refuse" else "raise max_tokens or shorten it")
        raise InputError(f"{what} is {n} tokens; the limit is {limit} tokens ({todo}).", "prompt")
