"""Settings declared once (issue #15): every knob is a dataclass field with an `Option`, and the
validation, the CLI flags and the REST API's request model are generated from it. These tests
read the declaration and check each surface against it, so a knob added to one surface only, or a
bound that differs between surfaces, fails here."""
from __future__ import annotations

import argparse
import dataclasses

import pydantic
import pytest

from heta_lite.commands.common import add_settings_args, settings_from_args
from heta_lite.errors import InputError
from heta_lite.methods.gradient import IntegratedGradientsConfig
from heta_lite.methods.registry import configure, method_configs
from heta_lite.options import options_of
from heta_lite.settings import HetaSettings
from gui.serving.schemas import OptionsIn, settings_of

DECLARED = [(HetaSettings, f, o) for f, o in options_of(HetaSettings)] + \
    [(cfg, f, o) for cfg in method_configs().values() for f, o in options_of(cfg)]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    add_settings_args(p)
    return p


def _valid_other(cls, f, opt):
    """A valid value that differs from the field's default (so the test sees it arrive)."""
    if opt.choices is not None:
        return next(c for c in opt.choices if c != f.default)
    if f.type in ("bool",) or isinstance(f.default, bool):
        return not f.default
    if opt.low is not None:
        base = opt.low + (1 if opt.low_open or f.default == opt.low else 0)
        if f.default is not None:
            return type(f.default)(base + 1)
        return (int if str(f.type).startswith("int") else float)(base + 1)  # 'int | None' / 'float | None'
    return 7


def test_the_declaration_covers_every_user_knob():
    names = {f.name for _, f, _ in DECLARED}
    internal = {f.name for f in dataclasses.fields(HetaSettings)} - names
    assert internal == {"extra"}  # a method's own knobs: declared by the method's config (below)
    assert "ig_steps" in names


@pytest.mark.parametrize("cls,f,opt", [d for d in DECLARED if d[2].cli], ids=lambda v: getattr(v, "name", ""))
def test_each_declared_knob_is_a_cli_flag_that_reaches_the_settings(cls, f, opt):
    value = _valid_other(cls, f, opt)
    if opt.negate_flag:
        argv = [opt.negate_flag]
    else:
        argv = [opt.flag or "--" + f.name.replace("_", "-"), str(value)]
    s = settings_from_args(_parser().parse_args(argv))
    got = s.extra[f.name] if cls is not HetaSettings else getattr(s, f.name)
    assert got == value


def test_unset_flags_keep_the_preset():
    s = settings_from_args(_parser().parse_args(["--quality", "fast"]))
    assert s == HetaSettings.preset("fast")


@pytest.mark.parametrize("cls,f,opt", [d for d in DECLARED if d[2].high is not None or d[2].low is not None],
                         ids=lambda v: getattr(v, "name", ""))
def test_bounds_are_enforced_by_the_core_and_the_api_never_allows_more(cls, f, opt):
    if opt.high is not None:
        over = opt.high + 1 if isinstance(f.default, int) else opt.high * 2 + 1
        with pytest.raises(InputError) as err:
            cls(**{f.name: type(f.default)(over) if f.default is not None else over})
        assert err.value.field == f.name and f.name in str(err.value)
    if opt.api and opt.api_high is not None:
        ok, over = opt.api_high, opt.api_high + 1
        OptionsIn(**{f.name: ok})
        with pytest.raises(pydantic.ValidationError):
            OptionsIn(**{f.name: over})
        cls(**{f.name: type(f.default)(over) if f.default is not None else over})  # the core alone allows it
    if opt.low is not None:
        under = opt.low if opt.low_open else opt.low - 1
        with pytest.raises(InputError):
            cls(**{f.name: under})
        if opt.api:
            with pytest.raises(pydantic.ValidationError):
                OptionsIn(**{f.name: under})


def test_the_api_model_has_exactly_the_declared_public_knobs():
    public = {f.name for _, f, o in DECLARED if o.api}
    assert set(OptionsIn.model_fields) == public
    with pytest.raises(pydantic.ValidationError):
        OptionsIn(probe_batch=4)  # declared, not public (speed only)


def test_api_options_become_the_same_settings_as_cli_flags():
    api = settings_of("balanced", OptionsIn(num_probes=8, gate="norm-mixing", ig_steps=12, check=False))
    cli = settings_from_args(_parser().parse_args(
        ["--quality", "balanced", "--probes", "8", "--gate", "norm-mixing", "--ig-steps", "12", "--no-check"]))
    assert api == cli and api.extra == {"ig_steps": 12}


def test_a_method_config_is_filled_in_and_kept_per_method():
    s = HetaSettings(extra={"ig_steps": 5})
    assert configure("integrated_gradients", HetaSettings()).extra == {"ig_steps": IntegratedGradientsConfig().ig_steps}
    assert configure("integrated_gradients", s).extra == {"ig_steps": 5}
    assert configure("heta", s).extra == {}  # another method's knob is not heta's
    with pytest.raises(InputError, match="Unknown option"):
        configure("heta", HetaSettings(extra={"ig_stpes": 5}))  # a typo no method declares
    with pytest.raises(InputError, match="ig_steps"):
        configure("integrated_gradients", HetaSettings(extra={"ig_steps": 0}))
