"""Check (default) or refresh the summary and verdict of committed ablation result folders from
their results.json: summary.json must equal what experiments.ablation_report generates, and the
README must carry every verdict sentence of results.json.

    python bench/ablation_summary.py docs/results/*-ablation-*          # check; exit 1 on a mismatch
    python bench/ablation_summary.py --write docs/results/<folder>     # after a change of the rule:
        rewrites summary.json and the overall verdict in results.json and README.md
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.ablation_report import problems, refresh


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--write", action="store_true", help="refresh instead of checking")
    args = parser.parse_args(argv)
    bad = 0
    for folder in args.folders:
        if not (folder / "summary.json").is_file():
            raise SystemExit(f"{folder}: no summary.json (not an ablation result folder)")
        if args.write:
            refresh(folder)
        for p in problems(folder):
            print(f"{folder}: {p}")
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
