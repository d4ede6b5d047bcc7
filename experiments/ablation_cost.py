"""What an ablation grid will cost before it runs: one timed training step per model and task,
a timed generator step and sampling step, scaled by the grid (`solargen ablate --dry-run`)."""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import yaml

from experiments.ablation import AblationConfig, Cell, cell_path, generator_run_config
from forecasting.augment import get_strategy
from forecasting.floors import FLOORS
from forecasting.models import MODELS, build_model
from forecasting.tasks import get_task, part_samples
from solargen.data.dataset import load_dataset
from solargen.data.splits import load_folds
from solargen.diffusion.pipeline import SolarDiffusionPipeline
from solargen.diffusion.train import Denoiser, build_models

CELLS_DIR, MODELS_DIR, STATE_FILE = "cells", "models", "ablation.json"



def _time_model(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                repeats: int = 2) -> tuple[float, float]:
    """Seconds per sample of a training step (forward + backward) and of a forward pass."""
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    loss_fn(model(x).logits, y).backward()                  # warm-up
    tic = time.perf_counter()
    for _ in range(repeats):
        model.zero_grad()
        loss_fn(model(x).logits, y).backward()
    train = (time.perf_counter() - tic) / repeats / len(x)
    model.eval()
    with torch.no_grad():
        tic = time.perf_counter()
        model(x)
        infer = (time.perf_counter() - tic) / len(x)
    return train, infer


def _time_generator(config: AblationConfig, ds, fold, label_column: str) -> tuple[float, float]:
    """Seconds per generator training step and per image-step of sampling."""
    cfg = generator_run_config(config, ds, fold, label_column)
    pretrained = config.generator.pretrained.get(fold.name)
    if pretrained:                                  # time the model that will sample; no training
        pipeline = SolarDiffusionPipeline.from_pretrained(pretrained)
        model = Denoiser(pipeline.unet, pipeline.conditioning)
        channels, size = pipeline.unet.config.in_channels, pipeline.unet.config.sample_size
    else:
        model = build_models(cfg, list(config.minority_classes))
        channels, size = cfg.model.channels, cfg.model.resolution
    b = cfg.train.batch_size
    x = torch.randn(b, channels, size, size)
    t = torch.randint(0, cfg.objective.num_train_timesteps, (b,))
    cls = torch.zeros(b, dtype=torch.long)
    flux = torch.full((b,), -5.0)
    null = torch.zeros(b, dtype=torch.bool)
    model(x, t, cls, flux, null).square().mean().backward()   # warm-up
    tic = time.perf_counter()
    model(x, t, cls, flux, null).square().mean().backward()
    step = time.perf_counter() - tic
    with torch.no_grad():
        tic = time.perf_counter()
        model(x, t, cls, flux, null)
        per_image = (time.perf_counter() - tic) / b
    return (0.0 if pretrained else step * cfg.train.max_steps), per_image


def estimate_cost(config: AblationConfig, cells: list[Cell]) -> dict[str, Any]:
    """Upper-bound seconds per cell on this machine: sample counts of each fold times the
    per-sample step time measured now on a batch of the configured model (all epochs run, no
    early stop), plus training each fold's generator and sampling the synthetic sets."""
    ds = load_dataset(config.data)
    folds = load_folds(config.folds)
    device = "cuda" if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    tc, per_cell, timing, counts, gen = config.train, {}, {}, {}, {}
    for cell in cells:
        if cell.model in FLOORS:
            per_cell[cell.id] = 0.0
            continue
        task, fold = get_task(cell.task), folds.get(cell.fold)
        history = tc.history or MODELS[cell.model].default_history
        key = (cell.task, cell.fold, cell.model)
        if key not in counts:
            counts[key] = {p: len(part_samples(ds, task, fold, p, history, tc.cadence_hours).indices)
                           for p in ("train", "val", "test")}
        if (cell.task, cell.model) not in timing:
            model = build_model(cell.model, tc.size, len(ds.channels), ds.size, task.num_classes,
                                **tc.model_overrides)
            b = min(tc.batch_size, 8)
            shape = (b, history, len(ds.channels), ds.size, ds.size) if history > 1 else (
                b, len(ds.channels), ds.size, ds.size)
            timing[(cell.task, cell.model)] = _time_model(model, torch.randn(shape),
                                                          torch.zeros(b, dtype=torch.long))
        t_train, t_eval = timing[(cell.task, cell.model)]
        c = counts[key]
        n_train = tc.epoch_samples or c["train"] + cell.n * len(config.minority_classes)
        if tc.max_batches:
            n_train = min(n_train, tc.max_batches * tc.batch_size)
        per_cell[cell.id] = tc.epochs * (n_train * t_train + c["val"] * t_eval) + c["test"] * t_eval
        strategy = get_strategy(cell.strategy)
        gkey = (cell.fold, get_task(cell.task).column)
        if strategy.synthetic and gkey not in gen:
            train_s, per_image = _time_generator(config, ds, fold, gkey[1])
            g = config.generator
            passes = 1 if g.guidance_scale == 1.0 else 2
            images = config.synthetic_sets * len(config.minority_classes) * max(config.n_synthetic)
            gen[gkey] = {"train": train_s, "sample": images * g.steps * passes * per_image}
    generation = sum(v["train"] + v["sample"] for v in gen.values())
    return {"device": device, "cells": len(cells), "cell_seconds": per_cell,
            "forecaster_seconds": float(sum(per_cell.values())),
            "generator_seconds": float(generation),
            "generators": {f"{f}/{col}": v for (f, col), v in gen.items()},
            "total_hours": float((sum(per_cell.values()) + generation) / 3600),
            "samples": {f"{t}/{f}/{m}": v for (t, f, m), v in counts.items()}}


def describe_plan(config: AblationConfig, cells: list[Cell], estimate: dict[str, Any] | None,
                  out: Path | None = None) -> str:
    """The --dry-run text: resolved config, the cells (finished ones marked) and the estimate."""
    lines = ["# resolved ablation config", yaml.safe_dump(asdict(config), sort_keys=False),
             f"# {len(cells)} cells"]
    for cell in cells:
        done = out is not None and cell_path(out, cell).is_file()
        cost = "" if estimate is None else f"  ~{estimate['cell_seconds'][cell.id] / 60:.1f} min"
        lines.append(f"{'[done] ' if done else ''}{cell.id}{cost}")
    if estimate is not None:
        lines.append(f"# estimated cost on {estimate['device']} (upper bound: every epoch runs): "
                     f"forecasters {estimate['forecaster_seconds'] / 3600:.2f} h + generators and "
                     f"sampling {estimate['generator_seconds'] / 3600:.2f} h = "
                     f"{estimate['total_hours']:.2f} h")
        for key, c in estimate["samples"].items():
            lines.append(f"#   {key}: real samples {c}")
        for key, g in estimate["generators"].items():
            lines.append(f"#   generator {key}: training {g['train'] / 3600:.2f} h, sampling "
                         f"{g['sample'] / 3600:.2f} h")
    return "\n".join(lines) + "\n"
