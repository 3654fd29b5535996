"""The frame and the chosen gate are the default on every surface (issue #14): each surface builds
its settings from HetaSettings' one declaration, and this checks that none of them overrides it.
The page's selects and API requests: tests/gui/test_gui_defaults.py."""
import pytest

from heta_lite.cli import build_parser
from heta_lite.commands.common import settings_from_args
from heta_lite.settings import QUALITIES, HetaSettings

EXPECTED = {"frame": "auto", "gate": "last-quarter"}  # the spec's frame; the gate the dev half chose


def _pick(s: HetaSettings) -> dict:
    return {"frame": s.frame, "gate": s.gate}


def test_the_declared_defaults_are_the_frame_and_the_chosen_gate():
    assert _pick(HetaSettings()) == EXPECTED


@pytest.mark.parametrize("quality", QUALITIES)
def test_every_preset_keeps_them(quality):  # eval, quant-compare and the benchmarks start from a preset
    assert _pick(HetaSettings.preset(quality)) == EXPECTED


@pytest.mark.parametrize("argv", [["explain", "--prompt", "x"], ["batch", "--input", "a", "--out", "b"],
                                  ["eval", "--dataset", "d", "--out", "o"]])
def test_cli_commands_default_to_them(argv):
    assert _pick(settings_from_args(build_parser().parse_args(argv))) == EXPECTED
