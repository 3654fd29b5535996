"""The method registry: name -> attribution method class, filled by `@register` as each family's
module is imported (heta_lite/methods/__init__.py imports them all)."""
from __future__ import annotations

from typing import Callable

from ..errors import InputError
from .base import AttributionMethod

METHODS: dict[str, type[AttributionMethod]] = {}


def register(cls: type[AttributionMethod]) -> type[AttributionMethod]:
    if cls.name in METHODS:
        raise ValueError(f"method {cls.name!r} registered twice")
    METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> AttributionMethod:
    if name not in METHODS:
        raise InputError(f"Unknown method {name!r}; available: {', '.join(sorted(METHODS))}.", "method")
    return METHODS[name]()


def method_names() -> list[str]:
    return sorted(METHODS)


Factory = Callable[[], AttributionMethod]
