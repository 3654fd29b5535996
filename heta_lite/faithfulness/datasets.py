"""Evaluation items from the project's JSONL sets or the HETA authors' toy JSON.

An item is a prompt and the answer to explain: the text is `prompt + sep + answer` (sep is " "
unless the item says otherwise, e.g. "" after "print(") and the target is the first token that
ends after the answer's first character (teacher-forced), never the final "?".

Formats:
- JSONL (ours, experiments/data/): {"id", "prompt", "answer", "sep"?, "kind"?, "base_id"?,
  "order"?, "segments"?: {"distractor": [a, b], "evidence": [a, b]}} with character spans into
  `prompt`.
- The HETA authors' JSON ({"examples": [...]}, ../shared/data/): the prompt is
  `input_text + " Answer:"`, the answer is `answer`; distractor / evidence spans are computed
  from how input_text was built and checked character for character.
Segments are character spans; for the authors' format they are derived from how `input_text`
was built (`narrative <s> evidence <s> Question: q`) and checked exactly, never searched for.

Position control (issue #14): an item with a distractor and an evidence passage has an `order`,
"distractor_first" or "evidence_first" ("" for items without both segments), so that following
the evidence can be told apart from favouring early positions. Our dsa_qa.jsonl holds every item
in both orders (the swap's id is `<base id>-swap` and its line names `"base_id"`). The authors'
file holds one order only; the loader builds the other one itself: `evidence <s> narrative <s>
Question: q`, spans recorded while the text is built and checked character for character; the
swap's id is `<authors' id>-swap`. The question part is the same text in both orders.

Dev / test halves (pre-registered evaluation): an item belongs to the half of its base item (the
item it is a swap of, or itself), so an item and its swap never fall in different halves. The
base item's number is the integer that ends its base id (dsa-004 -> 4, plain-03 -> 3,
heta_qa_00017 -> 17: the authors' ids are numbered in file order); a base id with no number at
its end falls back to the base item's 0-based position among the base items of its file. Even
number: "dev"; odd: "test".
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError

SEP = " <s> "
ORDERS = ("distractor_first", "evidence_first")
SPLITS = ("dev", "test")
SWAP_SUFFIX = "-swap"
_TRAILING_NUMBER = re.compile(r"(\d+)$")


@dataclass
class EvalItem:
    id: str
    prompt: str
    answer: str
    segments: dict[str, tuple[int, int]] = field(default_factory=dict)
    sep: str = " "
    kind: str = ""
    order: str = ""  # "distractor_first" | "evidence_first" | "" (no distractor/evidence segments)
    base_id: str = ""  # the item this one is a swap of; "" means the item itself
    base_index: int | None = None  # position of the base item in its file (split fallback)

    def __post_init__(self) -> None:
        if not self.base_id:
            self.base_id = self.id

    @property
    def text(self) -> str:
        return self.prompt + self.sep + self.answer

    @property
    def answer_start(self) -> int:
        return len(self.prompt) + len(self.sep)

    @property
    def base_number(self) -> int | None:
        """The base item's number: the integer ending the base id, else the base item's index."""
        m = _TRAILING_NUMBER.search(self.base_id)
        return int(m.group(1)) if m else self.base_index

    @property
    def split(self) -> str:
        """"dev" (even base number) or "test" (odd); "" when the item has no number at all."""
        n = self.base_number
        return "" if n is None else ("dev" if n % 2 == 0 else "test")


def order_of(segments: dict) -> str:
    """The passage order given by the spans themselves ("" without both segments)."""
    if not {"distractor", "evidence"} <= set(segments):
        return ""
    return "distractor_first" if segments["distractor"][0] < segments["evidence"][0] else "evidence_first"


def _authors_items(ex: dict) -> list[EvalItem] | None:
    """The authors' item as built (narrative first) and with the two passages swapped."""
    narrative, evidence, text = ex["narrative_segment"], ex["sciq_support_segment"], ex["input_text"]
    d_span = (0, len(narrative))
    e_start = len(narrative) + len(SEP)
    e_span = (e_start, e_start + len(evidence))
    if text[slice(*d_span)] != narrative or text[slice(*e_span)] != evidence or \
            text[e_span[1]:e_span[1] + len(SEP)] != SEP:
        return None  # not built the documented way: skip rather than guess
    question = text[e_span[1] + len(SEP):]  # "Question: q", kept verbatim in both orders
    swapped = evidence + SEP
    d2 = (len(swapped), len(swapped) + len(narrative))
    swapped += narrative + SEP + question
    s_e2 = (0, len(evidence))
    if swapped[slice(*s_e2)] != evidence or swapped[slice(*d2)] != narrative or \
            swapped[d2[1]:] != SEP + question or len(swapped) != len(text):
        return None
    base = str(ex["id"])
    return [EvalItem(id=base, prompt=text + " Answer:", answer=ex["answer"],
                     segments={"distractor": d_span, "evidence": e_span}, kind="authors",
                     order="distractor_first"),
            EvalItem(id=base + SWAP_SUFFIX, prompt=swapped + " Answer:", answer=ex["answer"],
                     segments={"distractor": d2, "evidence": s_e2}, kind="authors",
                     order="evidence_first", base_id=base)]


def _check_selection(orders, split) -> tuple[tuple[str, ...], str | None]:
    orders = (orders,) if isinstance(orders, str) else tuple(orders)
    if not orders or any(o not in ORDERS for o in orders):
        raise InputError(f"orders must be a non-empty selection of {', '.join(ORDERS)}; got {orders!r}.", "orders")
    if split == "all":
        split = None
    if split not in (None, *SPLITS):
        raise InputError(f"split must be all, dev or test; got {split!r}.", "split")
    return orders, split


def load_items(path: str | Path, orders=ORDERS, split: str | None = None) -> tuple[list[EvalItem], list[str]]:
    """(items, skipped-with-reason).

    `orders`: the passage orders to keep ("distractor_first", "evidence_first"); items without
    an order (no distractor/evidence segments, e.g. plain.jsonl) are always kept. `split`: None
    (or "all") for every item, "dev" or "test" for that half. Items come in file order (for the
    authors' file: every item as built, then every swap, like dsa_qa.jsonl), so the first N
    items of a file are the same whatever orders the file holds after them.
    """
    orders, split = _check_selection(orders, split)
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Dataset {path} does not exist.", "dataset")
    raw = path.read_text(encoding="utf-8")
    items: list[EvalItem] = []
    skipped: list[str] = []
    if path.suffix == ".json":
        data = json.loads(raw)
        swaps: list[EvalItem] = []
        for index, ex in enumerate(data.get("examples", [])):
            pair = _authors_items(ex)
            if pair is None:
                skipped.append(f"{ex.get('id')}: input_text is not 'narrative <s> evidence <s> question'")
                continue
            for it in pair:
                it.base_index = index
            items.append(pair[0])
            swaps.append(pair[1])
        items += swaps
    else:
        items = _jsonl_items(raw, skipped)
    return [it for it in items if (not it.order or it.order in orders) and (split is None or it.split == split)], \
        skipped


def _jsonl_items(raw: str, skipped: list[str]) -> list[EvalItem]:
    items: list[EvalItem] = []
    base_index: dict[str, int] = {}  # base id -> position among the file's base items
    for n, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj.get("prompt"), str) or not isinstance(obj.get("answer"), str) or not obj["answer"]:
                raise ValueError("needs a string 'prompt' and a non-empty string 'answer'")
            segs = {k: (int(v[0]), int(v[1])) for k, v in (obj.get("segments") or {}).items()}
            for name, (a, b) in segs.items():
                if not (0 <= a <= b <= len(obj["prompt"])):
                    raise ValueError(f"segment {name!r} [{a}, {b}] is outside the prompt")
            order = order_of(segs)
            if "order" in obj and obj["order"] != order:
                raise ValueError(f"'order' is {obj['order']!r} but the segments put the passages "
                                 f"{order or 'nowhere (no distractor and evidence segments)'}")
            item_id = str(obj.get("id", f"line-{n}"))
            base = str(obj.get("base_id") or item_id)
            items.append(EvalItem(id=item_id, prompt=obj["prompt"], answer=obj["answer"], segments=segs,
                                  sep=str(obj.get("sep", " ")), kind=str(obj.get("kind", "")), order=order,
                                  base_id=base, base_index=base_index.setdefault(base, len(base_index))))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            skipped.append(f"line {n}: {type(err).__name__}: {err}")
    return items


def first_base_items(items: list[EvalItem], n: int | None) -> list[EvalItem]:
    """The items of the first `n` base items (each in every order it has), in their order."""
    if not n:
        return list(items)
    keep: set[str] = set()
    for it in items:
        if len(keep) >= n:
            break
        keep.add(it.base_id)
    return [it for it in items if it.base_id in keep]
