"""`solargen app` and `python app.py`: the options of the Gradio studio, parsed without importing
Gradio (application/app.py is imported only to serve)."""
from __future__ import annotations

import argparse
import sys

from solargen.errors import SolargenError


def add_app_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="pipeline directory (default: the last `solargen quickstart` model)")
    p.add_argument("--dataset", help="real dataset directory for the real frames and std maps "
                                     "(default: the model's training dataset when present)")
    p.add_argument("--classifier", help="fidelity classifier directory (<eval out>/models/classifier)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (loopback by default)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--concurrency", type=int, default=2, help="generations running at once (queue)")
    p.add_argument("--device", default="auto", help="where to sample: auto (the GPU when present), cpu, cuda")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("app", help="open the Gradio studio (default model: the quickstart's)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_app_arguments(p)
    p.set_defaults(func=run_app_command)


def run_app_command(args: argparse.Namespace) -> int:
    from application.app import serve
    return serve(args)


def main(argv: list[str] | None = None) -> int:
    """`python app.py [options]`; a user error is one line, as with `solargen app`."""
    parser = argparse.ArgumentParser(prog="python app.py", description="The solargen studio (Gradio).",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_app_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_app_command(args)
    except SolargenError as exc:
        print(f"app: error: {exc}", file=sys.stderr)
        return 2
