"""Time-ordered, rolling-origin folds as date ranges in YAML, with a leakage guard.

    gap_hours: 72            # >= the longest forecast horizon the folds are used for
    folds:
      - name: f1
        train: [2012-01-01, 2012-03-31]   # inclusive dates (whole days, UTC)
        val:   [2012-04-04, 2012-04-30]
        test:  [2012-05-04, 2012-06-30]

Every frame of a validation or test window must lie at least `horizon_hours` away from every
training frame (frames an hour apart are near duplicates, and a training label looks `horizon`
hours ahead). `check_fold` enforces it on the date ranges and `check_no_leakage` on actual frames.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from solargen.config import ConfigError, config_path, parse_yaml
from solargen.errors import SolargenError

PARTS = ("train", "val", "test")


class SplitError(SolargenError):
    """A fold definition that is malformed or leaks across the forecast horizon."""


@dataclass(frozen=True)
class Fold:
    name: str
    ranges: dict[str, tuple[pd.Timestamp, pd.Timestamp]]  # part -> [start, end) in UTC

    def window(self, part: str) -> tuple[pd.Timestamp, pd.Timestamp]:
        return self.ranges[part]


@dataclass(frozen=True)
class FoldSet:
    gap_hours: float
    folds: tuple[Fold, ...]
    source: str = "<memory>"

    def __iter__(self):
        return iter(self.folds)

    def __len__(self) -> int:
        return len(self.folds)

    def get(self, name: str) -> Fold:
        for fold in self.folds:
            if fold.name == name:
                return fold
        raise SplitError(f"{self.source}: no fold named {name!r}; folds are "
                         f"{[f.name for f in self.folds]}")

    def check(self, horizon_hours: float) -> None:
        """Raise unless every fold keeps val/test at least `horizon_hours` from training."""
        if horizon_hours > self.gap_hours:
            raise SplitError(f"{self.source}: gap_hours {self.gap_hours} is shorter than the "
                             f"forecast horizon {horizon_hours} h")
        for fold in self.folds:
            check_fold(fold, horizon_hours, self.source)


def _day_range(value, where: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise SplitError(f"{where}: expected [start, end] dates, got {value!r}")
    try:
        start = pd.Timestamp(str(value[0]), tz="UTC").normalize()
        end = pd.Timestamp(str(value[1]), tz="UTC").normalize() + pd.Timedelta(days=1)
    except ValueError as exc:
        raise SplitError(f"{where}: unreadable date ({exc})") from None
    if end <= start:
        raise SplitError(f"{where}: end {value[1]} is before start {value[0]}")
    return start, end


def _range_distance_hours(a: tuple[pd.Timestamp, pd.Timestamp],
                          b: tuple[pd.Timestamp, pd.Timestamp]) -> float:
    """Smallest time between any instant of [a0, a1) and any of [b0, b1); 0 when they overlap."""
    if a[1] <= b[0]:
        return (b[0] - a[1]).total_seconds() / 3600
    if b[1] <= a[0]:
        return (a[0] - b[1]).total_seconds() / 3600
    return 0.0


def check_fold(fold: Fold, horizon_hours: float, source: str = "<memory>") -> None:
    for held_out in ("val", "test"):
        if held_out not in fold.ranges:
            continue
        dist = _range_distance_hours(fold.ranges["train"], fold.ranges[held_out])
        if dist < horizon_hours:
            raise SplitError(f"{source}: fold {fold.name!r}: {held_out} window is {dist:g} h from "
                             f"training, less than the {horizon_hours:g} h horizon (leakage)")
    if "val" in fold.ranges and "test" in fold.ranges:
        if _range_distance_hours(fold.ranges["val"], fold.ranges["test"]) < horizon_hours:
            raise SplitError(f"{source}: fold {fold.name!r}: val and test windows are closer than "
                             f"the {horizon_hours:g} h horizon")


def parse_folds(spec: dict, source: str = "<memory>") -> FoldSet:
    if not isinstance(spec, dict) or "folds" not in spec:
        raise SplitError(f"{source}: expected a mapping with 'gap_hours' and 'folds'")
    gap = spec.get("gap_hours")
    if not isinstance(gap, (int, float)) or gap < 0:
        raise SplitError(f"{source}: gap_hours must be a non-negative number, got {gap!r}")
    folds = []
    for i, item in enumerate(spec["folds"] or []):
        name = str(item.get("name", f"fold{i + 1}"))
        if "train" not in item:
            raise SplitError(f"{source}: fold {name!r} has no train range")
        ranges = {p: _day_range(item[p], f"{source}: fold {name!r} {p}") for p in PARTS if p in item}
        unknown = set(item) - set(PARTS) - {"name"}
        if unknown:
            raise SplitError(f"{source}: fold {name!r} has unknown keys {sorted(unknown)}")
        folds.append(Fold(name, ranges))
    if not folds:
        raise SplitError(f"{source}: no folds defined")
    if len({f.name for f in folds}) != len(folds):
        raise SplitError(f"{source}: fold names must be unique")
    fold_set = FoldSet(float(gap), tuple(folds), source)
    fold_set.check(float(gap))
    return fold_set


def load_folds(path: str | Path) -> FoldSet:
    """A folds YAML given as a path, or a shipped one (`configs/folds/2012-rolling.yaml`)."""
    try:
        path = config_path(path)
        spec = parse_yaml(path.read_text())
    except ConfigError as exc:
        raise SplitError(str(exc)) from None
    except (OSError, yaml.YAMLError) as exc:
        raise SplitError(f"{path}: cannot read folds YAML ({exc})") from None
    return parse_folds(spec, str(path))


def fold_indices(times: pd.DatetimeIndex | pd.Series, fold: Fold) -> dict[str, np.ndarray]:
    """Frame indices falling in each window of `fold` (frames between windows belong to none)."""
    t = pd.DatetimeIndex(times)
    return {part: np.flatnonzero((t >= start) & (t < end)) for part, (start, end) in fold.ranges.items()}


def check_no_leakage(times: pd.DatetimeIndex | pd.Series, parts: dict[str, np.ndarray],
                     horizon_hours: float) -> None:
    """Raise if any val/test frame lies within `horizon_hours` of any training frame, or if a
    frame sits in two parts."""
    t = pd.DatetimeIndex(times).as_unit("ns").asi8 / 3.6e12  # hours
    train = np.sort(t[parts["train"]])
    for part in ("val", "test"):
        if part not in parts or len(parts[part]) == 0 or len(train) == 0:
            continue
        if np.intersect1d(parts["train"], parts[part]).size:
            raise SplitError(f"frames appear in both train and {part}")
        held = t[parts[part]]
        pos = np.searchsorted(train, held)
        before = np.abs(held - train[np.clip(pos - 1, 0, len(train) - 1)])
        after = np.abs(train[np.clip(pos, 0, len(train) - 1)] - held)
        nearest = np.minimum(before, after)
        if nearest.min() < horizon_hours:
            i = int(np.argmin(nearest))
            raise SplitError(f"{part} frame at {pd.DatetimeIndex(times)[parts[part][i]]} is "
                             f"{nearest[i]:.2f} h from a training frame (< {horizon_hours} h)")
