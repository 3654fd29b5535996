"""Evaluation items from the project's JSONL sets or the HETA authors' toy JSON.

An item is a prompt and the answer to explain: the text is `prompt + sep + answer` (sep is " "
unless the item says otherwise, e.g. "" after "print(") and the target is the first token that
ends after the answer's first character (teacher-forced), never the final "?".

Formats:
- JSONL (ours, experiments/data/): {"id", "prompt", "answer", "sep"?, "kind"?,
  "segments"?: {"distractor": [a, b], "evidence": [a, b]}} with character spans into `prompt`.
- The HETA authors' JSON ({"examples": [...]}, ../shared/data/): the prompt is
  `input_text + " Answer:"`, the answer is `answer`; distractor / evidence spans are computed
  from how input_text was built and checked character for character.
Segments are character spans; for the authors' format they are derived from how `input_text`
was built (`narrative <s> evidence <s> Question: q`) and checked exactly, never searched for.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError

SEP = " <s> "


@dataclass
class EvalItem:
    id: str
    prompt: str
    answer: str
    segments: dict[str, tuple[int, int]] = field(default_factory=dict)
    sep: str = " "
    kind: str = ""

    @property
    def text(self) -> str:
        return self.prompt + self.sep + self.answer

    @property
    def answer_start(self) -> int:
        return len(self.prompt) + len(self.sep)


def _authors_item(ex: dict) -> EvalItem | None:
    narrative, evidence, text = ex["narrative_segment"], ex["sciq_support_segment"], ex["input_text"]
    d_span = (0, len(narrative))
    e_start = len(narrative) + len(SEP)
    e_span = (e_start, e_start + len(evidence))
    if text[slice(*d_span)] != narrative or text[slice(*e_span)] != evidence or \
            text[e_span[1]:e_span[1] + len(SEP)] != SEP:
        return None  # not built the documented way: skip rather than guess
    return EvalItem(id=ex["id"], prompt=text + " Answer:", answer=ex["answer"],
                    segments={"distractor": d_span, "evidence": e_span}, kind="authors")


def load_items(path: str | Path) -> tuple[list[EvalItem], list[str]]:
    """(items, skipped-with-reason)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Dataset {path} does not exist.", "dataset")
    raw = path.read_text(encoding="utf-8")
    items, skipped = [], []
    if path.suffix == ".json":
        data = json.loads(raw)
        for ex in data.get("examples", []):
            it = _authors_item(ex)
            if it is None:
                skipped.append(f"{ex.get('id')}: input_text is not 'narrative <s> evidence <s> question'")
            else:
                items.append(it)
        return items, skipped
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
            items.append(EvalItem(id=str(obj.get("id", f"line-{n}")), prompt=obj["prompt"], answer=obj["answer"],
                                  segments=segs, sep=str(obj.get("sep", " ")), kind=str(obj.get("kind", ""))))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            skipped.append(f"line {n}: {type(err).__name__}: {err}")
    return items, skipped
