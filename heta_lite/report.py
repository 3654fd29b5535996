"""The versioned JSON report (schema `heta-lite/report/v1`, documented in docs/report.md).

One function builds it from an `Explanation`, one validates any dict against the JSON
Schema file shipped in the package; CLI, GUI and API all use these two.
"""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

SCHEMA_ID = "heta-lite/report/v1"


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
        "text": ctx.text,
        "chat_template": ctx.chat,
        "target": {
            "mode": ctx.mode, "position": ctx.target_pos, "generated_index": ctx.generated_index,
            "id": tgt.id, "text": tgt.text, "display": tgt.display, "start": tgt.start, "end": tgt.end,
            "prob": exp.target.prob, "logprob": exp.target.logprob, "rank": exp.target.rank,
            "alternatives": [{"id": a.id, "text": a.text, "prob": a.prob} for a in exp.target.alternatives],
        },
        "generated": {"ids": list(ctx.generated_ids),
                      "text": ctx.text[ctx.tokens[ctx.prompt_len].start:] if ctx.generated_ids else ""},
        "tokens": tokens,
        "summary": {
            "num_context_tokens": len(tokens), "num_scored": int(sum(not t["special"] for t in tokens)),
            "top": [{"index": i, "display": d, "normalised": s} for i, d, s in exp.top_tokens(10)],
        },
        "frame": exp.frame,
        "faithfulness_check": exp.check.to_dict() if exp.check is not None else None,
        "derivatives": exp.derivatives,
        "notes": list(exp.notes),
        "timings_s": {k: float(v) for k, v in exp.timings.items()},
        "memory": exp.memory,
    }


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
    """Raise jsonschema.ValidationError if `report` doesn't follow the v1 schema."""
    import jsonschema

    jsonschema.validate(report, schema())
