"""`solargen quickstart`: the main job on the embedded default."""
from __future__ import annotations

import argparse

from solargen.config import add_config_arguments, load_config, to_yaml


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quickstart", help="synthetic data -> diffusion model -> samples -> evaluation "
                                          "-> ablation -> one report (CPU, offline)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       description="Run solargen's main job end to end; a second run reuses every "
                                   "finished stage. Presets are documented in application/quickstart.py.")
    p.add_argument("--out", default="runs/quickstart", help="output directory")
    p.add_argument("--data", default="", help="a dataset directory (`solargen data build`) instead of "
                                              "the synthetic default; larger defaults apply")
    p.add_argument("--tiny", action="store_true", help="seconds-long run with every artefact (tests)")
    p.add_argument("--folds", help="folds YAML (default: derived from the data for the synthetic "
                                   "default, configs/folds/2012-rolling.yaml with --data)")
    p.add_argument("--fold", help="fold whose training split the model learns from (default f1)")
    p.add_argument("--train-steps", type=int, help="diffusion training steps (overrides the preset)")
    p.add_argument("--seed", type=int, help="seed of every stage (default 0)")
    add_config_arguments(p, "quickstart (QuickstartConfig fields; applied over the preset)")
    p.set_defaults(func=run_quickstart_command)


def run_quickstart_command(args: argparse.Namespace) -> int:
    from application.quickstart import QuickstartConfig, preset, run_quickstart, summary
    changes = {k: v for k, v in (("folds", args.folds), ("fold", args.fold), ("seed", args.seed))
               if v is not None}
    config = load_config(QuickstartConfig, args.config, args.set,
                         base=preset(out=args.out, data=args.data, tiny=args.tiny, **changes))
    if args.train_steps is not None:
        config.train_overrides = [*config.train_overrides, f"train.max_steps={args.train_steps}"]
    if args.dry_run:
        print(to_yaml(config), end="")
        return 0
    run_quickstart(config)
    print(summary(config))
    return 0
