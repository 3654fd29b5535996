"""Frame tokens: what the model sees before the text (spec 'Frame token').

Decoder-only LMs park surplus attention on position 0, whatever token sits there (the attention
sink). Without a frame, the first word of the user's text is that sink and a causal rollout
hands it most of the attribution. So every context starts with frame tokens, which are in
the input and the report but never scored, masked, zeroed or deleted:

- chat template on: the template's own opening tokens are the frame; nothing is added;
- raw text, tokenizer adds a BOS (Llama, Mistral, Gemma): that BOS; nothing is added;
- raw text otherwise (SmolLM2, Qwen2.5, GPT-2): one document separator, the token the model saw
  between pretraining documents (`ArchSpec.document_separators`), prepended. For instruct
  models this is often not `eos_token` (SmolLM2-Instruct: `<|im_end|>` ends a chat turn,
  `<|endoftext|>` separates documents). A chat-role token such as `<|im_start|>` is never used.
- setting 'none': nothing added (the authors' setting, for comparison).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

CHAT_TEMPLATE = "chat_template"
BOS = "bos"
DOCUMENT_SEPARATOR = "document_separator"
FALLBACK = "fallback"
NONE = "none"


@dataclass(frozen=True)
class Frame:
    """The frame of one context: its token ids (positions 0..len(ids)-1), where they came from and
    why. `added` says whether HETA Lite prepended them (document separator) or the tokenizer /
    template put them there."""

    setting: str  # 'auto' or 'none'
    source: str  # chat_template | bos | document_separator | fallback | none
    ids: tuple[int, ...]
    added: bool
    why: str

    def __len__(self) -> int:
        return len(self.ids)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ids"] = list(self.ids)
        return d


def _vocab_id(tokenizer, piece: str | None) -> int | None:
    """The id of a token string if it is a single vocabulary entry (never an unk stand-in)."""
    if not piece:
        return None
    tid = tokenizer.convert_tokens_to_ids(piece)
    if not isinstance(tid, int) or tid < 0:
        return None
    unk = getattr(tokenizer, "unk_token_id", None)
    if tid == unk and piece != getattr(tokenizer, "unk_token", None):
        return None
    return tid if tokenizer.convert_ids_to_tokens(tid) == piece else None


def separator_frame(tokenizer, separators: tuple[str, ...]) -> Frame:
    """The frame to prepend to raw text whose tokenizer added no BOS: the family's document
    separator, else the tokenizer's BOS token, else its EOS token, else nothing (said in `why`)."""
    for piece in separators:
        tid = _vocab_id(tokenizer, piece)
        if tid is not None:
            return Frame("auto", DOCUMENT_SEPARATOR, (tid,), True,
                         f"the tokenizer adds no BOS; {piece} is the document separator this model family "
                         "saw between pretraining documents, so position 0 holds it instead of the first word")
    for attr in ("bos_token", "eos_token"):
        piece = getattr(tokenizer, attr, None)
        tid = _vocab_id(tokenizer, piece)
        if tid is not None:
            return Frame("auto", FALLBACK, (tid,), True,
                         f"no known document separator in the vocabulary; the tokenizer's {attr} {piece} "
                         "is prepended as the frame")
    return Frame("auto", NONE, (), False, "this tokenizer has no document separator, BOS or EOS token: no frame")


def leading_frame(ids: list[int], origin: list[str], source: str, why: str) -> Frame:
    """A frame that is already in the sequence: the tokens before the first token of the text."""
    k = 0
    while k < len(ids) and origin[k] not in ("prompt", "generated"):
        k += 1
    return Frame("auto", source, tuple(ids[:k]), False, why)


NO_FRAME = Frame(NONE, NONE, (), False, "frame 'none': nothing prepended (the authors' setting, for comparison)")
