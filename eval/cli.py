"""`solargen eval`: generative evaluation of a model directory, a PNG folder or an NPZ set.

Settings resolve as: EvalConfig defaults < --config YAML < flags < --set key=value.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from solargen.config import add_config_arguments, flag_overrides, to_yaml

# flag -> EvalConfig key (flags default to None so that a --config file is not overridden)
_EVAL_FLAGS = {
    "real": "real", "generated": "generated", "out": "out", "folds": "folds", "fold": "fold",
    "label_column": "label_column", "flux_column": "flux_column", "set_size": "set_size",
    "n_sets": "n_sets", "k": "k", "device": "device", "seed": "seed", "latent_dim": "latent_dim",
    "balanced_per_class": "balanced_per_class", "guidance_scale": "guidance_scale",
    "steps": "num_inference_steps", "sampler": "sampler", "epochs": "train.epochs",
    "batch_size": "train.batch_size",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="FID, cluster metrics, classifier fidelity, std maps, novelty, "
                                    "faithfulness of generated frames against a real dataset")
    add_config_arguments(p, "evaluation (EvalConfig fields)")
    p.add_argument("--real", help="real dataset directory (solargen data build)")
    p.add_argument("--generated", help="pipeline directory | folder of PNG (+ labels.csv) | synthetic-set .npz")
    p.add_argument("--out", help="output directory (report.md, metrics.json, figures/)")
    p.add_argument("--folds", help="folds YAML (default auto: the one the generator was trained "
                                   "with, else configs/folds/2012-rolling.yaml)")
    p.add_argument("--fold", help="fold whose train split the generator and the evaluation networks "
                                  "learn from (default auto: the generator's, else f1)")
    p.add_argument("--label-column", help="class column of labels.parquet (default auto: the "
                                          "generated set's metadata, else goes_class)")
    p.add_argument("--flux-column", help="flux column (default auto: the metadata, else the label "
                                         "column's flux twin)")
    p.add_argument("--set-size", type=int, help="N per set (default min(1000, half the labelled training frames))")
    p.add_argument("--n-sets", type=int, help="repeated generated sets (mean ± std; default 5)")
    p.add_argument("--k", type=int, help="clusters (default one per class in the real reference set)")
    p.add_argument("--features", help="FID feature spaces, comma-separated (default inception,domain)")
    p.add_argument("--device", help="torch device for every network: auto (default; the GPU when "
                                    "present), cpu, cuda, cuda:1")
    p.add_argument("--seed", type=int, help="default 0")
    p.add_argument("--epochs", type=int, help="epochs of the encoder/classifier/regressor (default 10)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--latent-dim", type=int, help="domain encoder latent size (default 128)")
    p.add_argument("--balanced-per-class", type=int, help="model directories: generated frames per "
                                                          "class for fidelity (default 200)")
    p.add_argument("--guidance-scale", type=float, help="model directories: CFG scale (default 3)")
    p.add_argument("--steps", type=int, help="model directories: sampling steps (default 20)")
    p.add_argument("--sampler", help="model directories: a sampler name (default dpm)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from eval.generated import EvalError
    from eval.report import load_eval_config, run_evaluation
    overrides = flag_overrides(args, _EVAL_FLAGS)
    if args.seed is not None:
        overrides.append(f"train.seed={args.seed}")
    if args.features is not None:
        spaces = [s.strip() for s in args.features.split(",") if s.strip()]
        overrides.append(f"feature_spaces={spaces}")
    config = load_eval_config(args.config, [*overrides, *args.set])
    if args.dry_run:
        print(to_yaml(config), end="")
        return 0
    missing = [f"--{k}" for k in ("real", "generated", "out") if not getattr(config, k)]
    if missing:
        raise EvalError(f"missing {' and '.join(missing)} (flag, --set or --config file)")
    run_evaluation(config)
    print(f"report: {Path(config.out) / 'report.md'}\nmetrics: {Path(config.out) / 'metrics.json'}")
    return 0
