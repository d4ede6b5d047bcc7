"""`solargen` command line: a thin layer of argument parsing over library functions.

Each command group lives in its own module exposing `register(subparsers)`; the module's
handlers are set with `parser.set_defaults(func=...)` and receive the parsed arguments.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# Modules that contribute subcommands, in the order they appear in --help.
COMMAND_MODULES: tuple[str, ...] = (
    "solargen.data.cli",
    "solargen.diffusion.cli",
    "eval.cli",
    "forecasting.cli",
    "solargen.quickstart_cli",
    "forecasting.ablation_cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="solargen",
        description="Generative augmentation studio for solar-flare forecasting.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError, KeyError, ImportError) as exc:
        # Library errors carry the file and the problem; show them without a traceback.
        print(f"solargen {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
