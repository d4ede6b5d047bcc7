"""`solargen eval`: generative evaluation of a model directory, a PNG folder or an NPZ set.

Settings resolve as: EvalConfig defaults < --config YAML < flags < --set key=value.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from solargen.config import add_config_arguments, add_schema_flags, flag_overrides, to_yaml

# Flags derived from EvalConfig (every scalar field; the `train` section's as --train-*), with
# the short names users know; --seed sets both seeds, --features the list of FID feature spaces.
ALIASES = {"steps": "num_inference_steps", "epochs": "train.epochs", "batch_size": "train.batch_size"}
HELPS = {
    "real": "real dataset directory (solargen data build)",
    "generated": "pipeline directory | folder of PNG (+ labels.csv) | synthetic-set .npz",
    "out": "output directory (report.md, metrics.json, figures/)",
    "folds": "folds YAML (default auto: the one the generator was trained with, else configs/folds/2012-rolling.yaml)",
    "fold": "fold whose train split the generator and the evaluation networks learn from (default auto: the generator's, else f1)",
    "label_column": "class column of labels.parquet (default auto: the generated set's metadata, else goes_class)",
    "flux_column": "flux column (default auto: the metadata, else the label column's flux twin)",
    "set_size": "N per set (default min(1000, half the labelled training frames))",
    "n_sets": "repeated generated sets (mean ± std; default 5)",
    "k": "clusters (default one per class in the real reference set)",
    "device": "torch device for every network: auto (default; the GPU when present), cpu, cuda, cuda:1",
    "seed": "default 0 (also the evaluation networks' seed)",
    "train.epochs": "epochs of the encoder/classifier/regressor (default 10)",
    "latent_dim": "domain encoder latent size (default 128)",
    "balanced_per_class": "model directories: generated frames per class for fidelity (default 200)",
    "guidance_scale": "model directories: CFG scale (default 3)",
    "num_inference_steps": "model directories: sampling steps (default 20)",
    "sampler": "model directories: a sampler name (default dpm)",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="FID, cluster metrics, classifier fidelity, std maps, novelty, "
                                    "faithfulness of generated frames against a real dataset")
    add_config_arguments(p, "evaluation (EvalConfig fields)")
    from eval.report import EvalConfig
    flags = add_schema_flags(p, EvalConfig, helps=HELPS, aliases=ALIASES, skip=("train.seed",))
    p.add_argument("--features", help="FID feature spaces, comma-separated (default inception,domain)")
    p.set_defaults(config_flags=flags)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from eval.generated import EvalError
    from eval.report import load_eval_config, run_evaluation
    overrides = flag_overrides(args, args.config_flags)
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
