"""Train a flare forecaster on one fold (runs plainly or under `accelerate launch`).

Output directory (the "checkpoint dir" that `forecast evaluate` reads):
    forecast.json   task, model, history, classes, TRAINING climatology (for BSS and GMGS),
                    channels, size, normalisation, fold windows, config, best epoch, provenance
    model/          save_pretrained of the best model (early stopping on val GMGS or TSS)
    model-stage1/   with cRT: the best end-to-end model, before classifier re-training
    state/<stage>.pt  last epoch's model, optimiser, scheduler and RNG states (resume)
    log.json        per-epoch training loss and validation scores
    data.json       samples per part, what was excluded and why, the leakage check

Stage "main" trains end to end with natural sampling and cosine LR; the optional stage "crt"
(classifier re-training) freezes the backbone, re-initialises `head` and retrains it with
class-balanced sampling at a lower learning rate. Resuming repeats nothing already done and,
with the same seed, continues exactly as an uninterrupted run would.
"""
from __future__ import annotations

import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from diffusers.optimization import get_cosine_schedule_with_warmup
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from forecasting import metrics
from forecasting.losses import ForecastLoss, LossConfig
from forecasting.models import DEFAULT_HISTORY, MODELS, build_model
from forecasting.s5 import SSM_PARAMETERS
from forecasting.tasks import Samples, get_task, make_dataset, part_samples, used_frames
from solargen import config as config_loader
from solargen import io
from solargen.data.dataset import load_dataset
from solargen.data.splits import check_no_leakage, load_folds
from solargen.errors import SolargenError

CHECKPOINT_FILE, MODEL_DIR, STAGE1_DIR, STATE_DIR, LOG_FILE, DATA_FILE = (
    "forecast.json", "model", "model-stage1", "state", "log.json", "data.json")


@dataclass
class ForecastConfig:
    """Everything a forecaster's training run depends on (printed by --dry-run, stored in
    forecast.json); loaded by solargen.config.load_config from configs/forecast/*.yaml + overrides."""

    data: str = ""
    out: str = ""
    model: str = "deit"
    size: str = "cpu"
    task: str = "binary-24h"
    folds: str = "configs/folds/2012-rolling.yaml"
    fold: str = ""                      # empty: the first fold of the file
    history: int = 0                    # frames per sample; 0: the model's default
    cadence_hours: float = 1.0
    loss: LossConfig = field(default_factory=LossConfig)
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-4
    ssm_lr_factor: float = 0.1          # S5 Lambda, B, log Delta: lower LR, no weight decay
    weight_decay: float = 0.05
    warmup_steps: int = 0
    patience: int = 5                   # epochs without validation improvement before stopping
    crt_epochs: int = 0                 # > 0: classifier re-training stage (reference: 15)
    crt_lr: float = 1e-5
    max_batches: int = 0                # per epoch, 0 = all (quick looks only)
    seed: int = 0
    num_workers: int = 0
    mixed_precision: str = "no"
    model_overrides: dict[str, Any] = field(default_factory=dict)


class EpochSampler(Sampler[int]):
    """A permutation (or class-balanced draw with replacement) fixed by seed + epoch, so a resumed
    run sees the same batches as an uninterrupted one."""

    def __init__(self, n: int, seed: int, weights: np.ndarray | None = None):
        self.n, self.seed, self.weights, self.epoch = n, seed, weights, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.weights is None:
            return iter(torch.randperm(self.n, generator=g).tolist())
        w = torch.as_tensor(self.weights, dtype=torch.float64)
        return iter(torch.multinomial(w, self.n, replacement=True, generator=g).tolist())


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
        elif p.ndim <= 1 or name.endswith(("pos_embed", "cls_token")):
            flat.append(p)
        else:
            rest.append(p)
    groups = [{"params": rest, "lr": lr, "weight_decay": weight_decay},
              {"params": flat, "lr": lr, "weight_decay": 0.0},
              {"params": ssm, "lr": lr * ssm_lr_factor, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


@torch.no_grad()
def predict(model: torch.nn.Module, loader: DataLoader, accelerator: Accelerator,
            desc: str = "predict") -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (N, K) and targets (N,) over a loader, in loader order."""
    model.eval()
    probs, targets = [], []
    for x, y in tqdm(loader, desc=desc, leave=False, disable=not accelerator.is_local_main_process):
        logits = model(x).logits
        p, y = accelerator.gather_for_metrics((torch.softmax(logits.float(), dim=-1), y))
        probs.append(p.cpu())
        targets.append(y.cpu())
    return torch.cat(probs).numpy(), torch.cat(targets).numpy()


@dataclass
class Prepared:
    """A dataset split into fold parts, checked for leakage, with the training statistics."""

    datasets: dict[str, Dataset]
    samples: dict[str, Samples]
    train_counts: np.ndarray
    climatology: np.ndarray
    climatology_smoothed: bool
    history: int


def prepare_data(config: ForecastConfig) -> tuple[Any, Any, Any, Prepared]:
    """Load the dataset and folds, select samples for each part, and prove there is no leakage
    on the frames actually read (history frames included)."""
    ds = load_dataset(config.data)
    task = get_task(config.task)
    folds = load_folds(config.folds)
    folds.check(task.horizon_hours)
    fold = folds.get(config.fold) if config.fold else folds.folds[0]
    if config.model not in MODELS:
        raise SolargenError(f"unknown model {config.model!r}; choose one of {sorted(MODELS)}")
    history = config.history or DEFAULT_HISTORY[config.model]
    if MODELS[config.model].sequence != (history > 1):
        kind = "a history of >= 2 frames" if MODELS[config.model].sequence else "one frame"
        raise SolargenError(f"model {config.model} takes {kind}; got history={history}")
    samples, datasets = {}, {}
    for part in ("train", "val", "test"):
        if part not in fold.ranges:
            raise SolargenError(f"{config.folds}: fold {fold.name!r} has no {part} window")
        samples[part] = part_samples(ds, task, fold, part, history, config.cadence_hours)
        datasets[part] = make_dataset(ds, samples[part], history, config.cadence_hours)
        if len(datasets[part]) == 0:
            raise SolargenError(f"{config.data}: no usable {part} samples for task {task.name} in fold "
                             f"{fold.name} (excluded: {samples[part].excluded})")
    check_no_leakage(ds.times, {p: used_frames(d) for p, d in datasets.items()},
                     task.horizon_hours)
    counts = samples["train"].counts(task.num_classes)
    clim, smoothed = metrics.climatology(samples["train"].targets, task.num_classes)
    return ds, task, fold, Prepared(datasets, samples, counts, clim, smoothed, history)


def _checkpoint_meta(config: ForecastConfig, ds: Any, task: Any, fold: Any,
                     prep: Prepared) -> dict[str, Any]:
    return {
        "task": task.name, "model": config.model, "size": config.size, "history": prep.history,
        "cadence_hours": config.cadence_hours, "classes": list(task.classes),
        "event_class": task.event_class, "horizon_hours": task.horizon_hours,
        "train_counts": prep.train_counts.tolist(), "train_climatology": prep.climatology.tolist(),
        "climatology_smoothed": prep.climatology_smoothed,
        "channels": ds.channels, "image_size": ds.size, "normalisation": ds.meta["normalisation"],
        "dataset": str(ds.root), "dataset_synthetic": ds.synthetic,
        "fold": {"name": fold.name, "source": config.folds,
                 "ranges": {p: [str(a), str(b)] for p, (a, b) in fold.ranges.items()}},
        "config": asdict(config), "provenance": io.provenance(),
    }


def _data_report(prep: Prepared, task: Any) -> dict[str, Any]:
    return {part: {"samples": int(len(s.targets)),
                   "class_counts": dict(zip(task.classes, s.counts(task.num_classes).tolist())),
                   "excluded": s.excluded}
            for part, s in prep.samples.items()} | {"leakage_check": "passed",
                                                     "horizon_hours": task.horizon_hours,
                                                     "history": prep.history}


class _Stage:
    """One training stage with its own optimiser, schedule, state file and early stopping."""

    def __init__(self, name: str, out: Path, epochs: int, patience: int):
        self.name, self.out, self.epochs, self.patience = name, out, epochs, patience
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


def _save_best(accelerator: Accelerator, model, out: Path) -> None:
    if not accelerator.is_main_process:
        return
    with io.atomic_dir(out / MODEL_DIR) as tmp:
        accelerator.unwrap_model(model).save_pretrained(tmp)


def _run_stage(stage: _Stage, accelerator: Accelerator, model, optimizer, scheduler,
               train_loader: DataLoader, sampler: EpochSampler, val_loader: DataLoader,
               loss_fn: ForecastLoss, prep: Prepared, config: ForecastConfig, log: list) -> dict:
    """Epoch loop with validation, best-model saving, early stopping and per-epoch state."""
    progress = {"epoch": 0, "best_score": -float("inf"), "best_epoch": -1, "bad_epochs": 0,
                "done": False}
    saved = stage.load()
    if saved is not None:
        accelerator.unwrap_model(model).load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        _set_rng_state(saved["rng"])
        progress = saved["progress"]
    log[:] = [e for e in log if e["stage"] != stage.name or e["epoch"] < progress["epoch"]]
    while not progress["done"] and progress["epoch"] < stage.epochs:
        epoch = progress["epoch"]
        sampler.set_epoch(epoch)
        if hasattr(train_loader, "set_epoch"):   # accelerate re-seeds samplers from its own count
            train_loader.set_epoch(epoch)
        loss_fn.set_epoch(epoch)
        model.train()
        if stage.name == "crt":                 # frozen backbone: no dropout, no BN updates
            accelerator.unwrap_model(model).eval()
            accelerator.unwrap_model(model).head.train()
        total, batches = 0.0, 0
        bar = tqdm(train_loader, desc=f"{stage.name} epoch {epoch + 1}/{stage.epochs}",
                   leave=False, disable=not accelerator.is_local_main_process)
        for x, y in bar:
            out = model(x)
            loss = loss_fn(out.logits, y, out.features)
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
            total += float(loss.detach())
            batches += 1
            bar.set_postfix(loss=f"{total / batches:.4f}")
            if config.max_batches and batches >= config.max_batches:
                break
        probs, targets = predict(model, val_loader, accelerator, desc="validate")
        scores = metrics.score_forecasts(probs, targets, prep.climatology,
                                         1 if probs.shape[1] == 2 else 2)
        score = metrics.headline(scores)
        improved = np.isfinite(score) and score > progress["best_score"]
        if improved:
            progress.update(best_score=score, best_epoch=epoch, bad_epochs=0)
            _save_best(accelerator, model, stage.out)
        else:
            progress["bad_epochs"] += 1
        log.append({"stage": stage.name, "epoch": epoch, "train_loss": total / max(batches, 1),
                    "val_score": score, "val": {k: scores[k] for k in scores
                                                if k not in ("reliability_ge_m",)}})
        progress["epoch"] = epoch + 1
        progress["done"] = progress["bad_epochs"] >= stage.patience
        if accelerator.is_main_process:  # log first: a resume trims entries past the saved state
            io.write_json(stage.out / LOG_FILE, log)
        stage.save(accelerator, model, optimizer, scheduler, progress)
    return progress


def train(config: ForecastConfig) -> dict[str, Any]:
    """Train (or resume) one fold; returns the summary also stored in forecast.json."""
    if not config.out:
        raise SolargenError("an output directory is required (--out)")
    out = Path(config.out)
    set_seed(config.seed)
    ds, task, fold, prep = prepare_data(config)
    accelerator = Accelerator(mixed_precision=config.mixed_precision)
    meta = _checkpoint_meta(config, ds, task, fold, prep)
    if accelerator.is_main_process:
        io.write_json(out / DATA_FILE, _data_report(prep, task))
    log = io.read_json(out / LOG_FILE) if (out / LOG_FILE).is_file() else []

    model = build_model(config.model, config.size, len(ds.channels), ds.size, task.num_classes,
                        **config.model_overrides)
    loss_fn = ForecastLoss(config.loss, prep.train_counts, config.epochs)
    sampler = EpochSampler(len(prep.datasets["train"]), config.seed)
    loader_kw = dict(batch_size=config.batch_size, num_workers=config.num_workers)
    train_loader = DataLoader(prep.datasets["train"], sampler=sampler, drop_last=False, **loader_kw)
    val_loader = DataLoader(prep.datasets["val"], shuffle=False, **loader_kw)
    steps = len(train_loader) if not config.max_batches else min(len(train_loader), config.max_batches)
    optimizer = torch.optim.AdamW(param_groups(model, config.lr, config.weight_decay,
                                               config.ssm_lr_factor))
    scheduler = get_cosine_schedule_with_warmup(optimizer, config.warmup_steps,
                                                max(steps * config.epochs, 1))
    model, optimizer, train_loader, val_loader = accelerator.prepare(
        model, optimizer, train_loader, val_loader)
    loss_fn.to(accelerator.device)
    main = _run_stage(_Stage("main", out, config.epochs, config.patience), accelerator, model,
                      optimizer, scheduler, train_loader, sampler, val_loader, loss_fn, prep,
                      config, log)
    summary = {"best_epoch": main["best_epoch"], "best_val_score": main["best_score"],
               "val_metric": "gmgs" if task.num_classes > 2 else "tss_ge_m",
               "epochs_run": main["epoch"], "stopped_early": main["done"]}
    if config.crt_epochs > 0:
        summary["crt"] = _classifier_retraining(config, accelerator, model, prep, val_loader,
                                                out, log, loader_kw)
    if accelerator.is_main_process:
        io.write_json(out / CHECKPOINT_FILE, {**meta, **summary})
    accelerator.wait_for_everyone()
    return {**meta, **summary}


def _classifier_retraining(config: ForecastConfig, accelerator: Accelerator, model, prep: Prepared,
                           val_loader: DataLoader, out: Path, log: list,
                           loader_kw: dict) -> dict[str, Any]:
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
    targets = prep.samples["train"].targets
    per_class = np.bincount(targets, minlength=len(prep.train_counts)).astype(float)
    sampler = EpochSampler(len(targets), config.seed + 1, weights=1.0 / per_class[targets])
    loader = accelerator.prepare(DataLoader(prep.datasets["train"], sampler=sampler, **loader_kw))
    optimizer = accelerator.prepare(torch.optim.AdamW(base.head.parameters(), lr=config.crt_lr,
                                                      weight_decay=0.0))
    steps = len(loader) if not config.max_batches else min(len(loader), config.max_batches)
    scheduler = get_cosine_schedule_with_warmup(optimizer, 0, max(steps * config.crt_epochs, 1))
    ce = ForecastLoss(LossConfig(name="ce"), prep.train_counts, config.crt_epochs)
    ce.to(accelerator.device)
    result = _run_stage(_Stage("crt", out, config.crt_epochs, config.patience), accelerator,
                        model, optimizer, scheduler, loader, sampler, val_loader, ce, prep,
                        config, log)
    return {"best_epoch": result["best_epoch"], "best_val_score": result["best_score"],
            "epochs_run": result["epoch"]}


def load_forecast_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> ForecastConfig:
    """configs/forecast/*.yaml (or any YAML of ForecastConfig fields) plus `key=value` overrides."""
    return config_loader.load_config(ForecastConfig, path, overrides)
