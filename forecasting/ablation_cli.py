"""`solargen ablate`: run (or resume, or plan) an augmentation ablation from a YAML config."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ablate", help="augmentation ablation: strategies x N x sets x seeds x "
                                      "folds x models, resumable, with a report")
    p.add_argument("--config", required=True, type=Path,
                   help="ablation YAML (configs/ablation/<experiment>.yaml)")
    p.add_argument("--out", required=True, type=Path,
                   help="output dir: cells/, models/, cache/, report.md, results.json, figures/")
    p.add_argument("--dry-run", action="store_true",
                   help="print the resolved config, the cells and their estimated cost; run nothing")
    p.add_argument("--no-estimate", action="store_true",
                   help="with --dry-run: skip the timing measurements behind the cost estimate")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from forecasting.ablation import load_ablation_config, run_ablation
    config = load_ablation_config(args.config)
    result = run_ablation(config, args.out, dry_run=args.dry_run, estimate=not args.no_estimate)
    if args.dry_run:
        print(result["plan"], end="")
        return 0
    print(f"{len(result['cells'])} cells: {len(result['ran'])} run now, {result['skipped']} "
          f"already finished; report: {result['report']['report']}")
    return 0
