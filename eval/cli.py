"""`solargen eval`: generative evaluation of a model directory, a PNG folder or an NPZ set."""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="FID, cluster metrics, classifier fidelity, std maps, novelty, "
                                    "faithfulness of generated frames against a real dataset",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--real", required=True, help="real dataset directory (solargen data build)")
    p.add_argument("--generated", required=True,
                   help="pipeline directory | folder of PNG (+ labels.csv) | synthetic-set .npz")
    p.add_argument("--out", required=True, help="output directory (report.md, metrics.json, figures/)")
    p.add_argument("--folds", default="auto", help="folds YAML (auto: the one the generator was "
                                                   "trained with, else configs/folds/2012-rolling.yaml)")
    p.add_argument("--fold", default="auto", help="fold whose train split the generator and the "
                                                  "evaluation networks learn from (auto: the generator's, else f1)")
    p.add_argument("--label-column", default="auto",
                   help="class column of labels.parquet (auto: the generated set's metadata, else peak_class)")
    p.add_argument("--flux-column", default="auto",
                   help="flux column (auto: the metadata, else the label column's flux twin)")
    p.add_argument("--set-size", type=int, help="N per set (default min(1000, half the labelled training frames))")
    p.add_argument("--n-sets", type=int, default=5, help="repeated generated sets (mean ± std)")
    p.add_argument("--k", type=int, help="clusters (default one per class in the real reference set)")
    p.add_argument("--features", default="inception,domain", help="FID feature spaces")
    p.add_argument("--device", default="cpu", help="torch device for every network (cpu, cuda, cuda:1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=10, help="epochs of the encoder/classifier/regressor")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--latent-dim", type=int, default=128, help="domain encoder latent size")
    p.add_argument("--balanced-per-class", type=int, default=200,
                   help="model directories: generated frames per class for fidelity")
    p.add_argument("--guidance-scale", type=float, default=3.0, help="model directories: CFG scale")
    p.add_argument("--steps", type=int, default=20, help="model directories: sampling steps")
    p.add_argument("--sampler", default="dpm", help="model directories: ddpm | ddim | dpm")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from solargen.diffusion.autoencoder import FitConfig
    from eval.report import EvalConfig, run_evaluation
    config = EvalConfig(
        real=args.real, generated=args.generated, out=args.out, folds=args.folds, fold=args.fold,
        label_column=args.label_column, flux_column=args.flux_column, set_size=args.set_size,
        n_sets=args.n_sets, k=args.k,
        feature_spaces=tuple(s.strip() for s in args.features.split(",") if s.strip()),
        device=args.device, seed=args.seed, latent_dim=args.latent_dim,
        balanced_per_class=args.balanced_per_class, guidance_scale=args.guidance_scale,
        num_inference_steps=args.steps, sampler=args.sampler,
        train=FitConfig(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, device=args.device))
    if args.dry_run:
        print(json.dumps(asdict(config), indent=2))
        return 0
    run_evaluation(config)
    print(f"report: {Path(args.out) / 'report.md'}\nmetrics: {Path(args.out) / 'metrics.json'}")
    return 0
