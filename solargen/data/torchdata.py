"""torch Datasets over a dataset directory: single frames and hourly histories.

Missing-frame policy for histories (as in the ViT+LSTM paper): the frame expected at each
cadence step is the one within +-`tolerance_min` of it that is not stale; up to `max_fill`
consecutive missing frames are filled by linear interpolation between their neighbours; a history
with a longer gap, or a missing first/last frame, is skipped and counted in `.skipped`.
"""
from __future__ import annotations

from collections import Counter
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from solargen.data.dataset import SolarDataset


class FrameDataset(Dataset):
    """(frame float32 (C, H, W) in [-1, 1], target) for the given frame indices."""

    def __init__(self, ds: SolarDataset, indices: np.ndarray, targets: np.ndarray,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        if len(indices) != len(targets):
            raise ValueError(f"{len(indices)} indices but {len(targets)} targets")
        self.ds, self.indices, self.targets, self.transform = ds, np.asarray(indices), np.asarray(targets), transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int):
        x = torch.from_numpy(self.ds.frame(int(self.indices[k])))
        if self.transform is not None:
            x = self.transform(x)
        return x, torch.as_tensor(self.targets[k])


def history_plan(times: pd.DatetimeIndex, stale: np.ndarray, end: int, history: int,
                 cadence_hours: float, max_fill: int, tolerance_min: float = 30.0):
    """Frame indices for the `history` steps ending at frame `end` (-1 = to interpolate), or the
    reason the history is unusable."""
    t = times.as_unit("ns").asi8
    step = int(cadence_hours * 3.6e12)
    tol = int(tolerance_min * 6e10)
    wanted = t[end] - step * np.arange(history - 1, -1, -1)
    j = np.clip(np.searchsorted(t, wanted), 0, len(t) - 1)
    cand = np.stack([np.clip(j - 1, 0, len(t) - 1), j])
    best = cand[np.argmin(np.abs(t[cand] - wanted), axis=0), np.arange(history)]
    ok = (np.abs(t[best] - wanted) <= tol) & ~stale[best]
    plan = np.where(ok, best, -1)
    plan[-1] = end
    if plan[0] < 0:
        return None, "first frame of the history missing"
    run = 0
    for p in plan:
        run = run + 1 if p < 0 else 0
        if run > max_fill:
            return None, f"more than {max_fill} consecutive frames missing"
    return plan, None


class SequenceDataset(Dataset):
    """(history float32 (T, C, H, W), target) ending at each of `end_indices`."""

    def __init__(self, ds: SolarDataset, end_indices: np.ndarray, targets: np.ndarray,
                 history: int = 10, cadence_hours: float = 1.0, max_fill: int = 2,
                 tolerance_min: float = 30.0) -> None:
        if len(end_indices) != len(targets):
            raise ValueError(f"{len(end_indices)} end indices but {len(targets)} targets")
        times = ds.times
        stale = ds.labels["stale"].to_numpy(bool) if "stale" in ds.labels else np.zeros(len(ds), bool)
        self.ds, self.history = ds, history
        self.plans, keep, reasons = [], [], Counter()
        for k, end in enumerate(np.asarray(end_indices)):
            plan, why = history_plan(times, stale, int(end), history, cadence_hours, max_fill,
                                     tolerance_min)
            if plan is None:
                reasons[why] += 1
                continue
            self.plans.append(plan)
            keep.append(k)
        self.end_indices = np.asarray(end_indices)[keep]
        self.targets = np.asarray(targets)[keep]
        self.skipped = dict(reasons)
        self.filled = int(sum((p < 0).sum() for p in self.plans))

    def frame_indices(self) -> np.ndarray:
        """Every real frame any history reads (for leakage checks)."""
        if not self.plans:
            return np.zeros(0, int)
        return np.unique(np.concatenate([p[p >= 0] for p in self.plans]))

    def __len__(self) -> int:
        return len(self.plans)

    def __getitem__(self, k: int):
        plan = self.plans[k]
        frames = np.empty((len(plan), *self.ds.frames.shape[1:]), np.float32)
        for step, i in enumerate(plan):
            if i >= 0:
                frames[step] = self.ds.frame(int(i))
        missing = np.flatnonzero(plan < 0)
        if missing.size:
            known = np.flatnonzero(plan >= 0)
            flat = frames.reshape(len(plan), -1)
            for m in missing:
                left, right = known[known < m].max(), known[known > m].min()
                w = (m - left) / (right - left)
                flat[m] = (1 - w) * flat[left] + w * flat[right]
        return torch.from_numpy(frames), torch.as_tensor(self.targets[k])
