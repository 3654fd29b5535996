"""Long inputs beyond the context budget (issue #17 item 5): the 'window' strategy.

A prompt whose framed tokenization does not fit `settings.max_tokens` is handled per
`settings.long_input`:

- 'refuse': refused, with a message naming the limit and what to do (the behaviour before).
- 'window' (default): the model sees the frame + the LAST W content tokens of the prompt (+ the
  prompt's trailing template tokens in chat mode, + the generated tokens), cut at a token boundary,
  where W = max_tokens - frame length - trailing template tokens - room for generation (generated
  mode; at least the tokens up to the target, at most half of what is left) or the target token
  itself (position mode). Generation runs on that windowed context, and the attribution method
  (HETA or a baseline) scores the window's tokens exactly as for a short prompt: it is a short
  prompt. The earlier text is split, from the end backwards, into chunks of at most W tokens (fewer
  where chunk + context would pass the model's max_position_embeddings), and each chunk gets one
  summary effect

      effect(chunk) = log p(y | frame + chunk + window) - log p(y | frame + window)

  (one no-grad forward per chunk plus one for the baseline, float64 log-softmax), reported with its
  character span and token count. A positive effect: prepending that chunk alone raises p(y).

Why: HETA's cost grows with the square of the context (one masked forward per token, one HVP per
token and probe) and its memory with its length, so scoring thousands of tokens one by one is out of
reach on a laptop, while the last tokens are where a next-token prediction mostly looks. A chunk's
summary effect says whether the earlier text matters at all, and where, at the price of one forward
of at most about twice the window per chunk: every forward is window-sized, so the memory is bounded
whatever the length of the document (its tokenization, a list of ints, is the only full-size object).
The effects are not additive (chunks are tested one at a time, without the text between them and
the window) and are not token scores; the report says so in `statement`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from .errors import InputError, ResourceLimitError

STRATEGIES = ("window", "refuse")


@dataclass(frozen=True)
class Chunk:
    """Earlier text, tokens [first, last] of the full framed tokenization, chars [start_char, end_char)."""

    first: int
    last: int
    start_char: int
    end_char: int

    @property
    def n_tokens(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True)
class LongInputPlan:
    """Which tokens of a too-long prompt the model sees, and how the rest is covered.

    Indices are into the full framed tokenization (`total_tokens` ids, frame at 0..frame_len-1):
    the window is [window_first, window_last]; chunks cover [frame_len, window_first - 1]."""

    strategy: str
    total_tokens: int  # the full framed tokenization of the prompt (frame and template included)
    frame_len: int
    window_first: int
    window_last: int
    window_chars: tuple[int, int]
    window_budget: int  # W: the most content tokens the window may hold
    chunk_budget: int  # the most tokens a chunk holds (W, or less under max_position_embeddings)
    reserved: int  # tokens kept free for generation (generated mode) or the target (position mode)
    chunks: tuple[Chunk, ...]
    chunk_ids: tuple[tuple[int, ...], ...]  # the ids of each chunk (the only copy of the earlier text's ids)
    max_tokens: int = 0  # the context budget the window was cut for
    window_turn: int | None = None  # a conversation: the turn the window starts in (0-based); None: a prompt

    @property
    def window_tokens(self) -> int:
        return self.window_last - self.window_first + 1

    @property
    def earlier_tokens(self) -> int:
        return sum(c.n_tokens for c in self.chunks)

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "total_tokens": self.total_tokens, "max_tokens": self.max_tokens,
                "frame_tokens": self.frame_len,
                "window": {"first_index": self.window_first, "last_index": self.window_last,
                           "start_char": self.window_chars[0], "end_char": self.window_chars[1],
                           "n_tokens": self.window_tokens, "turn": self.window_turn},
                "window_budget": self.window_budget, "chunk_budget": self.chunk_budget}


@dataclass
class LongInputResult:
    """The plan and the chunks' summary effects for one target (what the report's `long_input` holds)."""

    plan: LongInputPlan
    baseline_logprob: float | None  # log p(y | frame + window), float64
    effects: list[float | None]  # per chunk, in document order; None: not computed (position limit)
    method: str = ""
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def statement(self) -> str:
        p = self.plan
        first, last = p.window_first, p.window_last
        s = (f"Long input ({p.total_tokens} tokens > the {p.max_tokens}-token budget): the model saw the frame and "
             f"the last {p.window_tokens} prompt tokens before the target (tokens {first}-{last}, characters "
             f"{p.window_chars[0]}-{p.window_chars[1]}"
             + ("" if p.window_turn is None else f", from turn {p.window_turn + 1} of the conversation on")
             + f"), and {self.method or 'the method'} scored each of them as for a short prompt")
        if p.chunks:
            n_done = sum(e is not None for e in self.effects)
            s += (f"; the {p.earlier_tokens} earlier tokens were not seen or scored token by token: each of their "
                  f"{len(p.chunks)} chunks (at most {p.chunk_budget} tokens) got one summary effect, "
                  "log p(target | frame + chunk + window) - log p(target | frame + window)")
            if n_done < len(p.chunks):
                s += f" ({len(p.chunks) - n_done} not computed: the model's position limit leaves no room)"
        return s + "."

    def to_dict(self) -> dict[str, Any]:
        d = self.plan.to_dict()
        d["chunks"] = [{"first_index": c.first, "last_index": c.last, "start_char": c.start_char,
                        "end_char": c.end_char, "n_tokens": c.n_tokens, "effect_logprob": e}
                       for c, e in zip(self.plan.chunks, self.effects)]
        d["baseline_logprob"] = self.baseline_logprob
        d["statement"] = self.statement()
        return d


def plan_window(enc, content_end: int, reserved: int, max_tokens: int, max_positions: int | None,
                window_budget: int | None = None) -> LongInputPlan:
    """The window plan of an encoded prompt (`targets.Encoded`): content is [frame_len, content_end),
    the tokens from content_end on (trailing template, or the target in position mode) are kept, and
    `reserved` tokens stay free for generation. W = max_tokens - frame - tail - reserved (or
    `window_budget`). InputError if no content token fits."""
    f = len(enc.frame)
    n = len(enc.ids)
    tail = n - content_end
    W = window_budget if window_budget is not None else max_tokens - f - tail - reserved
    if W < 1:
        raise InputError(
            f"The frame, template and generated tokens alone take {f + tail + reserved} of the {max_tokens}-token "
            "budget, so no window of the prompt fits; raise max_tokens or generate fewer tokens.", "prompt")
    first = max(f, content_end - W)
    cb = W
    if max_positions:
        cb = min(W, int(max_positions) - max_tokens)  # chunk + the longest context stays within positions
    chunks: list[Chunk] = []
    ids: list[tuple[int, ...]] = []
    end = first  # exclusive
    step = cb if cb >= 1 else W  # no room at all: chunks of W, effects not computed
    while end > f:
        start = max(f, end - step)
        chunks.append(Chunk(start, end - 1, _char(enc.offsets, start, end, True),
                            _char(enc.offsets, start, end, False)))
        ids.append(tuple(enc.ids[start:end]))
        end = start
    chunks.reverse()
    ids.reverse()
    wchars = (_char(enc.offsets, first, content_end, True), _char(enc.offsets, first, content_end, False))
    return LongInputPlan("window", n, f, first, content_end - 1, wchars, W, step, reserved, tuple(chunks),
                         tuple(ids), max_tokens)


def _char(offsets, start: int, end: int, first: bool) -> int:
    """The first start (first=True) or last end char of tokens [start, end) that have a span."""
    spans = [offsets[i] for i in range(start, end) if offsets[i][1] > offsets[i][0]]
    if not spans:
        return offsets[start][0] if first else offsets[end - 1][1]
    return min(s for s, _ in spans) if first else max(e for _, e in spans)


def windowed(enc, plan: LongInputPlan):
    """The Encoded the model sees: frame + window + what follows the content (same text and offsets)."""
    keep = list(range(plan.frame_len)) + list(range(plan.window_first, len(enc.ids)))
    return type(enc)(enc.text, [enc.ids[i] for i in keep], [enc.offsets[i] for i in keep],
                     [enc.special[i] for i in keep], [enc.origin[i] for i in keep], enc.frame)


def content_end_of(origin: list[str]) -> int | None:
    """One past the last token of the user's text ('prompt' origin), or None if there is none."""
    last = next((i for i in range(len(origin) - 1, -1, -1) if origin[i] == "prompt"), None)
    return None if last is None else last + 1


def plan_generated(enc, k: int, new_tokens: int, max_tokens: int, max_positions: int | None) -> LongInputPlan | None:
    """The plan for generated mode, or None when windowing cuts nothing (the prompt is short and the
    generation is what does not fit: the caller refuses as before). Room is kept for the generation
    (at least the tokens up to the target k, at most half of what the frame and template leave),
    so every generated token can be explained against the same window."""
    ce = content_end_of(enc.origin)
    if ce is None:
        return None
    f, tail = len(enc.frame), len(enc.ids) - ce
    avail = max_tokens - f - tail
    reserved = max(k + 1, min(new_tokens, avail // 2))
    if avail - reserved < 1 or ce - f <= avail - reserved:
        return None
    return plan_window(enc, ce, reserved, max_tokens, max_positions)


def max_positions_of(model) -> int | None:
    cfg = getattr(model, "config", None)
    cfg = getattr(cfg, "text_config", None) or cfg
    n = getattr(cfg, "max_position_embeddings", None)
    return int(n) if isinstance(n, int) and n > 0 else None


def _sliced(enc, stop: int):
    return type(enc)(enc.text, enc.ids[:stop], enc.offsets[:stop], enc.special[:stop], enc.origin[:stop], enc.frame)


def fit_position(enc, t: int, max_tokens: int, model) -> tuple[Any, int, LongInputPlan | None]:
    """Position mode, a text longer than max_tokens, target t (index into the full tokenization):
    the text after t is not context and is dropped; if the context before t still does not fit, the
    window is the last max_tokens - frame - 1 tokens before t (the target itself is the last id).
    Returns the encoding the model sees, the target's position in it, and the plan (None: no cut)."""
    enc = _sliced(enc, t + 1)
    if t + 1 <= max_tokens:
        return enc, t, None
    f = len(enc.frame)
    plan = plan_window(enc, t, 1, max_tokens, max_positions_of(model), window_budget=max_tokens - f - 1)
    return windowed(enc, plan), f + plan.window_tokens, plan


def fit_generated(enc, k: int, new_tokens: int, max_tokens: int, model) -> tuple[Any, LongInputPlan | None]:
    """Generated mode, a prompt that does not fit with the tokens up to generated token k: the
    windowed encoding and its plan, or (enc, None) when windowing cuts nothing (the caller refuses)."""
    plan = plan_generated(enc, k, new_tokens, max_tokens, max_positions_of(model))
    return (enc, None) if plan is None else (windowed(enc, plan), plan)


# ---- the chunk forwards ---------------------------------------------------------------------------

@torch.no_grad()
def target_logprob(lm, ids: list[int], target_id: int) -> float:
    """log p(target | ids), one no-grad forward, float64 log-softmax of the last position's logits."""
    from .models.loader import attention_implementation

    inp = torch.tensor([ids], dtype=torch.long, device=lm.device)
    with attention_implementation(lm.model, "sdpa"):
        logits = lm.model(input_ids=inp, use_cache=False, logits_to_keep=1).logits[0, -1]
    return float(torch.log_softmax(logits.double(), dim=-1)[target_id])


def chunk_effects(lm, ctx, control=None, method: str = "") -> LongInputResult:
    """Each chunk's summary effect on the target of `ctx` (a windowed `targets.Context`): the chunk
    goes right after the frame, before the window, in one no-grad forward. `control.step` between
    forwards reports progress and stops a cancelled job there."""
    plan: LongInputPlan = ctx.long_input
    t0 = time.perf_counter()
    base_ids = list(ctx.input_ids)
    f = plan.frame_len
    max_pos = max_positions_of(lm.model)
    total = len(plan.chunks) + 1
    if control is not None:
        control.step("long input: earlier chunks", 0, total)
    base = target_logprob(lm, base_ids, ctx.target_id)
    effects: list[float | None] = []
    # latest chunk first: the closest text is the likeliest to matter, and a cancelled job stops there
    for j, cids in enumerate(reversed(plan.chunk_ids)):
        if control is not None:
            control.step("long input: earlier chunks", j + 1, total)
        if max_pos and len(base_ids) + len(cids) > max_pos:
            effects.append(None)
            continue
        effects.append(target_logprob(lm, base_ids[:f] + list(cids) + base_ids[f:], ctx.target_id) - base)
    effects.reverse()
    if control is not None:
        control.step("long input: earlier chunks", total, total)
    return LongInputResult(plan, base, effects, method, time.perf_counter() - t0)


# ---- before the run: time and memory --------------------------------------------------------------

def chunk_seconds(forward_s: float, calibrated_n: int, n_chunks: int, chunk_input_len: int, context_len: int) -> float:
    """Seconds for the chunk forwards: one baseline forward of the context and one per chunk of
    (context + chunk) tokens, scaled linearly from a calibrated forward of `calibrated_n` tokens."""
    per = forward_s / max(1, calibrated_n)
    return per * context_len + n_chunks * per * chunk_input_len


def chunk_input_tokens(plan: LongInputPlan, context_len: int) -> int:
    """The longest chunk forward: the context plus the longest chunk."""
    return context_len + max((len(c) for c in plan.chunk_ids), default=0)


def estimate(lm, plan: LongInputPlan, context_len: int, cal=None, limit_bytes: int | None = None) -> dict[str, Any]:
    """The chunk forwards' cost before the run: seconds (from `cal`, a heta cost `Calibration`, when
    given), peak activation bytes of the longest chunk forward, and whether it fits the memory limit."""
    from .models.footprint import activation_bytes, memory_limit

    n_in = chunk_input_tokens(plan, context_len)
    peak = activation_bytes(lm, n_in, with_grad=False)
    limit = memory_limit(lm, limit_bytes)
    est: dict[str, Any] = {"chunk_forwards": len(plan.chunks) + 1, "chunk_input_tokens": n_in,
                           "peak_bytes": int(peak), "limit_bytes": int(limit), "fits": peak <= limit}
    if cal is not None:
        est["seconds"] = chunk_seconds(cal.forward_s, cal.n, len(plan.chunks), n_in, context_len)
    return est


def check_memory(lm, plan: LongInputPlan, context_len: int, limit_bytes: int | None = None) -> None:
    """ResourceLimitError (with what to do) if a chunk forward would not fit the memory limit."""
    est = estimate(lm, plan, context_len, None, limit_bytes)
    if not est["fits"]:
        raise ResourceLimitError(
            f"Scoring the earlier text of this long prompt needs forwards of {est['chunk_input_tokens']} tokens, "
            f"about {est['peak_bytes'] / 2**30:.1f} GiB, but the limit is {est['limit_bytes'] / 2**30:.1f} GiB; "
            "lower max_tokens (a smaller window and chunks).")


def preview(lm, ctx, settings, method: str = "heta", limit_bytes: int | None = None) -> dict[str, Any]:
    """Before the run of a windowed context: the chunk forwards' seconds and memory, HETA's own
    estimate for the window (method 'heta'; None otherwise) and one line to show (CLI, page)."""
    from .methods.heta.cost import calibrate, estimate_seconds

    n = ctx.target_pos
    cal = calibrate(lm, n)
    est = estimate(lm, ctx.long_input, n, cal, limit_bytes)
    est["method_seconds"] = (estimate_seconds(cal, n, sum(ctx.scored), settings)["total"]
                             if method == "heta" else None)
    est["line"] = describe_estimate(ctx.long_input, est)
    if est["method_seconds"] is not None:
        est["line"] += f"; the window with {method}: ~{est['method_seconds']:.1f} s"
    return est


def describe_estimate(plan: LongInputPlan, est: dict[str, Any]) -> str:
    """One line for the CLI and the page: what will be scored and what the chunk forwards cost."""
    s = (f"long input: {plan.total_tokens} tokens; the last {plan.window_tokens} (tokens {plan.window_first}-"
         f"{plan.window_last}) are scored, {len(plan.chunks)} earlier chunk(s) get a summary effect: "
         f"{est['chunk_forwards']} extra forwards of up to {est['chunk_input_tokens']} tokens, "
         f"~{est['peak_bytes'] / 2**20:.0f} MiB")
    if "seconds" in est:
        s += f", ~{est['seconds']:.1f} s"
    return s


__all__ = ["STRATEGIES", "Chunk", "LongInputPlan", "LongInputResult", "check_memory", "chunk_effects",
           "chunk_input_tokens", "chunk_seconds", "content_end_of", "describe_estimate", "estimate",
           "fit_generated", "fit_position",
           "max_positions_of", "plan_generated", "plan_window", "preview", "target_logprob", "windowed"]
