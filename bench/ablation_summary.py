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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments.ablation_report import summarise  # noqa: E402
from solargen import io  # noqa: E402


def problems(folder: Path) -> list[str]:
    """What in `folder` disagrees with its results.json (empty: all agree)."""
    results = io.read_json(folder / "results.json")
    summary, overall = summarise(results)
    readme = (folder / "README.md").read_text()
    out = []
    if io.read_json(folder / "summary.json") != summary:
        out.append("summary.json differs from the one generated from results.json")
    if results["verdicts"][0] != overall:
        out.append("results.json's overall verdict differs from the one generated from its comparisons")
    out += [f"README.md lacks the verdict {v[:60]!r}..." for v in results["verdicts"] if v not in readme]
    return out


def refresh(folder: Path) -> None:
    """Rewrite summary.json and the overall verdict (results.json, README.md) by the current rule."""
    results = io.read_json(folder / "results.json")
    summary, overall = summarise(results)
    old = results["verdicts"][0]
    readme = (folder / "README.md").read_text()
    if old not in readme:
        raise SystemExit(f"{folder}/README.md: its overall verdict is not the one in results.json")
    results["verdicts"][0] = overall
    io.write_json(folder / "results.json", results)
    io.write_json(folder / "summary.json", summary)
    io.write_text(folder / "README.md", readme.replace(old, overall))


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
