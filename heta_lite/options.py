"""One declaration per knob: a dataclass field with an `Option` in its metadata.

Every surface is generated from that declaration, so a knob is spelled out once:
- validation (`check_options`, called from the dataclass's `__post_init__`),
- CLI flags (`add_arguments`, `values_from_args`: argparse),
- the REST API's request model (gui/serving/schemas.py builds it with pydantic from `options_of`),
- run.py's server flags (gui/server_settings.py declares `ServerSettings` the same way).

A field without an `Option` is internal (not a user knob) and appears on no surface.
"""
from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from .errors import InputError


@dataclass(frozen=True)
class Option:
    """How one dataclass field is offered to users.

    help: one line for `--help` and the API docs.
    flag: the CLI flag (default: --field-name); cli=False hides it from the CLI.
    choices: allowed values; low/high: inclusive numeric bounds (low_open: strictly above low).
    api_high: a tighter upper bound for the public API (a shared server caps cost per request);
    api=False hides the knob from the API.
    """

    help: str
    flag: str | None = None
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    api_high: float | None = None
    cli: bool = True
    api: bool = True
    negate_flag: str | None = None  # booleans that default to True: a --no-x flag that stores False
    multiple: bool = False  # a repeatable flag collecting a list (argparse action="append")
    metavar: str | None = None


def option(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING, **kw: Any):
    """A dataclass field carrying its `Option` (the one declaration of a knob)."""
    meta = {"option": Option(**kw)}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def options_of(cls) -> list[tuple[dataclasses.Field, Option]]:
    """(field, option) for each declared knob of a dataclass, in declaration order."""
    return [(f, f.metadata["option"]) for f in dataclasses.fields(cls) if "option" in f.metadata]


def flag_of(f: dataclasses.Field, opt: Option) -> str:
    return opt.flag or "--" + f.name.replace("_", "-")


def check_options(obj: Any) -> None:
    """Validate every declared field of `obj` against its choices and bounds (None = unset, allowed
    where the default is None). One message shape for every knob: it names the field."""
    for f, opt in options_of(type(obj)):
        value = getattr(obj, f.name)
        if value is None and f.default is None or opt.multiple:
            continue
        if opt.choices is not None and value not in opt.choices:
            raise InputError(f"{f.name} must be one of {tuple(opt.choices)}, got {value!r}.", f.name)
        if opt.low is None and opt.high is None:
            continue
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise InputError(f"{f.name} must be a number, got {value!r}.", f.name) from None
        too_low = opt.low is not None and (x <= opt.low if opt.low_open else x < opt.low)
        too_high = opt.high is not None and x > opt.high
        if too_low or too_high or x != x:
            lo = "" if opt.low is None else (f"above {opt.low:g}" if opt.low_open else f"at least {opt.low:g}")
            hi = "" if opt.high is None else f"at most {opt.high:g}"
            rule = " and ".join(p for p in (lo, hi) if p)
            raise InputError(f"{f.name} must be {rule}, got {value!r}.", f.name)


def value_type(cls, name: str) -> type:
    """The plain Python type of a field (Optional and Literal unwrapped): bool, int, float or str."""
    t = typing.get_type_hints(cls)[name]
    args = [a for a in typing.get_args(t) if a is not type(None)]
    if typing.get_origin(t) is typing.Literal:
        return type(args[0])
    if args and typing.get_origin(t) is not None:  # X | None
        return value_type_of(args[0])
    return value_type_of(t)


def value_type_of(t: Any) -> type:
    if typing.get_origin(t) is typing.Literal:
        return type(typing.get_args(t)[0])
    return t if t in (bool, int, float) else str


def add_arguments(parser: argparse.ArgumentParser, cls, defaults: dict[str, Any] | None = None,
                  skip: tuple[str, ...] = (), default_notes: dict[str, str] | None = None) -> None:
    """One argparse flag per declared knob of `cls`. `defaults`: a parser default per field; a knob
    without one is left out of the namespace unless given (so the dataclass or a preset decides),
    and its help names the declared default (or `default_notes[field]`, e.g. 'set by --quality')."""
    defaults, default_notes = defaults or {}, default_notes or {}
    for f, opt in options_of(cls):
        if not opt.cli or f.name in skip:
            continue
        if opt.negate_flag:
            parser.add_argument(opt.negate_flag, dest=f.name, action="store_false", default=argparse.SUPPRESS,
                                help=opt.help)
            continue
        default = defaults.get(f.name, argparse.SUPPRESS)
        note = default_notes.get(f.name) or (f"default: {f.default}" if f.default is not None else "")
        help_text = opt.help if default is not argparse.SUPPRESS or not note else f"{opt.help} ({note})"
        if opt.multiple:
            parser.add_argument(flag_of(f, opt), dest=f.name, action="append", default=default, help=help_text,
                                metavar=opt.metavar)
            continue
        kind = value_type(cls, f.name)
        if kind is bool:
            parser.add_argument(flag_of(f, opt), dest=f.name, action="store_true", default=default, help=help_text)
            continue
        kw: dict[str, Any] = {"dest": f.name, "default": default, "help": help_text, "type": kind}
        if opt.choices is not None:
            kw["choices"] = list(opt.choices)
        if opt.metavar:
            kw["metavar"] = opt.metavar
        parser.add_argument(flag_of(f, opt), **kw)


def values_from_args(cls, args: argparse.Namespace) -> dict[str, Any]:
    """{field: value} for every declared knob of `cls` that the parsed args set (None = unset)."""
    return {f.name: getattr(args, f.name) for f, opt in options_of(cls)
            if opt.cli and hasattr(args, f.name) and getattr(args, f.name) is not None}
