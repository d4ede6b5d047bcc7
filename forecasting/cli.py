"""`solargen forecast ...`: train, evaluate and cross-validate flare forecasters.

Settings resolve as: ForecastConfig defaults < --config YAML < flags given on the command line
< --set key=value overrides (solargen.config: one loader, typed, unknown keys are errors).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from forecasting.floors import SKLEARN_MODELS
from forecasting.losses import CLASS_WEIGHTINGS, LOSSES
from forecasting.models import MODELS
from forecasting.tasks import TASKS
from forecasting.config import AUGMENTS, CALIBRATIONS, MODEL_FLOORS, SAMPLINGS, ForecastConfig
from solargen.config import add_config_arguments, add_schema_flags, flag_overrides, to_yaml
from solargen.errors import SolargenError

def register(sub: argparse._SubParsersAction) -> None:
    forecast = sub.add_parser("forecast", help="train, evaluate and cross-validate flare forecasters")
    cmds = forecast.add_subparsers(dest="forecast_command", metavar="FORECAST_COMMAND",
                                   required=True)
    train = cmds.add_parser("train", help="train a forecaster on one fold (early stopping, resume)")
    _train_arguments(train)
    train.set_defaults(func=_run_train)

    cv = cmds.add_parser("cv", help="train + test on every fold; mean ± std table (cv.md)")
    _train_arguments(cv)
    cv.add_argument("--fold-names", help="comma-separated folds (default: all in --folds)")
    cv.add_argument("--no-floors", action="store_true",
                    help="skip the classical floors otherwise cross-validated beside the model")
    cv.set_defaults(func=_run_cv)

    ev = cmds.add_parser("evaluate", help="score a checkpoint on a dataset directory",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ev.add_argument("--checkpoint", required=True, type=Path, help="output dir of forecast train")
    ev.add_argument("--data", required=True, type=Path,
                    help="dataset dir (from `solargen data build` / `data synthetic`; a bundle "
                         ".npz becomes one with `solargen data build --images <bundle.npz>`)")
    ev.add_argument("--part", choices=("train", "val", "test"),
                    help="only this window of the checkpoint's training fold (default: all frames)")
    ev.add_argument("--out", type=Path, help="report dir (default: <checkpoint>/eval-<data name>)")
    ev.add_argument("--batch-size", type=int, default=64)
    ev.add_argument("--heatmaps", type=int, default=4, help="attention maps to draw (ViT models)")
    ev.set_defaults(func=_run_evaluate)


# Choices and help for the flags derived from ForecastConfig (every scalar field is a flag;
# lists and mappings through --set); `--loss` and `--class-weighting` name the loss section's keys.
CHOICES = {"model": sorted([*MODELS, *SKLEARN_MODELS]), "task": sorted(TASKS), "sampling": SAMPLINGS,
           "augment": AUGMENTS, "floor": MODEL_FLOORS, "calibration": CALIBRATIONS,
           "mixed_precision": ("auto", "no", "fp16", "bf16"), "loss.name": LOSSES,
           "loss.class_weighting": ("auto", *CLASS_WEIGHTINGS)}
ALIASES = {"loss": "loss.name", "class_weighting": "loss.class_weighting",
           "ib_start_epoch": "loss.ib_start_epoch"}
HELPS = {"data": "dataset directory", "out": "output (checkpoint) directory",
         "model": "a deep model or a classical floor", "size": "named model size (cpu, deit-ti, vit-b16, base, imagenet)",
         "folds": "folds YAML (default configs/folds/2012-rolling.yaml)", "fold": "fold name for train (default: the first)",
         "history": "frames per sample (0: the model's default)", "teacher": "deit distillation: CNN checkpoint dir ({fold} = fold name)",
         "encoder": "sequence models: frame-model checkpoint dir ({fold})", "crt_epochs": "> 0 adds classifier re-training (cRT)",
         "floor": "flux-history: the model contains that floor (needs --flux-input)",
         "calibration": "temperature: scaling fitted on validation, saved with the checkpoint"}


def _train_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, "forecaster (configs/forecast/*.yaml)")
    p.set_defaults(config_flags=add_schema_flags(p, ForecastConfig, CHOICES, HELPS, ALIASES))


def resolve_config(args: argparse.Namespace):
    from forecasting.config import load_forecast_config
    return load_forecast_config(args.config, [*flag_overrides(args, args.config_flags), *args.set])


def _check_required(config) -> None:
    missing = [f"--{name}" for name in ("data", "out") if not getattr(config, name)]
    if missing:
        raise SolargenError(f"missing {' and '.join(missing)} (flag, --set or --config file)")


def _run_train(args: argparse.Namespace) -> int:
    from forecasting.train import train

    config = resolve_config(args)
    if args.dry_run:
        print(to_yaml(config), end="")
        return 0
    _check_required(config)
    summary = train(config)
    print(f"best epoch {summary['best_epoch'] + 1} of {summary['epochs_run']}: val "
          f"{summary['val_metric']} = {summary['best_val_score']:.4f}")
    print(f"checkpoint: {config.out}  (evaluate with `solargen forecast evaluate --checkpoint "
          f"{config.out} --data <dataset dir>`)")
    return 0


def _run_cv(args: argparse.Namespace) -> int:
    from accelerate import PartialState

    from forecasting.evaluate import cross_validate, format_cv_table
    from solargen.data.splits import load_folds

    config = resolve_config(args)
    names = ([n.strip() for n in args.fold_names.split(",") if n.strip()] if args.fold_names
             else [f.name for f in load_folds(config.folds)])
    if args.dry_run:
        print(to_yaml(config), end="")
        print(f"folds: {names}")
        return 0
    _check_required(config)
    summary = cross_validate(config, names, with_floors=not args.no_floors)
    if PartialState().is_main_process:            # under accelerate launch: one table
        print(format_cv_table(summary, config))
    return 0


def _run_evaluate(args: argparse.Namespace) -> int:
    from forecasting.evaluate import evaluate_checkpoint

    out = args.out or args.checkpoint / f"eval-{args.data.name}{'-' + args.part if args.part else ''}"
    report = evaluate_checkpoint(args.checkpoint, args.data, out, part=args.part,
                                 batch_size=args.batch_size, heatmaps=args.heatmaps)
    s = report["scores"]
    head = (f"GMGS {s['gmgs']:.3f}, " if "gmgs" in s else "")
    event = TASKS[report["task"]].event_name
    print(f"{report['task']} on {args.data} ({s['n']} samples): {head}TSS {event} {s['ge_m']['tss']:.3f}, "
          f"HSS {event} {s['ge_m']['hss']:.3f}, BSS {event} {s['bss_ge_m']:.3f}")
    if s["collapsed"]:
        print("COLLAPSED: the forecast is one class for every sample (a constant forecast)")
    print(f"report: {out}")
    return 0
