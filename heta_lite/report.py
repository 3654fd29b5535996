"""The one result type: `Report`, the versioned JSON report (schema `heta-lite/report/v1`,
documented in docs/report.md).

`Report.from_explanation` builds it from an engine `Explanation` (the live object with tensors);
`save` / `load` / `validate` / `to_dict` are the only ways a report leaves or enters the program,
so the CLI, the batch command, the API, jobs and the GUI's export write the same document, and
any of them can be read back and checked against the JSON Schema shipped in the package.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError

SCHEMA_ID = "heta-lite/report/v1"


class ReportError(InputError):
    """A file or dict that is not a valid report."""

    def __init__(self, message: str):
        super().__init__(message, "report")


def _f(x: float) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def build_report(exp) -> dict[str, Any]:
    """JSON-ready dict of an Explanation (heta_lite.engine.Explanation)."""
    ctx = exp.context
    comps = exp.result.components
    tokens = []
    for tok in ctx.context_tokens:
        i = tok.index
        row: dict[str, Any] = {
            "index": i, "id": tok.id, "text": tok.text, "display": tok.display, "start": tok.start, "end": tok.end,
            "special": tok.special, "origin": tok.origin, "score": float(exp.scores[i]),
            "normalised": float(exp.normalised[i]), "percentile": _f(exp.percentile[i]),
            "rank": int(exp.rank[i]) if exp.rank[i] > 0 else None,
            "components": {name: {"raw": float(c.raw[i]), "normalised": float(c.normalised[i])}
                           for name, c in comps.items()},
        }
        tokens.append(row)
    tgt = ctx.target_token
    return {
        "schema": SCHEMA_ID,
        "heta_lite_version": exp.version,
        "created": datetime.fromtimestamp(exp.created, tz=timezone.utc).isoformat(),
        "method": exp.method,
        "model": exp.model,
        "settings": exp.settings.to_dict(),
        "prompt": ctx.prompt,
        "conversation": ctx.conversation.to_list() if ctx.conversation is not None else None,
        "text": ctx.text,
        "chat_template": ctx.chat,
        "long_input": getattr(exp, "long_input", None),  # a windowed long prompt (heta_lite/long_input.py)
        "target": {
            "mode": ctx.mode, "position": ctx.target_pos, "generated_index": ctx.generated_index,
            "id": tgt.id, "text": tgt.text, "display": tgt.display, "start": tgt.start, "end": tgt.end,
            "prob": exp.target.prob, "logprob": exp.target.logprob, "rank": exp.target.rank,
            "alternatives": [{"id": a.id, "text": a.text, "prob": a.prob} for a in exp.target.alternatives],
        },
        "generated": {"ids": list(ctx.generated_ids),
                      "text": ctx.generated_text},
        "tokens": tokens,
        "summary": {
            "num_context_tokens": len(tokens), "num_scored": int(sum(not t["special"] for t in tokens)),
            "top": [{"index": i, "display": d, "normalised": s} for i, d, s in exp.top_tokens(10)],
        },
        "frame": exp.frame,
        "faithfulness_check": exp.check.to_dict() if exp.check is not None else None,
        "anomalies": exp.anomalies.to_dict() if exp.anomalies is not None else None,
        "failure_risk": exp.risk,
        "derivatives": exp.derivatives,
        "notes": list(exp.notes),
        "timings_s": {k: float(v) for k, v in exp.timings.items()},
        "memory": exp.memory,
    }


@dataclass
class Report:
    """One explanation as a document: the v1 report's fields, validated on the way in and out.
    The nested parts (target, tokens, settings, ...) keep the schema's JSON shapes."""

    document: dict[str, Any]

    @classmethod
    def from_explanation(cls, exp, association: dict[str, Any] | None = None,
                         head_importance: Any = None) -> "Report":
        """The report of `exp`; the association matrix (engine.association_matrix) and head
        importance (heads.head_importance) are added when the caller computed them."""
        doc = build_report(exp)
        if association is not None:
            doc["association"] = association
        if head_importance is not None:
            doc["head_importance"] = head_importance.to_dict()
        return cls(doc)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "Report":
        """A report read from JSON; raises ReportError if it does not follow the schema."""
        report = cls(doc)
        report.validate()
        return report

    @classmethod
    def load(cls, path: str | Path) -> "Report":
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise ReportError(f"{path} is not a readable JSON report: {err}.") from None
        return cls.from_dict(doc)

    def validate(self) -> "Report":
        import jsonschema

        try:
            jsonschema.validate(self.document, schema())
        except jsonschema.ValidationError as err:
            where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
            raise ReportError(f"Not a valid {SCHEMA_ID} report at {where}: {err.message}") from None
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.document

    def to_json(self, indent: int | None = 2) -> str:
        return dumps(self.document, indent)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json() + "\n", encoding="utf-8")
        return path

    # the fields every surface reads
    @property
    def method(self) -> str:
        return self.document["method"]

    @property
    def settings(self) -> dict[str, Any]:
        return self.document["settings"]

    @property
    def target(self) -> dict[str, Any]:
        return self.document["target"]

    @property
    def tokens(self) -> list[dict[str, Any]]:
        return self.document["tokens"]

    @property
    def association(self) -> dict[str, Any] | None:
        return self.document.get("association")

    def scores(self) -> list[float]:
        """Normalised score per context token (0 for frame/template tokens)."""
        return [t["normalised"] for t in self.tokens]

    def top(self, k: int = 10) -> list[dict[str, Any]]:
        """The k highest-ranked scored tokens, best first."""
        return sorted((t for t in self.tokens if t["rank"]), key=lambda t: t["rank"])[:k]


def dumps(report: dict[str, Any], indent: int | None = 2) -> str:
    return json.dumps(report, indent=indent, ensure_ascii=False, default=_default)


def _default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads(resources.files("heta_lite.schema").joinpath("report-v1.schema.json").read_text())


def validate_report(report: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError if `report` (a dict) doesn't follow the v1 schema (tests and
    `heta-lite validate` want the full error; `Report.validate` words it for users)."""
    import jsonschema

    jsonschema.validate(report, schema())
