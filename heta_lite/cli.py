"""`heta-lite` command line. Each built-in subcommand lives in heta_lite/commands/<name>.py and
exposes `add_parser(subparsers)`; the parser's `func(args) -> int` runs it.

Commands from packages above the core plug in through the `heta_lite.commands` entry-point group
(each entry point names an `add_parser` function): `quant-compare` is quant/command.py, declared in
pyproject.toml. The core never imports those packages by name, so it installs and runs without
them; `pip install -e .` (`make setup`) writes the entry points.

Bad input exits with status 2 and one line on stderr; never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from importlib.metadata import entry_points

from .errors import HetaError

COMMANDS = ["explain", "correct", "batch", "eval", "models", "validate"]
PLUGIN_GROUP = "heta_lite.commands"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="heta-lite", description="Explain one prediction of a decoder-only LLM (HETA).")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"heta_lite.commands.{name.replace('-', '_')}").add_parser(sub)
    for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        try:
            add_parser = ep.load()
        except ImportError as err:  # a broken plugin must not take the core commands down with it
            print(f"heta-lite: command '{ep.name}' is unavailable: {err}", file=sys.stderr)
            continue
        add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        _quiet_libraries()
    try:
        return int(args.func(args) or 0)
    except HetaError as err:
        print(f"heta-lite: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("heta-lite: interrupted", file=sys.stderr)
        return 130


def _quiet_libraries() -> None:
    import os

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass
    # bitsandbytes warns at import about optional CPU kernels ('kernels' package) we do not use
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)


if __name__ == "__main__":
    sys.exit(main())
