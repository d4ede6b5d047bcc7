"""`solargen train` and `solargen sample`: the conditional diffusion model from the command line."""
from __future__ import annotations

import argparse
from pathlib import Path

from solargen.config import add_config_arguments, flag_overrides
from solargen.diffusion.pipeline import DEFAULT_STEPS, SAMPLERS
from solargen.diffusion.sample import MIN_CLASS_FRAMES


def register(sub: argparse._SubParsersAction) -> None:
    _register_train(sub)
    _register_sample(sub)


TRAIN_FLAGS = {"output_dir": "output_dir", "dataset": "data.dataset", "fold": "data.fold",
               "max_steps": "train.max_steps"}


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, "training (configs/ddpm-*.yaml)")
    p.add_argument("--output-dir", help="override output_dir of the config")
    p.add_argument("--dataset", help="override data.dataset (a dataset directory)")
    p.add_argument("--fold", help="override data.fold")
    p.add_argument("--max-steps", type=int, help="override train.max_steps")
    p.add_argument("--resume", metavar="latest|CHECKPOINT",
                   help="continue from the newest checkpoint in output_dir ('latest') or a given one")


def _register_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the class/flux-conditioned diffusion model (accelerate)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_train_arguments(p)
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from solargen.diffusion.run_config import dry_run, load_config
    from solargen.diffusion.train import train
    cfg = load_config(args.config, [*flag_overrides(args, TRAIN_FLAGS), *args.set])
    if args.dry_run:
        print(dry_run(cfg), end="")
        return 0
    train(cfg, resume=args.resume)
    return 0


def _register_sample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="generate a synthetic set (NPZ + PNG + FITS) from a trained pipeline",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, type=Path, help="pipeline directory (output_dir/pipeline)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--flare-class", nargs="+", help="GOES class letter(s); --n images of each")
    what.add_argument("--goes-flux", nargs="+", type=float, help="1-8 A flux(es) in W m^-2; --n images of each")
    what.add_argument("--balanced", action="store_true", help="--n images split equally over the model's classes")
    what.add_argument("--proportions", type=Path, metavar="DATASET",
                      help="--n images with the class mix of this dataset directory")
    what.add_argument("--unconditional", action="store_true", help="--n images from the null condition")
    p.add_argument("--n", type=int, default=16, help="images (per class/flux with --flare-class/--goes-flux)")
    p.add_argument("--scheduler", default="dpm", choices=tuple(SAMPLERS),
                   help=f"sampler (default steps: {DEFAULT_STEPS})")
    p.add_argument("--steps", type=int, help="sampling steps (default depends on the sampler)")
    p.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance scale (1 = none)")
    p.add_argument("--seed", type=int, default=0, help="image i uses seed + i")
    p.add_argument("--min-class-frames", type=int, default=MIN_CLASS_FRAMES,
                   help="refuse a requested class (--flare-class / --goes-flux) the generator saw fewer "
                        "training frames of (0: none)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:1 ...")
    p.add_argument("--no-png", action="store_true", help="skip per-image PNGs")
    p.add_argument("--no-fits", action="store_true", help="skip per-image FITS")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.set_defaults(func=run_sample)


def run_sample(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from solargen.data.goes import check_flux, flux_to_letter
    from solargen.diffusion.pipeline import PipelineError, SolarDiffusionPipeline, check_steps
    from solargen.diffusion import sample as S

    if args.n < 1:
        raise PipelineError(f"--n must be >= 1, got {args.n}")
    if args.steps is not None:
        check_steps(args.steps, 10 ** 9)
    for flux in args.goes_flux or []:
        check_flux(flux)
    pipeline = SolarDiffusionPipeline.from_pretrained(args.model)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    pipeline.to(device)
    if args.flare_class:
        conditions = {"flare_class": [c for c in args.flare_class for _ in range(args.n)]}
    elif args.goes_flux:
        conditions = {"goes_flux": [f for f in args.goes_flux for _ in range(args.n)]}
    elif args.balanced:
        conditions = S.balanced_conditions(pipeline, args.n, args.seed)
    elif args.proportions:
        conditions = S.proportional_conditions(pipeline, args.proportions, args.n, args.seed)
    else:
        conditions = {"n": args.n}
    if args.flare_class or args.goes_flux:     # a requested class; --balanced / --proportions draw them all
        letters = args.flare_class or [flux_to_letter(f) for f in args.goes_flux]
        S.check_class_frames(pipeline, letters, args.min_class_frames)
    result = S.sample_set(pipeline, seed=args.seed, batch_size=args.batch_size, sampler=args.scheduler,
                          num_inference_steps=args.steps, guidance_scale=args.guidance, **conditions)
    written = S.write_outputs(args.out, result, pipeline, str(args.model), png=not args.no_png,
                              fits=not args.no_fits)
    labels, counts = np.unique(result["flare_class"], return_counts=True)
    mix = ", ".join(f"{l or 'uncond'}: {c}" for l, c in zip(labels, counts))
    print(f"{len(result['images'])} images ({mix}) -> {written['npz']}")
    if pipeline.metadata.get("synthetic_training_data"):
        print("note: this model was trained on SYNTHETIC data; its samples are not solar results")
    return 0
