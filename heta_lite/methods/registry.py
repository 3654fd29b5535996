"""The method registry: name -> attribution method class, filled by `@register` as each family's
module is imported (heta_lite/methods/__init__.py imports them all)."""
from __future__ import annotations

import dataclasses
from typing import Callable

from ..errors import InputError
from ..settings import HetaSettings
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


def method_configs() -> dict[str, type]:
    """name -> config dataclass of every method that declares its own knobs."""
    return {name: cls.config for name, cls in sorted(METHODS.items()) if cls.config is not None}


def method_option_names() -> frozenset[str]:
    """Every knob any method declares (the keys settings.extra may hold)."""
    return frozenset(f.name for cfg in method_configs().values() for f in dataclasses.fields(cfg))


def configure(method: str, settings: HetaSettings) -> HetaSettings:
    """`settings` as `method` runs them: its own knobs in `extra`, validated, defaults filled."""
    return get_method(method).configure(settings, method_option_names())


Factory = Callable[[], AttributionMethod]
