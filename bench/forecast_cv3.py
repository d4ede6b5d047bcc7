"""Forecasters beside their floors over folds x seeds (experiments.forecast_cv): a thin command line.

    python bench/forecast_cv3.py run --data data/aia3-2012-64 --runs runs/forecast-cv-3 \\
        --out docs/results/<date>-forecast-cv-cpu-3 [--recipes ...] [--seeds 0 1 2] [--folds f1 f2 f3]
    python bench/forecast_cv3.py report [--check] docs/results/<date>-forecast-cv-cpu-3

`run` trains what is missing (a killed run resumes), writes summary.json, the figures, README.md
(generated from summary.json) and command.txt; `report` re-renders README.md from summary.json
(`--check`: fail when the committed README differs).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from experiments import forecast_cv
from solargen import io
from solargen.data.dataset import load_dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--data", required=True)
    run.add_argument("--runs", type=Path, required=True)
    run.add_argument("--out", type=Path, required=True)
    run.add_argument("--recipes", nargs="+", default=["resnet-flux", "resnet-floor"],
                     choices=sorted(forecast_cv.RECIPES))
    run.add_argument("--tasks", nargs="+", default=["binary-24h"])
    run.add_argument("--folds-file", default="configs/folds/2012-rolling.yaml")
    run.add_argument("--folds", nargs="+", default=["f1", "f2", "f3"])
    run.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    report = sub.add_parser("report")
    report.add_argument("--check", action="store_true")
    report.add_argument("--note", action="append", default=None,
                        help="replace the README's notes (what was tried, what it means; no numbers "
                             "that summary.json does not hold) with these paragraphs, kept in summary.json")
    report.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    if args.command == "report":
        summary = io.read_json(args.folder / "summary.json")
        if args.note is not None and not args.check:
            summary["notes"] = args.note
            io.write_json(args.folder / "summary.json", summary)
        text = forecast_cv.render(summary)
        if args.check:
            same = (args.folder / "README.md").read_text() == text
            print("README.md matches summary.json" if same else "README.md differs from summary.json")
            return 0 if same else 1
        io.write_text(args.folder / "README.md", text)
        return 0
    tic = time.perf_counter()
    ds = load_dataset(args.data)
    study = forecast_cv.run_study(args.data, args.runs, args.recipes, args.tasks, args.folds_file,
                                  args.folds, args.seeds)
    config = forecast_cv.config_record(args.data, args.folds_file, args.folds, args.seeds, args.recipes,
                                       args.tasks, "SYNTHETIC" if ds.synthetic else "real")
    summary = forecast_cv.summarise(study, config)
    args.out.mkdir(parents=True, exist_ok=True)
    summary["figures"] = forecast_cv.figures(summary, args.runs, args.out)
    summary["invocation_wall_s"] = time.perf_counter() - tic     # this call (finished units reused)
    summary["provenance"] = io.provenance()
    io.write_json(args.out / "summary.json", summary)
    io.write_text(args.out / "README.md", forecast_cv.render(summary))
    io.write_command(args.out, summary["provenance"], notes=["2-core CPU, no GPU"])
    print(forecast_cv.render(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
