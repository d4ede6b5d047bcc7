"""One fold's samples as the trainer reads them: tasks -> datasets, frames cached in memory (or
frame-model embeddings), GOES flux planes for flux-input models."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, TensorDataset

from forecasting import floors, metrics
from forecasting.augment import Transformed
from forecasting.config import ForecastConfig
from forecasting.models import MODELS
from forecasting.tasks import Samples, Task, get_task, make_dataset, part_samples, used_frames
from solargen.data.dataset import SolarDataset, load_dataset
from solargen.data.splits import Fold, check_no_leakage, load_folds
from solargen.data.torchdata import SequenceDataset
from solargen.errors import SolargenError

FrameMap = Callable[[np.ndarray], np.ndarray]


class _FrameTable:
    """Stands in for a SolarDataset whose 'frames' are per-frame embeddings (N, F), so that a
    SequenceDataset's history plans (and gap interpolation) apply to embeddings unchanged."""

    def __init__(self, table: np.ndarray):
        self.frames = table

    def frame(self, i: int) -> np.ndarray:
        return self.frames[i]


@torch.no_grad()
def embed_frames(encoder: torch.nn.Module, frames: np.ndarray,
                 frame_map: FrameMap | None = None, batch_size: int = 256) -> np.ndarray:
    """Per-frame embeddings (the encoder's penultimate `features`) of (M, C, H, W) frames."""
    encoder.eval()
    device = next(encoder.parameters()).device
    out = []
    for start in range(0, len(frames), batch_size):
        x = np.asarray(frames[start:start + batch_size], dtype=np.float32)
        x = frame_map(x) if frame_map else x
        out.append(encoder(torch.from_numpy(x).to(device)).features.float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def _stack(dataset: Dataset, encoder: torch.nn.Module | None, frame_map: FrameMap | None,
           batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a dataset once into (inputs, targets) tensors."""
    if isinstance(dataset, ConcatDataset):
        parts = [_stack(d, encoder, frame_map, batch_size) for d in dataset.datasets]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    if encoder is not None and isinstance(dataset, SequenceDataset):
        frames = dataset.frame_indices()
        table = np.zeros((len(dataset.ds), encoder.head.in_features), np.float32)
        table[frames] = embed_frames(encoder, dataset.ds.frames[frames], frame_map, batch_size)
        dataset = copy.copy(dataset)
        dataset.ds = _FrameTable(table)
        encoder, frame_map = None, None
    xs, ys = [], []
    for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        if frame_map is not None:
            x = torch.from_numpy(frame_map(x.numpy()))
        if encoder is not None:
            x = torch.from_numpy(embed_frames(encoder, x.flatten(0, 1).numpy(), None, batch_size)
                                 ).view(*x.shape[:2], -1)
        xs.append(x.float())
        ys.append(y.long())
    return torch.cat(xs), torch.cat(ys)


def materialise(dataset: Dataset, encoder: torch.nn.Module | None = None,
                frame_map: FrameMap | None = None,
                batch_size: int = 256) -> tuple[TensorDataset, Callable | None]:
    """The dataset read once into memory (frames, or per-frame embeddings with `encoder`), and the
    on-the-fly transform of a `Transformed` wrapper, applied per batch by the trainer."""
    if isinstance(dataset, Transformed):
        tensors, _ = materialise(dataset.base, encoder, frame_map, batch_size)
        if encoder is not None:
            raise SolargenError("on-the-fly transforms cannot apply to precomputed embeddings")
        return tensors, dataset.transform
    return TensorDataset(*_stack(dataset, encoder, frame_map, batch_size)), None


FLUX_PLANES = 2


class FluxPlane(Dataset):
    """A one-frame dataset with the GOES flux known at issue time (`floors.flux_history`) appended
    as two constant channels."""

    def __init__(self, ds: SolarDataset, base: Dataset):
        if isinstance(base, SequenceDataset):
            raise SolargenError("flux_input is defined for one-frame models only")
        self.base, self.indices, self.targets = base, base.indices, base.targets
        self.planes = floors.flux_history(ds)[np.asarray(base.indices, dtype=int)]

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, k: int):
        x, y = self.base[k]
        planes = torch.from_numpy(self.planes[k])[:, None, None].expand(-1, *x.shape[1:])
        return torch.cat([x, planes]), y


@dataclass
class FoldData:
    """A dataset split into fold parts, checked for leakage, with the training statistics."""

    ds: SolarDataset
    task: Task
    fold: Fold
    datasets: dict[str, Dataset]
    samples: dict[str, Samples]
    train_counts: np.ndarray
    climatology: np.ndarray
    climatology_smoothed: bool
    history: int


def model_names() -> list[str]:
    """Every forecaster name: the deep models and the classical floors."""
    return sorted([*MODELS, *floors.SKLEARN_MODELS])


def prepare_data(config: ForecastConfig) -> FoldData:
    """Load the dataset and folds, select samples for each part, and prove there is no leakage
    on the frames actually read (history frames included)."""
    ds = load_dataset(config.data)
    task = get_task(config.task)
    folds = load_folds(config.folds)
    folds.check(task.horizon_hours)
    fold = folds.get(config.fold) if config.fold else folds.folds[0]
    if config.model not in model_names():
        raise SolargenError(f"unknown model {config.model!r}; choose one of {model_names()}")
    history = config.history or (MODELS[config.model].default_history if config.model in MODELS else 1)
    if config.model in floors.SKLEARN_MODELS:
        if history != 1:
            raise SolargenError(f"floor {config.model} reads the latest frame only; got history={history}")
    elif MODELS[config.model].sequence != (history > 1):
        kind = "a history of >= 2 frames" if MODELS[config.model].sequence else "one frame"
        raise SolargenError(f"model {config.model} takes {kind}; got history={history}")
    samples, datasets = {}, {}
    for part in ("train", "val", "test"):
        if part not in fold.ranges:
            raise SolargenError(f"{config.folds}: fold {fold.name!r} has no {part} window")
        samples[part] = part_samples(ds, task, fold, part, history, config.cadence_hours)
        datasets[part] = make_dataset(ds, samples[part], history, config.cadence_hours)
        if config.flux_input:
            datasets[part] = FluxPlane(ds, datasets[part])
        if len(datasets[part]) == 0:
            raise SolargenError(f"{config.data}: no usable {part} samples for task {task.name} in fold "
                             f"{fold.name} (excluded: {samples[part].excluded})")
    check_no_leakage(ds.times, {p: used_frames(d) for p, d in datasets.items()},
                     task.horizon_hours)
    counts = samples["train"].counts(task.num_classes)
    clim, smoothed = metrics.climatology(samples["train"].targets, task.num_classes)
    return FoldData(ds, task, fold, datasets, samples, counts, clim, smoothed, history)
