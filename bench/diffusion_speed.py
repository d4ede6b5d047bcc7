"""Diffusion speed: training and sampling images/s at 64 and 128 px, against a plain loop.

    python bench/diffusion_speed.py                # full: S UNet, 64 and 128, all samplers (long)
    python bench/diffusion_speed.py --quick        # smoke: 64 px only, a few steps (< 1 minute)

Training is measured with solargen's own loop (`solargen.diffusion.train.train`: accelerate,
conditioning with label dropout, AdamW + cosine, EMA, clipping, per-step CSV log) on a random
dataset written to a temporary directory, and with the same UNet (no conditioning) in a plain
loop in the style of diffusers' unconditional training example (accelerate, DDPM add_noise, MSE,
AdamW, clipping, EMA). Both time the same number of steps after setup; the ratio says what the
solargen loop costs. Sampling is timed per sampler and step count with guidance 1 (one UNet pass
per step) and guidance 3 (one doubled batch). Writes JSON + a markdown table + command.txt to
docs/results/<date>-diffusion-speed/ (or --out).
"""
from __future__ import annotations

import argparse
import copy
import datetime as dt
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from solargen import io  # noqa: E402
from solargen.data.dataset import write_dataset  # noqa: E402
from solargen.diffusion.pipeline import UNetConfig, build_unet  # noqa: E402
from solargen.diffusion.run_config import DataConfig, DiffusionTrainConfig, RunConfig  # noqa: E402
from solargen.diffusion.train import _make_pipeline, build_models, train  # noqa: E402
from solargen.diffusion.training_data import load_training_data  # noqa: E402


def random_dataset(root: Path, n: int, size: int) -> Path:
    rng = np.random.default_rng(0)
    times = pd.date_range("2012-01-02", periods=n, freq="h", tz="UTC")
    flux = 10 ** rng.uniform(-7, -4.5, n)
    letters = np.array(["B", "C", "M"], dtype=object)[np.clip(np.floor(np.log10(flux)).astype(int) + 7, 0, 2)]
    frames = rng.uniform(-1, 1, (n, 1, size, size)).astype(np.float32)
    labels = pd.DataFrame({"t_obs": times, "goes_flux": flux, "goes_class": letters})
    meta = {"source": "bench (random frames)", "channels": ["171"], "size": size, "synthetic": True,
            "normalisation": {"scaling": "linear", "lo": [0.0], "hi": [255.0]}}
    write_dataset(root, frames, labels, meta, "random frames for timing\n")
    folds = root.parent / f"folds-{size}.yaml"
    folds.write_text("gap_hours: 72\nfolds:\n  - name: b\n    train: [2012-01-01, 2012-12-31]\n")
    return folds


def run_config(tmp: Path, size: int, model_size: str, batch: int, steps: int) -> RunConfig:
    folds = random_dataset(tmp / f"ds-{size}", max(4 * batch, 64), size)
    return RunConfig(
        output_dir=str(tmp / f"run-{size}"), seed=0,
        data=DataConfig(dataset=str(tmp / f"ds-{size}"), folds=str(folds), fold="b", drop_stale=False),
        model=UNetConfig(size=model_size, resolution=size, channels=1),
        train=DiffusionTrainConfig(conditioning="class", max_steps=steps, batch_size=batch, warmup_steps=1,
                          sample_every=0, checkpoint_every=0))


# Speed features of the training loop a CPU can use: NHWC memory format and bf16 autocast.
VARIANTS = {"default": {}, "channels_last": {"channels_last": True},
            "bf16": {"mixed_precision": "bf16"},
            "channels_last+bf16": {"channels_last": True, "mixed_precision": "bf16"}}


def time_solargen(cfg: RunConfig, variant: dict | None = None) -> float:
    """Images/s of solargen's training loop (setup and final save excluded), with a variant's
    train settings."""
    run = copy.deepcopy(cfg)
    for key, value in (variant or {}).items():
        setattr(run.train, key, value)
    run.output_dir = f"{cfg.output_dir}-{'-'.join(f'{k}' for k in (variant or {})) or 'default'}"
    from accelerate.state import AcceleratorState
    AcceleratorState._reset_state(reset_partial_state=True)   # one process, several precisions
    result = train(run, progress=False)
    return run.train.max_steps * run.train.batch_size / result.loop_seconds


def time_plain(cfg: RunConfig) -> float:
    """Images/s of a plain loop like diffusers' train_unconditional.py, same UNet, no conditioning."""
    from accelerate import Accelerator
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel

    from accelerate.state import AcceleratorState
    AcceleratorState._reset_state(reset_partial_state=True)
    accelerator = Accelerator()
    torch.manual_seed(0)
    unet = build_unet(cfg.model)
    unet.class_embedding = None  # the same UNet, unconditional (identity embedding has no weights)
    frames = torch.from_numpy(np.load(Path(cfg.data.dataset) / "frames.npy")).float()
    loader = torch.utils.data.DataLoader(frames, batch_size=cfg.train.batch_size, shuffle=True,
                                         drop_last=True)
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=cfg.train.learning_rate)
    lr = get_scheduler("cosine", optimizer, num_warmup_steps=1, num_training_steps=cfg.train.max_steps)
    ema = EMAModel(unet.parameters(), decay=0.9999, use_ema_warmup=True, power=0.75)
    unet, optimizer, loader, lr = accelerator.prepare(unet, optimizer, loader, lr)
    ema.to(accelerator.device)
    done, tic = 0, time.perf_counter()
    while done < cfg.train.max_steps:
        for clean in loader:
            noise = torch.randn_like(clean)
            t = torch.randint(0, 1000, (clean.shape[0],), device=clean.device)
            with accelerator.accumulate(unet):
                pred = unet(scheduler.add_noise(clean, noise, t), t).sample
                loss = torch.nn.functional.mse_loss(pred.float(), noise)
                accelerator.backward(loss)
                accelerator.clip_grad_norm_(unet.parameters(), 1.0)
                optimizer.step()
                lr.step()
                optimizer.zero_grad()
            ema.step(unet.parameters())
            done += 1
            if done >= cfg.train.max_steps:
                break
    return cfg.train.max_steps * cfg.train.batch_size / (time.perf_counter() - tic)


def time_sampling(cfg: RunConfig, sampler: str, steps: int, guidance: float, n: int) -> float:
    data, ds = load_training_data(cfg)
    torch.manual_seed(0)
    model = build_models(cfg, list(data.summary["class_counts"]))
    pipe = _make_pipeline(cfg, model, data, ds.meta)
    pipe.to("cuda" if torch.cuda.is_available() else "cpu")
    pipe.set_progress_bar_config(disable=True)
    classes = (pipe.known_classes * n)[:n]
    tic = time.perf_counter()
    pipe(flare_class=classes, guidance_scale=guidance, num_inference_steps=steps, sampler=sampler,
         generator=torch.Generator().manual_seed(0), output_type="pt")
    return n / (time.perf_counter() - tic)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="64 px, few steps: a smoke run")
    p.add_argument("--model-size", default="S")
    p.add_argument("--sizes", type=int, nargs="+", help="resolutions (default 64 128; quick: 64)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--train-steps", type=int, help="timed training steps (default 30; quick: 3)")
    p.add_argument("--samplers", nargs="+",
                   help="sampler:steps pairs (default dpm:20 ddim:50 ddpm:1000; quick: dpm:5 ddim:5)")
    p.add_argument("--sample-n", type=int, help="images per sampling run (default 8; quick: 2)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                   help="training-loop speed features to time against the plain loop")
    p.add_argument("--out", type=Path, help="results dir (default docs/results/<date>-diffusion-speed)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    sizes = args.sizes or ([64] if args.quick else [64, 128])
    train_steps = args.train_steps or (3 if args.quick else 30)
    samplers = args.samplers or (["dpm:5", "ddim:5"] if args.quick else ["dpm:20", "ddim:50", "ddpm:1000"])
    sample_n = args.sample_n or (2 if args.quick else 8)
    batch = min(args.batch, 4) if args.quick else args.batch
    out = args.out or ROOT / "docs" / "results" / f"{dt.date.today().isoformat()}-diffusion-speed"
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.processor() or platform.machine()})"

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            cfg = run_config(Path(tmp), size, args.model_size, batch, train_steps)
            plain = time_plain(cfg)
            for name in args.variants:
                ours = time_solargen(cfg, VARIANTS[name])
                rows.append({"what": "train", "size": size, "variant": name, "solargen_img_s": round(ours, 3),
                             "plain_img_s": round(plain, 3), "ratio": round(ours / plain, 3),
                             "batch": batch, "steps": train_steps})
                print(rows[-1], flush=True)
            for spec in samplers:
                name, steps = spec.split(":")
                for guidance in (1.0, 3.0):
                    speed = time_sampling(cfg, name, int(steps), guidance, sample_n)
                    rows.append({"what": "sample", "size": size, "sampler": name, "steps": int(steps),
                                 "guidance": guidance, "img_s": round(speed, 4), "n": sample_n})
                    print(rows[-1], flush=True)
    n_params = sum(x.numel() for x in build_unet(UNetConfig(size=args.model_size)).parameters())
    result = {"device": device, "torch_threads": args.threads, "model_size": args.model_size,
              "unet_params_64": n_params, "quick": args.quick, "rows": rows, **io.provenance()}
    io.write_json(out / "speed.json", result)
    io.write_command(out, result)
    io.write_text(out / "report.md", markdown(result))
    print(markdown(result))
    print(f"wrote {out}")
    return 0


def markdown(result: dict) -> str:
    lines = [f"# Diffusion speed ({result['device']}, {result['torch_threads']} threads, UNet "
             f"{result['model_size']}{', QUICK smoke run' if result['quick'] else ''})", "",
             "| size | solargen loop variant | training img/s (solargen) | plain loop img/s | ratio | batch | steps |",
             "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        if r["what"] == "train":
            lines.append(f"| {r['size']} | {r['variant']} | {r['solargen_img_s']} | {r['plain_img_s']} | "
                         f"{r['ratio']} | {r['batch']} | {r['steps']} |")
    train = [r for r in result["rows"] if r["what"] == "train"]
    if train:
        best = max(train, key=lambda r: r["ratio"])
        lines += ["", f"Fastest variant: {best['variant']} at {best['size']} px, {best['ratio']:.2f}x the plain "
                  f"loop (goal >= 1.3x: {'met' if best['ratio'] >= 1.3 else 'missed'})."]
    lines += ["", "| size | sampler | steps | guidance | img/s | n |", "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        if r["what"] == "sample":
            lines.append(f"| {r['size']} | {r['sampler']} | {r['steps']} | {r['guidance']:g} | "
                         f"{r['img_s']} | {r['n']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
