"""Train the conditional diffusion model on one fold's training split with accelerate.

Model, optimiser, LR schedule, EMA and RNG states are saved by `accelerator.save_state` and restored
by `accelerator.load_state`; with the step order of solargen.diffusion.training_data, a run resumed
from a checkpoint continues exactly like one that was never interrupted, on any number of processes.

    output_dir/
      config.yaml            resolved run config (a resume must match it)
      data_summary.json      training frames, exclusions, class counts, processes, global batch
      log.csv                step, loss, lr, grad_norm, seconds (wall time since this call's
                             loop start); a row every `log_every` steps
      tb/                    TensorBoard events (when tensorboard is installed)
      samples/step-*.png     per-class sample grids (EMA weights)
      checkpoints/step-*     accelerator.save_state, last `keep_checkpoints`
      loss.png               loss curve
      latent_encoder/        class_latent models: the domain autoencoder of the training frames
      pipeline/              the final SolarDiffusionPipeline (EMA weights), written atomically
"""
from __future__ import annotations

import csv
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from solargen import config, io
from solargen.data.goes import GOES_CLASSES
from solargen.diffusion.conditioning import FlareConditioning
from solargen.diffusion.loss import DiffusionObjective, ObjectiveConfig, noise_scheduler
from solargen.diffusion.pipeline import (PIPELINE_FORMAT, SolarDiffusionPipeline, build_unet,
                                         time_embed_dim)
from solargen.diffusion.run_config import (RunConfig, TrainError, check_config, resolve_mixed_precision)
from solargen.diffusion.training_data import (BatchOrder, TrainingData, chunk, fit_latent_encoder, step_stream,
                                              load_training_data, step_generator)


# ----------------------------------------------------------------------------- model

class Denoiser(nn.Module):
    """UNet + conditioning as one module, so accelerate prepares (and DDP wraps) a single model."""

    def __init__(self, unet: nn.Module, conditioning: FlareConditioning):
        super().__init__()
        self.unet, self.conditioning = unet, conditioning

    def forward(self, noisy: torch.Tensor, t: torch.Tensor, class_index: torch.Tensor | None,
                log_flux: torch.Tensor | None, null: torch.Tensor,
                latent: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.conditioning(class_index, log_flux, null, latent)
        return self.unet(noisy, t, class_labels=emb).sample


def build_models(cfg: RunConfig, known_classes: list[str]) -> Denoiser:
    unet = build_unet(cfg.model)
    latent_dim = cfg.train.latent_dim if cfg.train.conditioning == "class_latent" else 0
    conditioning = FlareConditioning(kind=cfg.train.conditioning, embed_dim=time_embed_dim(unet),
                                     classes=GOES_CLASSES, known_classes=known_classes,
                                     latent_dim=latent_dim)
    return Denoiser(unet, conditioning)


# ----------------------------------------------------------------------------- checkpoints

def checkpoint_dirs(output_dir: Path) -> list[Path]:
    root = output_dir / "checkpoints"
    found = [p for p in root.glob("step-*") if p.is_dir() and (p / "training_state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def resolve_resume(output_dir: Path, resume: str | None) -> Path | None:
    if resume is None:
        return None
    if resume == "latest":
        found = checkpoint_dirs(output_dir)
        return found[-1] if found else None
    path = Path(resume)
    if not (path / "training_state.json").is_file():
        raise TrainError(f"{path}: not a training checkpoint (no training_state.json)")
    return path


# ----------------------------------------------------------------------------- training

@dataclass
class TrainResult:
    losses: dict[int, float]        # step (1-based) -> loss, for the steps run in this call
    pipeline_dir: Path | None
    start_step: int
    loop_seconds: float = 0.0       # wall time of the training steps (no setup, no final save)


def train(cfg: RunConfig, resume: str | None = None, stop_after: int | None = None,
          progress: bool = True) -> TrainResult:
    """Run (or continue) training. `stop_after` ends the process-equivalent of a kill after that
    step (no final save); used to test resumption."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel
    from tqdm.auto import tqdm

    check_config(cfg)
    out = Path(cfg.output_dir)
    t = cfg.train
    accelerator = Accelerator(mixed_precision=resolve_mixed_precision(t.mixed_precision),
                              gradient_accumulation_steps=t.gradient_accumulation_steps)
    processes, micro_batches = accelerator.num_processes, t.gradient_accumulation_steps
    main = accelerator.is_main_process
    checkpoint = resolve_resume(out, resume)
    _check_run_dir(out, cfg, resume, checkpoint, main)
    accelerator.wait_for_everyone()

    data, ds = load_training_data(cfg)
    if ds.size != cfg.model.resolution or len(ds.channels) != cfg.model.channels:
        raise TrainError(f"{ds.root}: frames are {len(ds.channels)} x {ds.size} x {ds.size} but the "
                         f"model is configured for {cfg.model.channels} x {cfg.model.resolution} x "
                         f"{cfg.model.resolution} (set model.channels / model.resolution)")
    summary = data.summary
    known = list(summary["class_counts"])
    if main:
        excluded = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in summary["excluded"].items())
        print(f"training on {summary['frames_used']} of {summary['frames_in_window']} frames of fold "
              f"{summary['fold']} ({summary['train_window'][0]} to {summary['train_window'][1]}); "
              f"excluded: {excluded or 'none'}; classes {summary['class_counts']}")
        io.write_json(out / "data_summary.json", {**summary, "processes": processes,
                                                  "gradient_accumulation_steps": micro_batches,
                                                  "global_batch": t.batch_size * processes * micro_batches})

    if t.conditioning == "class_latent":
        data.latent_encoder, data.latent = fit_latent_encoder(cfg, data, out / "latent_encoder", main)
        accelerator.wait_for_everyone()
    set_seed(cfg.seed)
    model = build_models(cfg, known)
    if data.latent is not None:
        model.conditioning.set_latent_distribution(data.class_index, data.latent)
    if t.channels_last:
        model = model.to(memory_format=torch.channels_last)
    objective = DiffusionObjective(cfg.objective)
    optimizer = torch.optim.AdamW(model.parameters(), lr=t.learning_rate, weight_decay=t.weight_decay)
    # accelerate steps a prepared scheduler once per process per optimiser step: count in those
    lr_schedule = get_scheduler("cosine", optimizer, num_warmup_steps=t.warmup_steps * processes,
                                num_training_steps=t.max_steps * processes)
    ema = EMAModel(model.parameters(), decay=t.ema_decay, use_ema_warmup=True, power=t.ema_power,
                   foreach=True)
    model, optimizer, lr_schedule = accelerator.prepare(model, optimizer, lr_schedule)
    accelerator.register_for_checkpointing(ema)
    ema.to(accelerator.device)

    start = 0
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
        ema.to(accelerator.device)
        start = int(io.read_json(checkpoint / "training_state.json")["step"])
        if main:
            print(f"resumed from {checkpoint} at step {start}")
    elif resume is not None and main:
        print(f"no checkpoint under {out / 'checkpoints'}; starting from step 0")

    global_batch = t.batch_size * processes * micro_batches
    order = BatchOrder(data.letters, global_batch, cfg.seed, t.balanced_sampling)
    shape = (global_batch, *data.frame_shape)
    logger = _Logger(out, start, main)
    unwrapped = accelerator.unwrap_model(model)
    if t.compile:
        unwrapped.unet.compile()
    dev = accelerator.device
    frames = data.frames.to(dev) if t.data_on_device else data.frames
    noise_device = frames.device if frames is not None else torch.device("cpu")
    stream = step_stream(data, order, range(start, t.max_steps), accelerator.process_index, processes,
                         micro_batches, t.batch_size, cfg.data.loader_workers) if cfg.data.stream else None
    memory_format = torch.channels_last if t.channels_last else torch.contiguous_format
    losses: dict[int, float] = {}
    bar = tqdm(range(start, t.max_steps), initial=start, total=t.max_steps, desc="train",
               disable=not (progress and accelerator.is_local_main_process))
    tic = time.perf_counter()
    model.train()
    for step in bar:
        batch = torch.from_numpy(order.indices(step))
        gen = step_generator(cfg.seed, step, noise_device)
        noise_all = torch.randn(shape, generator=gen, device=noise_device)
        timesteps_all = torch.randint(0, cfg.objective.num_train_timesteps, (global_batch,), generator=gen,
                                      device=noise_device)
        null_all = torch.rand(global_batch, generator=gen, device=noise_device) < t.p_uncond
        step_loss = torch.zeros((), device=dev)
        local = next(stream) if stream is not None else None
        for micro in range(micro_batches):
            rows = chunk(micro, accelerator.process_index, processes, t.batch_size)
            idx = batch[rows]
            x0 = (local[micro * t.batch_size:(micro + 1) * t.batch_size] if stream is not None
                  else frames[idx.to(noise_device)]).float().to(dev)
            noise, timesteps, null = noise_all[rows].to(dev), timesteps_all[rows].to(dev), null_all[rows].to(dev)
            with accelerator.accumulate(model):
                noisy = objective.add_noise(x0, noise, timesteps).contiguous(memory_format=memory_format)
                with accelerator.autocast():
                    pred = model(noisy, timesteps, data.class_index[idx].to(dev), data.log_flux[idx].to(dev),
                                 null, None if data.latent is None else data.latent[idx].to(dev))
                loss = objective.loss(pred, x0, noise, timesteps)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    grad_norm = accelerator.clip_grad_norm_(model.parameters(), t.grad_clip)
                optimizer.step()
                lr_schedule.step()
                optimizer.zero_grad(set_to_none=True)
            step_loss += loss.detach() / micro_batches
        ema.step(unwrapped.parameters())

        done = step + 1
        if done % t.log_every == 0 or done == t.max_steps or done == stop_after:
            value = accelerator.gather(step_loss[None]).mean().item()
            if not np.isfinite(value):
                raise TrainError(f"loss is {value} at step {done}; stopping (never skipped)")
            losses[done] = value
            logger.log(done, value, lr_schedule.get_last_lr()[0], float(grad_norm))
            bar.set_postfix(loss=f"{value:.4f}")
        if t.checkpoint_every and done % t.checkpoint_every == 0:
            _save_checkpoint(accelerator, out, done, t.keep_checkpoints)
            logger.flush()
        if t.sample_every and done % t.sample_every == 0:
            if main:
                with _ema_weights(ema, unwrapped):
                    _sample_grid(cfg, unwrapped, data, ds.meta, out / "samples" / f"step-{done:07d}.png")
            accelerator.wait_for_everyone()
        if stop_after is not None and done >= stop_after:
            logger.close()
            return TrainResult(losses, None, start, time.perf_counter() - tic)
    elapsed = time.perf_counter() - tic
    logger.close()

    pipeline_dir = None
    if main:
        with _ema_weights(ema, unwrapped):
            pipeline_dir = out / "pipeline"
            with io.atomic_dir(pipeline_dir) as tmp:
                _make_pipeline(cfg, unwrapped, data, ds.meta, elapsed, accelerator).save_pretrained(tmp)
        _plot_losses(out / "log.csv", out / "loss.png", cfg.objective)
        print(f"saved pipeline (EMA weights) to {pipeline_dir}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return TrainResult(losses, pipeline_dir, start, elapsed)


def _check_run_dir(out: Path, cfg: RunConfig, resume: str | None, checkpoint: Path | None,
                   main: bool) -> None:
    saved = out / "config.yaml"
    if checkpoint is not None or (resume is not None and saved.exists()):
        if saved.exists():
            old = config.parse_yaml(saved.read_text())
            diff = _diff(old, cfg.to_dict())
            if diff:
                raise TrainError(f"{saved}: the resumed run's config differs in {diff}; resume with "
                                 "the same config or train into a new output_dir")
    elif checkpoint_dirs(out) or io.recover_dir(out / "pipeline").exists():
        raise TrainError(f"{out}: already holds a training run; pass --resume latest to continue it "
                         "or choose a new output_dir")
    if main:
        io.write_text(saved, config.to_yaml(cfg))


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _diff(a.get(k), b.get(k), f"{prefix}{k}.")]
    a = list(a) if isinstance(a, tuple) else a
    b = list(b) if isinstance(b, tuple) else b
    return [] if a == b else [prefix.rstrip(".")]


def _save_checkpoint(accelerator, out: Path, step: int, keep: int) -> None:
    """save_state (every process) into a '.'-prefixed temporary directory, then `io.swap_dir` it onto
    step-N: a kill never leaves a partial checkpoint."""
    root = out / "checkpoints"
    tmp = root / f".tmp-step-{step:07d}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        root.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        io.write_json(tmp / "training_state.json", {"step": step, **io.provenance()})
        io.swap_dir(tmp, root / f"step-{step:07d}")
        for old in checkpoint_dirs(out)[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()


class _ema_weights:
    """Context: the model holds the EMA weights inside, its training weights again after."""

    def __init__(self, ema, model: nn.Module):
        self.ema, self.model = ema, model

    def __enter__(self):
        self.ema.store(self.model.parameters())
        self.ema.copy_to(self.model.parameters())

    def __exit__(self, *exc):
        self.ema.restore(self.model.parameters())


def _metadata(cfg: RunConfig, summary: dict, dataset_meta: dict, extra: dict | None = None) -> dict:
    return {
        "format": PIPELINE_FORMAT, "version": 1,
        "conditioning": cfg.train.conditioning,
        "label_column": summary["label_column"], "flux_column": summary["flux_column"],
        "known_classes": list(summary["class_counts"]), "class_counts": summary["class_counts"],
        "flux_quantiles": summary.get("flux_quantiles"),
        "training": {k: summary[k] for k in ("dataset", "folds", "fold", "train_window",
                                             "first_frame", "last_frame", "frames_used", "excluded")},
        "synthetic_training_data": bool(dataset_meta.get("synthetic", False)),
        "dataset_meta": dataset_meta,
        "run_config": cfg.to_dict(),
        **(extra or {}),
    }


def _make_pipeline(cfg: RunConfig, model: Denoiser, data: TrainingData, dataset_meta: dict,
                   elapsed: float | None = None, accelerator=None) -> SolarDiffusionPipeline:
    extra = {"provenance": io.provenance()}
    if elapsed is not None:
        extra["train_seconds"] = round(elapsed, 1)
        extra["device"] = str(accelerator.device) if accelerator else "cpu"
    return SolarDiffusionPipeline(unet=model.unet, conditioning=model.conditioning,
                                  scheduler=noise_scheduler(cfg.objective),
                                  latent_encoder=data.latent_encoder,
                                  metadata=_metadata(cfg, data.summary, dataset_meta, extra))


@torch.no_grad()
def _sample_grid(cfg: RunConfig, model: Denoiser, data: TrainingData, dataset_meta: dict,
                 path: Path) -> None:
    """EMA samples of every known class beside two real training frames of that class."""
    from solargen.diffusion.sample import grid_conditions, grid_labels, save_grid, sample_set
    was_training = model.training
    model.eval()
    pipeline = _make_pipeline(cfg, model, data, dataset_meta)
    pipeline.set_progress_bar_config(disable=True)
    conditions = grid_conditions(pipeline, cfg.train.samples_per_class)
    result = sample_set(pipeline, seed=cfg.seed, batch_size=cfg.train.batch_size,
                        sampler=cfg.train.sample_sampler, num_inference_steps=cfg.train.sample_steps,
                        guidance_scale=cfg.train.sample_guidance, progress=False, **conditions)
    labels = grid_labels(result)
    real = {c: data.read(np.flatnonzero(data.letters == c)[:2]).float().numpy() for c in set(labels)}
    save_grid(result["images"], labels, path, real=real,
              title=f"{path.stem} ({cfg.train.sample_sampler}, {cfg.train.sample_steps} steps, "
                    f"guidance {cfg.train.sample_guidance:g}, EMA)")
    model.train(was_training)


class _Logger:
    """log.csv (one row per step, truncated to the resume step) and TensorBoard when installed."""

    COLUMNS = ("step", "loss", "lr", "grad_norm", "seconds")

    def __init__(self, out: Path, start: int, main: bool):
        self.main, self.path, self.tb = main, out / "log.csv", None
        self.tic = time.perf_counter()
        if not main:
            return
        rows = []
        if start and self.path.exists():
            rows = [{c: r.get(c, "") for c in self.COLUMNS} for r in csv.DictReader(self.path.open())
                    if int(r["step"]) <= start]
        text = ",".join(self.COLUMNS) + "\n" + "".join(
            ",".join(r[c] for c in self.COLUMNS) + "\n" for r in rows)
        io.write_text(self.path, text)
        self.fh = self.path.open("a", newline="")
        try:
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(str(out / "tb"), purge_step=start + 1 if start else None)
        except ImportError:
            self.tb = None

    def log(self, step: int, loss: float, lr: float, grad_norm: float) -> None:
        if not self.main:
            return
        seconds = time.perf_counter() - self.tic
        self.fh.write(f"{step},{loss:.6g},{lr:.6g},{grad_norm:.6g},{seconds:.3f}\n")
        if self.tb is not None:
            self.tb.add_scalar("loss", loss, step)
            self.tb.add_scalar("lr", lr, step)

    def flush(self) -> None:
        if self.main:
            self.fh.flush()
            os.fsync(self.fh.fileno())

    def close(self) -> None:
        if self.main:
            self.fh.close()
            if self.tb is not None:
                self.tb.close()


def _plot_losses(log_csv: Path, path: Path, objective: ObjectiveConfig) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    log = pd.read_csv(log_csv)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(log["step"], log["loss"], lw=0.5, alpha=0.4, label="per step")
    window = max(1, len(log) // 50)
    ax.plot(log["step"], log["loss"].rolling(window, min_periods=1).mean(), lw=1.5,
            label=f"mean of {window}")
    ax.set_xlabel("step")
    ax.set_ylabel(f"loss ({objective.prediction_type}, {objective.loss_weighting})")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
