"""Train a flare forecaster on one fold (runs plainly or under `accelerate launch`).

This is the only training loop: `forecast train`, `forecast cv` and every ablation cell call
`train` / `fit` (the ablation passes its own training set and sampler weights).

Output directory (the "checkpoint dir" that `forecast evaluate` reads):
    forecast.json   task, model, history, classes, TRAINING climatology (for BSS and GMGS),
                    channels, size, normalisation, fold windows, config, best epoch, the decision
                    thresholds and logit shift (below), provenance
    model/          save_pretrained of the best model (early stopping on val GMGS or TSS), or
                    floor.joblib for the classical floors (forecasting.floors)
    model-stage1/   with cRT: the best end-to-end model, before classifier re-training
    encoder/        sequence models over embeddings: a copy of the frozen frame encoder
    state/<stage>.pt  last epoch's model, optimiser, scheduler and RNG states (resume)
    log.json        per-epoch training loss and validation scores
    data.json       samples per part, what was excluded and why, the leakage check

Recipe pieces (ForecastConfig):
- `sampling: balanced` draws every class equally often (with replacement, `epoch_samples` draws
  per epoch), so no constant forecast minimises the loss; the model then estimates balanced-prior
  probabilities, and `logit_shift` = log(training prior) - log(effective training prior) is added
  to its logits at prediction time (logit adjustment), which restores calibrated probabilities
  for Brier, BSS and reliability without changing the ranking.
- Decision thresholds (forecasting.decision) are chosen on the validation window at every epoch
  and saved with the best model; early stopping uses the validation TSS (>= M, binary) or GMGS
  (4-class) of those decisions, never before `min_epochs`.
- `augment: flips-rotate`: random horizontal / vertical flips and rotations within 10 degrees
  (sky filled with -1), drawn per sample and batch.
- `cache`: one-frame models read their frames once into memory tensors; with an `encoder`, the
  per-frame embeddings are always computed once (histories of raw frames stay lazy: too large).
- `teacher`: DeiT distillation against a trained CNN checkpoint of the same fold and task.
- `encoder`: sequence models read per-frame embeddings of a trained frame forecaster of the same
  fold (frozen; embedded once).
- `flux_input`: one-frame models also get the GOES 1-8 A flux known at issue time (at the frame
  time, the persistence floor's input, and its maximum over the preceding 24 h) as two more
  input channels, constant planes (forecasting.floors.flux_history).

Stage "main" trains end to end with cosine LR after `warmup_steps`; the optional stage "crt"
(classifier re-training) freezes the backbone, re-initialises `head` and retrains it with
class-balanced sampling at a lower learning rate. Resuming repeats nothing already done and,
with the same seed, continues exactly as an uninterrupted run would.
"""
from __future__ import annotations

import math
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.utils import set_seed
from diffusers.optimization import get_cosine_schedule_with_warmup
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from forecasting import floors, metrics
from forecasting.augment import augment_batch, dataset_targets, oversample_weights
from forecasting.calibration import apply_temperature, fit_temperature, nll
from forecasting.checkpoint import (CHECKPOINT_FILE, ENCODER_DIR, MODEL_DIR, checkpoint_meta, copy_checkpoint,
                                   linked_checkpoint)
from forecasting.config import AUGMENTS, CALIBRATIONS, DECISIONS, MODEL_FLOORS, SAMPLINGS, ForecastConfig
from forecasting.decision import choose_thresholds, climatology_thresholds, decide
from forecasting.fold_data import FLUX_PLANES, FoldData, materialise, prepare_data
from forecasting.losses import Distillation, ForecastLoss, LossConfig
from forecasting.models import FloorContaining, build_model
from forecasting.s5 import SSM_PARAMETERS
from forecasting.tasks import Task
from solargen import io
from solargen.config import resolve_mixed_precision
from solargen.errors import SolargenError

STAGE1_DIR, STATE_DIR, LOG_FILE, DATA_FILE = "model-stage1", "state", "log.json", "data.json"


class EpochSampler(Sampler[int]):
    """A permutation (or a weighted draw with replacement) fixed by seed + epoch, so a resumed
    run sees the same batches as an uninterrupted one; `num_samples` draws (default n)."""

    def __init__(self, n: int, seed: int, weights: np.ndarray | None = None, num_samples: int = 0):
        self.n, self.seed, self.weights, self.epoch = n, seed, weights, 0
        self.num_samples = num_samples or n

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.weights is None:
            rounds = math.ceil(self.num_samples / self.n)
            order = torch.cat([torch.randperm(self.n, generator=g) for _ in range(rounds)])
            return iter(order[:self.num_samples].tolist())
        w = torch.as_tensor(self.weights, dtype=torch.float64)
        return iter(torch.multinomial(w, self.num_samples, replacement=True, generator=g).tolist())


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def param_groups(model: torch.nn.Module, lr: float, weight_decay: float,
                 ssm_lr_factor: float) -> list[dict[str, Any]]:
    """S5 Lambda/B/log Delta at lr * ssm_lr_factor without decay; vectors without decay."""
    ssm, flat, rest = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.rsplit(".", 1)[-1] in SSM_PARAMETERS:
            ssm.append(p)
        elif p.ndim <= 1 or name.endswith(("pos_embed", "cls_token", "dist_token")):
            flat.append(p)
        else:
            rest.append(p)
    groups = [{"params": rest, "lr": lr, "weight_decay": weight_decay},
              {"params": flat, "lr": lr, "weight_decay": 0.0},
              {"params": ssm, "lr": lr * ssm_lr_factor, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


@torch.no_grad()
def predict(model: torch.nn.Module, loader: DataLoader, accelerator: Accelerator | None = None,
            logit_shift: np.ndarray | None = None, desc: str = "predict") -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (N, K) (softmax of logits + logit_shift) and targets (N,), in loader
    order."""
    model.eval()
    device = accelerator.device if accelerator else next(model.parameters()).device
    shift = torch.as_tensor(np.zeros(1) if logit_shift is None else logit_shift,
                            dtype=torch.float32, device=device)
    probs, targets = [], []
    for x, y in tqdm(loader, desc=desc, leave=False,
                     disable=accelerator is not None and not accelerator.is_local_main_process):
        p = torch.softmax(model(x.to(device)).logits.float() + shift, dim=-1)
        if accelerator is not None:
            p, y = accelerator.gather_for_metrics((p, y.to(device)))
        probs.append(p.cpu())
        targets.append(y.cpu())
    return torch.cat(probs).numpy(), torch.cat(targets).numpy()


def logit_shift(prior: np.ndarray, targets: np.ndarray, sample_weights: np.ndarray | None,
                loss_weights: np.ndarray) -> np.ndarray:
    """log(prior) - log(effective training prior), zero-mean: the effective prior of class k is
    proportional to the summed draw weights of its samples times its loss weight."""
    k = len(prior)
    w = np.ones(len(targets)) if sample_weights is None else np.asarray(sample_weights, float)
    effective = np.bincount(np.asarray(targets, int), weights=w, minlength=k) * loss_weights
    shift = np.zeros(k)
    ok = effective > 0
    shift[ok] = np.log(np.asarray(prior, float)[ok]) - np.log(effective[ok] / effective[ok].sum())
    return shift - shift[ok].mean()


def _data_report(prep: FoldData, task: Task) -> dict[str, Any]:
    return {part: {"samples": int(len(s.targets)),
                   "class_counts": dict(zip(task.classes, s.counts(task.num_classes).tolist())),
                   "excluded": s.excluded}
            for part, s in prep.samples.items()} | {"leakage_check": "passed",
                                                     "horizon_hours": task.horizon_hours,
                                                     "history": prep.history}


class _Stage:
    """One training stage with its own optimiser, schedule, state file and early stopping."""

    def __init__(self, name: str, out: Path, epochs: int, patience: int, min_epochs: int = 0):
        self.name, self.out, self.epochs, self.patience = name, out, epochs, patience
        self.min_epochs = min_epochs
        self.state_path = out / STATE_DIR / f"{name}.pt"

    def load(self) -> dict[str, Any] | None:
        if not self.state_path.is_file():
            return None
        return torch.load(self.state_path, map_location="cpu", weights_only=False)

    def save(self, accelerator: Accelerator, model, optimizer, scheduler, progress: dict) -> None:
        if not accelerator.is_main_process:
            return
        state = {"model": accelerator.unwrap_model(model).state_dict(),
                 "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "rng": _rng_state(), "progress": progress}
        with io.atomic_path(self.state_path) as tmp:
            torch.save(state, tmp)


def optimiser_steps(loader: DataLoader, config: ForecastConfig) -> int:
    """Optimiser steps per epoch of this process: its (sharded) batches, capped by max_batches,
    over the gradient accumulation."""
    batches = len(loader) if not config.max_batches else min(len(loader), config.max_batches)
    return max(1, math.ceil(batches / config.gradient_accumulation_steps))


def _save_best(accelerator: Accelerator, model, out: Path) -> None:
    if not accelerator.is_main_process:
        return
    with io.atomic_dir(out / MODEL_DIR) as tmp:
        accelerator.unwrap_model(model).save_pretrained(tmp)


@dataclass
class _Batches:
    """What one stage trains on and is validated with."""

    loader: DataLoader
    sampler: EpochSampler
    val_loader: DataLoader
    transform: Callable | None      # on-the-fly per-sample transform (ablation strategies)
    augment: str
    logit_shift: np.ndarray


def validation_scores(probs: np.ndarray, targets: np.ndarray, prep: FoldData, decision: str = "val-tss"
                      ) -> tuple[dict[str, Any], list[float]]:
    """Scores of the decisions whose thresholds are chosen on these (validation) samples, or, with
    decision "climatology", fixed at the training frequencies."""
    thresholds = (climatology_thresholds(prep.climatology) if decision == "climatology"
                  else choose_thresholds(probs, targets))
    scores = metrics.score_forecasts(probs, targets, prep.climatology, prep.task.event_class,
                                     decide(probs, thresholds))
    return scores, thresholds


def _run_stage(stage: _Stage, accelerator: Accelerator, model, optimizer, scheduler,
               batches: _Batches, criterion: Callable, prep: FoldData, config: ForecastConfig,
               log: list) -> dict:
    """Epoch loop with validation, best-model saving, early stopping and per-epoch state."""
    progress = {"epoch": 0, "best_score": -float("inf"), "best_epoch": -1, "bad_epochs": 0,
                "done": False, "best_thresholds": None}
    saved = stage.load()
    if saved is not None:
        accelerator.unwrap_model(model).load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        _set_rng_state(saved["rng"])
        progress = saved["progress"]
    log[:] = [e for e in log if e["stage"] != stage.name or e["epoch"] < progress["epoch"]]
    if saved is None and stage.name == "main" and isinstance(accelerator.unwrap_model(model), FloorContaining):
        _validate_contained_floor(stage, accelerator, model, batches, prep, config, progress, log)
    while not progress["done"] and progress["epoch"] < stage.epochs:
        epoch = progress["epoch"]
        batches.sampler.set_epoch(epoch)
        if hasattr(batches.loader, "set_epoch"):   # accelerate re-seeds samplers from its own count
            batches.loader.set_epoch(epoch)
        criterion.set_epoch(epoch)
        model.train()
        criterion.train()
        if stage.name == "crt":                 # frozen backbone: no dropout, no BN updates
            accelerator.unwrap_model(model).eval()
            accelerator.unwrap_model(model).head.train()
        total, batches_done = 0.0, 0
        bar = tqdm(batches.loader, desc=f"{stage.name} epoch {epoch + 1}/{stage.epochs}",
                   leave=False, disable=not accelerator.is_local_main_process)
        for x, y in bar:
            if batches.transform is not None:
                x = torch.stack([batches.transform(item) for item in x])
            x = augment_batch(x, batches.augment)
            with accelerator.accumulate(model):
                loss = criterion(model(x), y, x)
                accelerator.backward(loss)
                optimizer.step()
                if accelerator.sync_gradients:      # the schedule counts optimiser steps
                    scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            total += float(accelerator.reduce(loss.detach(), reduction="mean"))
            batches_done += 1
            bar.set_postfix(loss=f"{total / batches_done:.4f}")
            if config.max_batches and batches_done >= config.max_batches:
                break
        scores, thresholds, score = _validate(model, batches, accelerator, prep, config, "validate")
        improved = np.isfinite(score) and score > progress["best_score"]
        if improved:
            progress.update(best_score=score, best_epoch=epoch, bad_epochs=0,
                            best_thresholds=thresholds, floor_kept=False)
            _save_best(accelerator, model, stage.out)
        else:
            progress["bad_epochs"] += 1
            if progress["best_epoch"] < 0 and not progress.get("floor_kept"):  # no finite score yet (no event in
                progress["best_thresholds"] = thresholds   # the window): keep the latest epoch
                _save_best(accelerator, model, stage.out)
        log.append({"stage": stage.name, "epoch": epoch, "train_loss": total / max(batches_done, 1),
                    "lr": scheduler.get_last_lr()[0], **_val_entry(scores, thresholds, score)})
        progress["epoch"] = epoch + 1
        progress["done"] = (progress["bad_epochs"] >= stage.patience
                            and progress["epoch"] >= stage.min_epochs)
        if accelerator.is_main_process:  # log first: a resume trims entries past the saved state
            io.write_json(stage.out / LOG_FILE, log)
        stage.save(accelerator, model, optimizer, scheduler, progress)
    return progress


def _validate_contained_floor(stage: _Stage, accelerator: Accelerator, model, batches: _Batches,
                              prep: FoldData, config: ForecastConfig, progress: dict, log: list) -> None:
    """The untrained floor-containing model (image term at zero: the floor itself) is the first
    candidate of early stopping, so training keeps it unless an epoch beats it on validation."""
    scores, thresholds, score = _validate(model, batches, accelerator, prep, config, "validate the floor")
    if np.isfinite(score):
        progress.update(best_score=score, best_thresholds=thresholds, floor_kept=True)
        _save_best(accelerator, model, stage.out)
    log.append({"stage": stage.name, "epoch": -1, "train_loss": None, "lr": None,
                **_val_entry(scores, thresholds, score), "note": "the contained floor, before training"})


def _validate(model, batches: _Batches, accelerator: Accelerator, prep: FoldData, config: ForecastConfig,
              desc: str) -> tuple[dict[str, Any], list[float], float]:
    """The validation scores of `model`, its thresholds (by config.decision) and the headline."""
    probs, targets = predict(model, batches.val_loader, accelerator, batches.logit_shift, desc=desc)
    scores, thresholds = validation_scores(probs, targets, prep, config.decision)
    return scores, thresholds, metrics.headline(scores)


def _val_entry(scores: dict[str, Any], thresholds: list[float], score: float) -> dict[str, Any]:
    """The validation part of a log.json entry."""
    return {"val_score": score, "val_collapsed": scores["collapsed"], "val_thresholds": thresholds,
            "val": {k: scores[k] for k in scores if k not in ("reliability_ge_m",)}}


class _TaskCriterion(torch.nn.Module):
    """The task loss called as criterion(output, targets, inputs), like Distillation."""

    def __init__(self, loss: ForecastLoss):
        super().__init__()
        self.task_loss = loss

    def set_epoch(self, epoch: int) -> None:
        self.task_loss.set_epoch(epoch)

    def forward(self, out, targets: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        return self.task_loss(out.logits, targets, out.features)


def _teacher_forecast(meta: dict[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Teacher logits -> the teacher's own forecast classes (its saved shift and thresholds)."""
    shift = np.asarray(meta["logit_shift"])
    thresholds = meta["decision"]["thresholds"]

    def forecast(logits: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(logits.float() + torch.as_tensor(shift, dtype=torch.float32,
                                                               device=logits.device), dim=-1)
        return torch.as_tensor(decide(probs.cpu().numpy(), thresholds), device=logits.device)
    return forecast


def train(config: ForecastConfig) -> dict[str, Any]:
    """Train (or resume) one fold; returns the summary also stored in forecast.json."""
    if not config.out:
        raise SolargenError("an output directory is required (--out)")
    return fit(config, prepare_data(config), Path(config.out))


def fit(config: ForecastConfig, prep: FoldData, out: Path, train_set: Dataset | None = None,
        sample_weights: np.ndarray | None = None) -> dict[str, Any]:
    """Train one forecaster (a floor or a deep model) on `prep`'s fold into checkpoint dir `out`.
    `train_set` (default: the real training samples) and `sample_weights` (draw weights; default:
    from `config.sampling`) are how the ablation adds its strategies."""
    for name, value, allowed in (("sampling", config.sampling, SAMPLINGS),
                                 ("augment", config.augment, AUGMENTS),
                                 ("floor", config.floor, MODEL_FLOORS),
                                 ("calibration", config.calibration, CALIBRATIONS),
                                 ("decision", config.decision, DECISIONS)):
        if value not in allowed:
            raise SolargenError(f"unknown {name} {value!r}; choose one of {allowed}")
    if config.floor and (not config.flux_input or config.model in floors.SKLEARN_MODELS
                         or config.encoder or prep.history != 1):
        raise SolargenError(f"floor {config.floor!r} is held by a deep one-frame model that reads "
                            "the GOES flux planes: set flux_input=true (and no encoder)")
    if config.model in floors.SKLEARN_MODELS:
        return fit_floor(config, prep, out)
    return fit_deep(config, prep, out, train_set, sample_weights)


def fit_floor(config: ForecastConfig, prep: FoldData, out: Path) -> dict[str, Any]:
    """Fit a classical floor on the training samples; thresholds on train or val (floors.py)."""
    ds, task = prep.ds, prep.task
    x = {p: floors.features(config.model, ds, s.indices, label_column=task.column)
         for p, s in prep.samples.items()}
    estimator = floors.build_floor(config.model, config.model_overrides)
    estimator.fit(x["train"], prep.samples["train"].targets)
    probs = {p: floors.predict_proba(estimator, x[p], task.num_classes) for p in ("train", "val")}
    chosen_on = floors.THRESHOLDS_CHOSEN_ON[config.model]
    thresholds = choose_thresholds(probs[chosen_on], prep.samples[chosen_on].targets)
    val = metrics.score_forecasts(probs["val"], prep.samples["val"].targets, prep.climatology,
                                  task.event_class, decide(probs["val"], thresholds))
    io.write_json(out / DATA_FILE, _data_report(prep, task))
    with io.atomic_dir(out / MODEL_DIR) as tmp:
        floors.save(estimator, tmp)
    summary = {"best_epoch": 0, "best_val_score": metrics.headline(val),
               "val_metric": "gmgs" if task.num_classes > 2 else "tss_ge_m", "epochs_run": 1,
               "stopped_early": False, "val_collapsed": val["collapsed"],
               "logit_shift": [0.0] * task.num_classes,
               "decision": {"thresholds": thresholds, "chosen_on": chosen_on}}
    meta = {**checkpoint_meta(config, prep), **summary}
    io.write_json(out / CHECKPOINT_FILE, meta)
    return meta


def fit_deep(config: ForecastConfig, prep: FoldData, out: Path,
                   train_set: Dataset | None = None,
                   sample_weights: np.ndarray | None = None) -> dict[str, Any]:
    """The deep-model training loop (stage main, then optional cRT) of one fold."""
    ds, task = prep.ds, prep.task
    train_set = prep.datasets["train"] if train_set is None else train_set
    # cRT freezes the backbone after DDP wrapping: DDP must expect parameters without gradients
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=True)] if config.crt_epochs > 0 else []
    accelerator = Accelerator(mixed_precision=resolve_mixed_precision(config.mixed_precision),
                              gradient_accumulation_steps=config.gradient_accumulation_steps,
                              kwargs_handlers=handlers)
    meta = checkpoint_meta(config, prep)
    if accelerator.is_main_process:
        io.write_json(out / DATA_FILE, _data_report(prep, task))
    log = io.read_json(out / LOG_FILE) if (out / LOG_FILE).is_file() else []

    overrides = dict(config.model_overrides)
    encoder = None
    if config.encoder:
        source, encoder_meta, encoder = linked_checkpoint(config.encoder, prep, "encoder", False)
        overrides["embedding_dim"] = encoder.head.in_features
        meta["encoder"] = {"source": str(source), "model": encoder_meta["model"],
                           "task": encoder_meta["task"]}
        if config.augment != "none":
            raise SolargenError("augment must be 'none' for a model over precomputed embeddings")
        if accelerator.is_main_process:
            copy_checkpoint(source, out / ENCODER_DIR)
    if config.teacher:
        if config.model != "deit":
            raise SolargenError(f"distillation (teacher) is defined for deit only, not {config.model}")
        overrides["distilled"] = True
    targets = dataset_targets(train_set)
    weights = sample_weights
    if weights is None and config.sampling == "balanced":
        weights = oversample_weights(targets)
    loss_fn = ForecastLoss(config.loss, prep.train_counts, config.epochs)
    shift = logit_shift(prep.climatology, targets, weights, loss_fn.prior_weights())
    meta["logit_shift"] = shift.tolist()
    if encoder is not None or (config.cache and prep.history == 1):   # raw histories stay lazy
        train_data, transform = materialise(train_set, encoder)
        val_data, _ = materialise(prep.datasets["val"], encoder)
    else:
        train_data, transform, val_data = train_set, None, prep.datasets["val"]

    set_seed(config.seed)                 # reading the data above draws from the global RNG
    model = build_model(config.model, config.size,
                        len(ds.channels) + FLUX_PLANES * int(config.flux_input),
                        ds.size, task.num_classes, **overrides)
    if config.floor:
        model, meta["floor"] = contain_floor(model, config, prep)
    criterion: torch.nn.Module = _TaskCriterion(loss_fn)
    if config.teacher:
        source, teacher_meta, teacher = linked_checkpoint(config.teacher, prep, "teacher", True)
        criterion = Distillation(loss_fn, teacher, config.distill_weight,
                                 _teacher_forecast(teacher_meta))
        meta["teacher"] = {"source": str(source), "model": teacher_meta["model"],
                           "distill_weight": config.distill_weight}
    sampler = EpochSampler(len(train_data), config.seed, weights, config.epoch_samples)
    loader_kw = dict(batch_size=config.batch_size, num_workers=config.num_workers)
    train_loader = DataLoader(train_data, sampler=sampler, drop_last=False, **loader_kw)
    val_loader = DataLoader(val_data, shuffle=False, **loader_kw)
    optimizer = torch.optim.AdamW(param_groups(model, config.lr, config.weight_decay,
                                               config.ssm_lr_factor))
    model, optimizer, train_loader, val_loader = accelerator.prepare(
        model, optimizer, train_loader, val_loader)
    # the schedule counts this process's optimiser steps, after prepare shards the loader
    scheduler = get_cosine_schedule_with_warmup(optimizer, config.warmup_steps,
                                                optimiser_steps(train_loader, config) * config.epochs)
    criterion.to(accelerator.device)
    batches = _Batches(train_loader, sampler, val_loader, transform, config.augment, shift)
    main = _run_stage(_Stage("main", out, config.epochs, config.patience, config.min_epochs),
                      accelerator, model, optimizer, scheduler, batches, criterion, prep, config, log)
    summary = {"best_epoch": main["best_epoch"], "best_val_score": main["best_score"],
               "val_metric": "gmgs" if task.num_classes > 2 else "tss_ge_m",
               "epochs_run": main["epoch"], "stopped_early": main["done"],
               "decision": {"thresholds": main["best_thresholds"], "chosen_on": "val"}}
    if config.crt_epochs > 0:
        crt, crt_shift = _classifier_retraining(config, accelerator, model, prep, train_data,
                                                batches, out, log)
        summary["crt"] = {k: crt[k] for k in ("best_epoch", "best_score", "epoch")}
        summary["decision"]["thresholds"] = crt["best_thresholds"]
        meta["logit_shift"] = crt_shift.tolist()
    if main.get("floor_kept"):
        summary["kept"] = "the contained floor: no epoch beat it on validation"
    elif summary["best_epoch"] < 0:
        summary["best_epoch"] = summary["epochs_run"] - 1
        summary["val_score_undefined"] = True          # the last epoch was kept
    summary.update(calibrate(config, type(accelerator.unwrap_model(model)), out, val_data, prep,
                             np.asarray(meta["logit_shift"]), summary["decision"]["thresholds"]))
    if accelerator.is_main_process:
        io.write_json(out / CHECKPOINT_FILE, {**meta, **summary})
    accelerator.wait_for_everyone()
    return {**meta, **summary}


def contain_floor(model: torch.nn.Module, config: ForecastConfig, prep: FoldData
                  ) -> tuple[FloorContaining, dict[str, Any]]:
    """Wrap `model` around the floor `config.floor`, fitted on the fold's real training samples
    only (the inputs the model sees as its last flux planes); its image heads start at zero."""
    train = prep.samples["train"]
    estimator = floors.build_floor(config.floor, {})
    estimator.fit(floors.features(config.floor, prep.ds, train.indices), train.targets)
    weight, bias = floors.linear_logits(estimator, prep.task.num_classes)
    return (FloorContaining.around(model, config.model, weight, bias),
            {"name": config.floor, "weight": weight.tolist(), "bias": bias.tolist(),
             "fitted_on": "train"})


def calibrate(config: ForecastConfig, model_cls: type, out: Path, val_data: Dataset, prep: FoldData,
              shift: np.ndarray, thresholds: list[float]) -> dict[str, Any]:
    """Validation-only calibration of the kept model: the temperature (1 without calibration) that
    every later prediction applies to its probabilities (the decisions stay those of the
    uncalibrated probabilities: calibration changes the probabilities, not the forecasts), and
    the validation BSS (a model whose BSS is below 0 is flagged, as a collapsed one is)."""
    model = model_cls.from_pretrained(io.recover_dir(out / MODEL_DIR)).eval()
    probs, targets = predict(model, DataLoader(val_data, batch_size=config.batch_size),
                             logit_shift=shift, desc="calibrate")
    temperature = fit_temperature(probs, targets) if config.calibration == "temperature" else 1.0
    calibrated = apply_temperature(probs, temperature)
    scores = metrics.score_forecasts(calibrated, targets, prep.climatology, prep.task.event_class,
                                     decide(probs, thresholds))
    return {"calibration": {"method": config.calibration, "temperature": temperature,
                            "fitted_on": "val", "val_nll_before": nll(probs, targets),
                            "val_nll_after": nll(calibrated, targets)},
            "decision": {"thresholds": thresholds,
                         "chosen_on": "train climatology" if config.decision == "climatology" else "val"},
            "val_bss_ge_m": scores["bss_ge_m"], "val_bss_negative": bool(scores["bss_ge_m"] < 0)}


def _classifier_retraining(config: ForecastConfig, accelerator: Accelerator, model, prep: FoldData,
                           train_data: Dataset, batches: _Batches, out: Path,
                           log: list) -> tuple[dict[str, Any], np.ndarray]:
    """cRT: best stage-1 model, frozen backbone, re-initialised head, class-balanced sampling."""
    stage1 = out / STAGE1_DIR
    if accelerator.is_main_process and not io.recover_dir(stage1).is_dir():
        with io.atomic_dir(stage1) as tmp:
            shutil.copytree(io.recover_dir(out / MODEL_DIR), tmp, dirs_exist_ok=True)
    accelerator.wait_for_everyone()
    base = accelerator.unwrap_model(model)
    base.load_state_dict(type(base).from_pretrained(stage1).state_dict())
    for p in base.parameters():
        p.requires_grad_(False)
    torch.manual_seed(config.seed + 1)
    base.head.reset_parameters()
    for p in base.head.parameters():
        p.requires_grad_(True)
    targets = dataset_targets(train_data)
    weights = oversample_weights(targets)
    sampler = EpochSampler(len(targets), config.seed + 1, weights, config.epoch_samples)
    loader = accelerator.prepare(DataLoader(train_data, sampler=sampler,
                                            batch_size=config.batch_size,
                                            num_workers=config.num_workers))
    optimizer = accelerator.prepare(torch.optim.AdamW(base.head.parameters(), lr=config.crt_lr,
                                                      weight_decay=0.0))
    scheduler = get_cosine_schedule_with_warmup(optimizer, 0, optimiser_steps(loader, config) * config.crt_epochs)
    ce = ForecastLoss(LossConfig(name="ce"), prep.train_counts, config.crt_epochs)
    shift = logit_shift(prep.climatology, targets, weights, ce.prior_weights())
    crt_batches = _Batches(loader, sampler, batches.val_loader, batches.transform,
                           batches.augment, shift)
    progress = _run_stage(_Stage("crt", out, config.crt_epochs, config.patience), accelerator,
                          model, optimizer, scheduler, crt_batches,
                          _TaskCriterion(ce).to(accelerator.device), prep, config, log)
    return progress, shift
