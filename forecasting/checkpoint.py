"""A forecaster's checkpoint directory: what forecast.json records, loading a checkpoint, and the
checks a linked one (a distillation teacher, a frozen frame encoder) must pass.

    forecast.json   task, model, history, classes, TRAINING climatology (for BSS and GMGS),
                    channels, size, normalisation, fold windows, config, best epoch, decision
                    thresholds, logit shift, calibration, provenance
    model/          save_pretrained of the kept model, or floor.joblib for the classical floors
    encoder/        sequence models over embeddings: a copy of the frozen frame encoder
"""
from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from forecasting import floors
from forecasting.config import CheckpointError, ForecastConfig
from forecasting.fold_data import FluxPlane, FoldData
from forecasting.models import MODELS, FloorContaining
from solargen import io
from solargen.data.splits import Fold

CHECKPOINT_FILE, MODEL_DIR, ENCODER_DIR = "forecast.json", "model", "encoder"
FORMAT_VERSION = 2


def checkpoint_meta(config: ForecastConfig, prep: FoldData) -> dict[str, Any]:
    ds, task, fold = prep.ds, prep.task, prep.fold
    return {
        "format_version": FORMAT_VERSION,
        "kind": "floor" if config.model in floors.SKLEARN_MODELS else "deep",
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


def resolve_linked(path: str, fold: Fold) -> Path:
    """A teacher / encoder checkpoint path, with "{fold}" replaced by the fold name."""
    return Path(path.replace("{fold}", fold.name))


def load_checkpoint(path: str | Path) -> tuple[dict[str, Any], Any]:
    """(forecast.json, model): a diffusers model in eval mode, or a floor's sklearn estimator."""
    path = Path(path)
    if not (path / CHECKPOINT_FILE).is_file() or not io.recover_dir(path / MODEL_DIR).is_dir():
        raise CheckpointError(f"{path}: not a forecaster checkpoint ({CHECKPOINT_FILE} or "
                              f"{MODEL_DIR}/ missing; train one with `solargen forecast train`)")
    meta = io.read_json(path / CHECKPOINT_FILE)
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {meta.get('format_version', 1)} from an "
                              f"older solargen (no saved decision thresholds); retrain it with "
                              f"`solargen forecast train`")
    if meta["kind"] == "floor":
        return meta, floors.load(path / MODEL_DIR)
    cls = FloorContaining if meta["config"].get("floor") else MODELS[meta["model"]]
    return meta, cls.from_pretrained(path / MODEL_DIR).eval()


def linked_checkpoint(path: str, prep: FoldData, role: str, same_task: bool
                       ) -> tuple[Path, dict[str, Any], torch.nn.Module]:
    """A teacher or encoder checkpoint, checked to be a deep frame model trained on this fold's
    windows and this dataset's channels, size and normalisation (no leakage through it)."""
    where = resolve_linked(path, prep.fold)
    meta, model = load_checkpoint(where)
    ranges = {p: [str(a), str(b)] for p, (a, b) in prep.fold.ranges.items()}
    problems = []
    if meta["kind"] != "deep" or MODELS[meta["model"]].sequence:
        problems.append(f"it is {meta['model']}, not a deep one-frame model")
    if meta["fold"]["name"] != prep.fold.name or meta["fold"]["ranges"] != ranges:
        problems.append(f"it was trained on fold {meta['fold']['name']} {meta['fold']['ranges']}, "
                        f"not {prep.fold.name} {ranges}")
    if (meta["channels"], meta["image_size"], meta["normalisation"]) != (
            prep.ds.channels, prep.ds.size, prep.ds.meta["normalisation"]):
        problems.append("its channels, size or normalisation differ from the dataset's")
    if same_task and meta["task"] != prep.task.name:
        problems.append(f"it forecasts {meta['task']}, not {prep.task.name}")
    if same_task and meta["config"].get("flux_input", False) != isinstance(
            prep.datasets["train"], FluxPlane):
        problems.append("its flux_input setting differs (the teacher sees the student's input)")
    if problems:
        raise CheckpointError(f"{where}: unusable as the {role}: " + "; ".join(problems))
    return where, meta, model


def copy_checkpoint(source: Path, dest: Path) -> None:
    """forecast.json and model/ of a checkpoint, copied into place atomically."""
    with io.atomic_dir(dest) as tmp:
        shutil.copytree(io.recover_dir(source / MODEL_DIR), tmp / MODEL_DIR)
        shutil.copy2(source / CHECKPOINT_FILE, tmp / CHECKPOINT_FILE)
