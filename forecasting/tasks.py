"""Forecasting tasks: which frames are samples and what their targets are.

    binary-24h        >= M within 24 h, every hourly frame, one frame as input
    binary-24h-daily  >= M within 24 h, one frame a day (nearest 00:00 UTC, within 30 min), as in
                      the reference DeiT experiment
    4class-24h        largest class O/C/M/X within 24 h (O = A or B), from a history of frames
    4class-72h        the same within 72 h
    frame-class       GOES class A/B/C/M/X of the frame itself (the HEK flare whose peak matched
                      the frame): the reference DDPM paper's classification experiment
    eruptive-24h      will the >= M flare peaking within 24 h be eruptive (CME-associated) or
                      confined? Frames before no >= M flare are not samples (the ViT+LSTM paper's
                      task; the event class is 'eruptive', reported in the >= M metric slots)
    eruptive-24h-c    the same for >= C flares

Targets come from the labels table (max_class_24h / max_class_72h). Frames whose target is
missing, or whose frame is stale (a repeat of the previous hour), are excluded and counted.
For a fold, a sample is used only when its whole input history lies inside its own window, so
history frames never reach into the gap between windows (see `part_samples`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from torch.utils.data import Dataset

from solargen.data.dataset import SolarDataset
from solargen.data.goes import GOES_CLASSES
from solargen.data.labels import ERUPTIVE_CLASSES, eruptive_column
from solargen.data.splits import Fold
from solargen.data.torchdata import FrameDataset, SequenceDataset
from solargen.errors import SolargenError

BINARY_CLASSES = ("<M", ">=M")
FOUR_CLASSES = ("O", "C", "M", "X")
_LETTER_TO_FOUR = {"A": 0, "B": 0, "C": 1, "M": 2, "X": 3}
_LETTER_TO_BINARY = {"A": 0, "B": 0, "C": 0, "M": 1, "X": 1}


class TaskError(SolargenError):
    """An unknown task or a dataset that cannot serve it."""


@dataclass(frozen=True)
class Task:
    name: str
    column: str
    horizon_hours: int
    classes: tuple[str, ...]
    daily: bool = False
    missing: str = "target missing"         # why a frame without a target is not a sample
    rebuild: str = "`solargen data build`"  # how to get the task's label column

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def event_class(self) -> int:
        """Index of the first class counted as >= M."""
        return 1 if self.num_classes == 2 else 2

    @property
    def event_name(self) -> str:
        """What the event class and those above it are called in figures and summaries."""
        name = self.classes[self.event_class]
        return name if self.num_classes == 2 else f">={name}"

    def encode(self, letters: pd.Series) -> np.ndarray:
        """Class letters A..X (None = missing) -> target indices (-1 = missing)."""
        table = _LETTER_TO_BINARY if self.num_classes == 2 else _LETTER_TO_FOUR
        return letters.map(table).fillna(-1).to_numpy(dtype=int)


@dataclass(frozen=True)
class FrameClassTask(Task):
    """Targets are the frame's own class letter; >= M events are M and X."""

    @property
    def event_class(self) -> int:
        return self.classes.index("M")

    def encode(self, letters: pd.Series) -> np.ndarray:
        return letters.map({c: i for i, c in enumerate(self.classes)}).fillna(-1).to_numpy(dtype=int)


@dataclass(frozen=True)
class EruptiveTask(Task):
    """Targets are 'confined' (0) / 'eruptive' (1) labels of the flare ahead (labels.py)."""

    def encode(self, letters: pd.Series) -> np.ndarray:
        return letters.map({c: i for i, c in enumerate(self.classes)}).fillna(-1).to_numpy(dtype=int)


TASKS: dict[str, Task] = {
    "binary-24h": Task("binary-24h", "max_class_24h", 24, BINARY_CLASSES),
    "binary-24h-daily": Task("binary-24h-daily", "max_class_24h", 24, BINARY_CLASSES, daily=True),
    "4class-24h": Task("4class-24h", "max_class_24h", 24, FOUR_CLASSES),
    "4class-72h": Task("4class-72h", "max_class_72h", 72, FOUR_CLASSES),
    "frame-class": FrameClassTask("frame-class", "peak_class", 0, GOES_CLASSES),
    **{name: EruptiveTask(name, eruptive_column(letter, 24), 24, ERUPTIVE_CLASSES,
                          missing=f"no >= {letter} flare peaks within 24 h",
                          rebuild="`solargen data build --flares ... --cmes ...`")
       for name, letter in (("eruptive-24h", "M"), ("eruptive-24h-c", "C"))},
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise TaskError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
    return TASKS[name]


@dataclass
class Samples:
    """End-frame indices of usable samples, their targets, and what was excluded and why."""

    indices: np.ndarray
    targets: np.ndarray
    excluded: dict[str, int] = field(default_factory=dict)

    def counts(self, num_classes: int) -> np.ndarray:
        return np.bincount(self.targets, minlength=num_classes)


def daily_frames(times: pd.DatetimeIndex, candidates: np.ndarray,
                 tolerance_min: float = 30.0) -> np.ndarray:
    """Per UTC day, the candidate frame nearest 00:00 (within `tolerance_min`)."""
    t = times[candidates]
    midnight = t.round("D")
    offset = np.abs((t - midnight).total_seconds().to_numpy())
    ok = offset <= tolerance_min * 60
    frame = pd.DataFrame({"idx": candidates[ok], "day": midnight[ok], "off": offset[ok]})
    best = frame.sort_values(["day", "off"]).groupby("day", sort=True).head(1)
    return np.sort(best["idx"].to_numpy(dtype=int))


def select_samples(ds: SolarDataset, task: Task, candidates: np.ndarray | None = None) -> Samples:
    """Usable samples of `task` among `candidates` (default: every frame)."""
    if task.column not in ds.labels:
        raise TaskError(f"{ds.root}: labels table has no {task.column!r} column (needed by task "
                        f"{task.name}); rebuild the dataset with {task.rebuild}")
    idx = np.arange(len(ds)) if candidates is None else np.asarray(candidates, dtype=int)
    excluded: dict[str, int] = {}
    targets = task.encode(ds.labels[task.column].iloc[idx])
    missing = targets < 0
    excluded[task.missing] = int(missing.sum())
    keep = ~missing
    if "stale" in ds.labels:
        stale = ds.labels["stale"].to_numpy(bool)[idx] & keep
        excluded["stale frame"] = int(stale.sum())
        keep &= ~stale
    idx, targets = idx[keep], targets[keep]
    if task.daily:
        chosen = daily_frames(ds.times, idx)
        excluded["not the daily 00:00 frame"] = int(len(idx) - len(chosen))
        targets = targets[np.searchsorted(idx, chosen)]
        idx = chosen
    return Samples(idx, targets, {k: v for k, v in excluded.items() if v})


def part_samples(ds: SolarDataset, task: Task, fold: Fold, part: str, history: int,
                 cadence_hours: float = 1.0) -> Samples:
    """Samples of one fold window whose full history [t - (history-1) cadence, t] lies inside the
    window (training-label horizons and held-out inputs then never meet across the gap)."""
    start, end = fold.window(part)
    t = ds.times
    in_window = np.flatnonzero((t >= start) & (t < end))
    first_input = t[in_window] - pd.Timedelta(hours=cadence_hours * (history - 1))
    inside = first_input >= start
    samples = select_samples(ds, task, in_window[inside])
    if (~inside).sum():
        samples.excluded["history starts before the window"] = int((~inside).sum())
    return samples


def make_dataset(ds: SolarDataset, samples: Samples, history: int,
                 cadence_hours: float = 1.0) -> Dataset:
    """FrameDataset for one-frame models, SequenceDataset (T, C, H, W) for histories; the
    sequence builder's skips are added to `samples.excluded` and `samples` is narrowed to match."""
    if history <= 1:
        return FrameDataset(ds, samples.indices, samples.targets)
    seq = SequenceDataset(ds, samples.indices, samples.targets, history=history,
                          cadence_hours=cadence_hours)
    for why, n in seq.skipped.items():
        samples.excluded[f"history: {why}"] = samples.excluded.get(f"history: {why}", 0) + n
    samples.indices, samples.targets = seq.end_indices, seq.targets
    return seq


def used_frames(dataset: Dataset) -> np.ndarray:
    """Every frame index a FrameDataset or SequenceDataset reads (for leakage checks)."""
    if isinstance(dataset, SequenceDataset):
        return dataset.frame_indices()
    return np.unique(np.asarray(dataset.indices, dtype=int))
