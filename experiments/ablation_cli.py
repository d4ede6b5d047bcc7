"""`solargen ablate`: run (or resume, or plan) an augmentation ablation from a YAML config."""
from __future__ import annotations

import argparse
from pathlib import Path

from solargen.config import add_config_arguments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ablate", help="augmentation ablation: strategies x N x sets x seeds x "
                                      "folds x models, resumable, with a report")
    add_config_arguments(p, "ablation (configs/ablation/<experiment>.yaml); required,")
    p.add_argument("--out", required=True, type=Path,
                   help="output dir: cells/, models/, cache/, report.md, results.json, figures/")
    p.add_argument("--executor", default="local", choices=("local", "ray"),
                   help="run the cells in this process, or as Ray tasks (resources from the config's "
                        "`resources` section)")
    p.add_argument("--address", help="with --executor ray: a running cluster (auto, ray://host:10001); "
                                     "default: start a local Ray instance")
    p.add_argument("--no-estimate", action="store_true",
                   help="with --dry-run: skip the timing measurements behind the cost estimate")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from experiments.ablation import AblationError, load_ablation_config
    from experiments.ablation_runner import run_ablation
    if not args.config:
        raise AblationError("--config is required (configs/ablation/<experiment>.yaml)")
    config = load_ablation_config(args.config, args.set)
    result = run_ablation(config, args.out, dry_run=args.dry_run, estimate=not args.no_estimate,
                          executor=args.executor, address=args.address)
    if args.dry_run:
        print(result["plan"], end="")
        return 0
    print(f"{len(result['cells'])} cells: {len(result['ran'])} run now, {result['skipped']} "
          f"already finished; report: {result['report']['report']}")
    return 0
