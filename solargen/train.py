"""`accelerate launch -m solargen.train --config configs/ddpm-64-class.yaml [--resume latest]`:
the same code as `solargen train`, as a module accelerate can launch on CPU, one or many GPUs."""
from __future__ import annotations

import argparse
import sys

from solargen.diffusion.cli import add_train_arguments, run_train
from solargen.errors import SolargenError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m solargen.train",
                                     description="Train the conditional diffusion model.")
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_train(args)
    except (SolargenError, FileNotFoundError) as exc:   # a user error; bugs show their traceback
        print(f"solargen train: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
