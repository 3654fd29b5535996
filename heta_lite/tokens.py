"""Token texts that people can read: exact text from character offsets, visible whitespace,
and raw bytes (never mojibake) for byte-level BPE pieces that split a character."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

VISIBLE = {" ": "\u2423", "\n": "\u21b5", "\t": "\u2192", "\r": "\u240d"}  # ␣ ↵ → ␍


@dataclass
class TokenInfo:
    index: int
    id: int
    text: str  # exact text of the token ("" for a byte piece that doesn't end a character)
    display: str  # readable form: whitespace made visible, partial bytes as <0xNN>
    start: int  # character offsets into the context text
    end: int
    special: bool  # excluded from scoring: special or chat-template token
    origin: str  # "prompt", "template" or "generated"

    def to_dict(self) -> dict:
        return asdict(self)


def visible(text: str) -> str:
    """Show spaces, newlines and tabs, and escape other control characters."""
    out = []
    for ch in text:
        if ch in VISIBLE:
            out.append(VISIBLE[ch])
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"<0x{ord(ch):02X}>")
        else:
            out.append(ch)
    return "".join(out)


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's bytes_to_unicode map used by byte-level BPE vocabularies."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def raw_piece_display(tokenizer, token_id: int) -> str:
    """Readable form of a token from its vocabulary piece (used when offsets give no text)."""
    piece = tokenizer.convert_ids_to_tokens(int(token_id))
    if piece is None:
        return f"<id {token_id}>"
    dec = _byte_decoder()
    if all(ch in dec for ch in piece):
        data = bytes(dec[ch] for ch in piece)
        try:
            return visible(data.decode("utf-8"))
        except UnicodeDecodeError:
            return "".join(visible(chr(b)) if b < 128 else f"<0x{b:02X}>" for b in data)
    return visible(piece.replace("\u2581", " "))


def token_infos(tokenizer, ids: list[int], text: str, offsets: list[tuple[int, int]],
                special: list[bool], origin: list[str]) -> list[TokenInfo]:
    """Build TokenInfo rows; text comes from offsets so what's shown is what was typed."""
    infos: list[TokenInfo] = []
    prev_end = -1
    for i, (tid, (s, e)) in enumerate(zip(ids, offsets)):
        piece_text = text[s:e] if e > s else ""
        if e <= prev_end and e > s:  # a later byte of a character already shown by the token before
            piece_text = ""
        if special[i] and origin[i] != "prompt" and not piece_text:
            display = raw_piece_display(tokenizer, tid)
        elif piece_text and tokenizer.decode([tid]) != "\ufffd":
            display = visible(piece_text)
        else:
            display = raw_piece_display(tokenizer, tid)
        infos.append(TokenInfo(i, int(tid), piece_text, display, int(s), int(e), bool(special[i]), origin[i]))
        prev_end = max(prev_end, e)
    return infos
