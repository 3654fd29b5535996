"""The key/value cache argument of a model's forward, across transformers versions.

transformers 4.x takes and returns `past_key_values`; 5.x (5.24 here) renamed it `cache` and keeps the old
name only behind a FutureWarning until 5.40 (which pyproject's `<6` admits). One place knows which
name a model takes, so generation and the masked passes neither warn on every call nor break there.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any


@functools.lru_cache(maxsize=None)
def _cache_name(model_class: type) -> str:
    params = inspect.signature(model_class.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def with_cache(model, cache) -> dict[str, Any]:
    """The forward keyword argument that passes `cache` to `model`."""
    return {_cache_name(type(model)): cache}


def returned_cache(out) -> Any:
    """The key/value cache a forward returned (`cache`, else the older `past_key_values`)."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values
