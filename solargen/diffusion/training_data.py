"""The frames a diffusion model trains on, and the order and noise of every step.

The batch at optimiser step s is a pure function of (seed, s): the data order of epoch e is drawn
from SeedSequence([seed, e]) and the noise, timesteps and label dropout of step s's whole global
batch from SeedSequence([seed, s]); a process trains on its chunk of that batch. So the frames and
noise of a step do not depend on the number of processes or micro-batches, and a resumed run
continues exactly like one that was never interrupted.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from solargen import io
from solargen.data.dataset import load_dataset
from solargen.data.goes import GOES_CLASSES, letters_from_flux
from solargen.data.splits import fold_indices, load_folds
from solargen.diffusion.autoencoder import FitConfig, SolarAutoencoder, train_autoencoder
from solargen.diffusion.run_config import RunConfig, TrainError, flux_column

class FrameReader:
    """Rows of a dataset directory's frames, opened lazily in each process that reads (a loader
    worker reopens the store or memmap itself: nothing large is pickled, fsspec handles never
    cross a fork)."""

    def __init__(self, root: str | Path):
        self.root, self._ds, self._pid = str(root), None, None

    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root, "_ds": None, "_pid": None}

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        if self._ds is None or self._pid != os.getpid():
            self._ds, self._pid = load_dataset(self.root), os.getpid()
        return np.asarray(self._ds.frames[rows], np.float16)   # a store reads in slot order itself


@dataclass
class TrainingData:
    """The frames of one fold's training split that carry the label: in memory (`frames`), or
    read from the dataset when needed (`reader`, dataset rows `rows`)."""

    frames: torch.Tensor | None     # (N, C, H, W) float16 in [-1, 1]; None when streamed
    class_index: torch.Tensor       # (N,) long into GOES_CLASSES
    log_flux: torch.Tensor          # (N,) float32 (NaN for a class-only model)
    letters: np.ndarray             # (N,) str
    summary: dict[str, Any]
    latent: torch.Tensor | None = None   # (N, latent_dim) for a class_latent model
    latent_encoder: SolarAutoencoder | None = None
    reader: FrameReader | None = None
    rows: np.ndarray | None = None       # (N,) dataset rows of the training frames
    frame_shape: tuple[int, ...] = ()

    def read(self, idx: np.ndarray) -> torch.Tensor:
        """Training frames `idx` (into 0..N-1) as float16, from memory or the dataset."""
        idx = np.asarray(idx)
        if self.frames is not None:
            return self.frames[torch.from_numpy(idx)]
        return torch.from_numpy(self.reader[self.rows[idx]])


def load_training_data(cfg: RunConfig) -> tuple[TrainingData, Any]:
    """Training split of the fold, with missing labels (and stale repeats) excluded and counted."""
    ds = load_dataset(cfg.data.dataset)
    fold = load_folds(cfg.data.folds).get(cfg.data.fold)
    train_idx = fold_indices(ds.times, fold)["train"]
    labels = ds.labels.iloc[train_idx]
    # the labels a model needs: a class+latent model is a class model here (latents come later)
    kind = "class" if cfg.train.conditioning == "class_latent" else cfg.train.conditioning
    needed = [cfg.data.label_column] if kind == "class" else (
        [flux_column(cfg.data.label_column)] + ([cfg.data.label_column] if kind == "both" else []))
    for column in needed:
        if column not in labels.columns:
            raise TrainError(f"{ds.root}: labels table has no {column!r} column (has "
                             f"{list(labels.columns)})")
    keep = np.ones(len(labels), dtype=bool)
    excluded: dict[str, int] = {}
    if cfg.data.drop_stale and "stale" in labels.columns:
        stale = labels["stale"].fillna(False).to_numpy(dtype=bool)
        excluded["stale"] = int(stale.sum())
        keep &= ~stale
    for column in needed:
        missing = labels[column].isna().to_numpy() & keep
        excluded[f"missing_{column}"] = int(missing.sum())
        keep &= ~missing
    if kind != "class":
        flux = labels[flux_column(cfg.data.label_column)].to_numpy(dtype=float)
        bad = keep & ~(flux > 0)
        if bad.any():
            raise TrainError(f"{ds.root}: {int(bad.sum())} training frames have a non-positive "
                             f"{flux_column(cfg.data.label_column)}")
    rows = train_idx[keep]
    if len(rows) == 0:
        raise TrainError(f"{ds.root}: fold {fold.name!r} leaves no labelled training frames")
    kept = labels[keep]
    if kind == "class":
        letters = kept[cfg.data.label_column].to_numpy(dtype=object).astype(str)
        log_flux = np.full(len(rows), np.nan, dtype=np.float32)
    else:
        flux = kept[flux_column(cfg.data.label_column)].to_numpy(dtype=float)
        letters = (kept[cfg.data.label_column].to_numpy(dtype=object) if kind == "both"
                   else letters_from_flux(flux)).astype(str)
        log_flux = np.log10(flux).astype(np.float32)
    unknown = sorted(set(letters) - set(GOES_CLASSES))
    if unknown:
        raise TrainError(f"{ds.root}: column {cfg.data.label_column!r} holds non-GOES classes {unknown}")
    frames = None if cfg.data.stream else torch.from_numpy(np.ascontiguousarray(ds.frames[rows], dtype=np.float16))
    counts = {c: int((letters == c).sum()) for c in GOES_CLASSES if (letters == c).any()}
    start, end = fold.window("train")
    summary = {
        "dataset": str(ds.root), "folds": cfg.data.folds, "fold": fold.name,
        "train_window": [start.isoformat(), (end - pd.Timedelta(seconds=1)).isoformat()],
        "first_frame": ds.times[rows[0]].isoformat(), "last_frame": ds.times[rows[-1]].isoformat(),
        "frames_in_window": int(len(train_idx)), "frames_used": int(len(rows)),
        "excluded": excluded, "class_counts": counts,
        "label_column": cfg.data.label_column,
        "flux_column": None if kind == "class" else flux_column(cfg.data.label_column),
    }
    if kind != "class":
        summary["flux_quantiles"] = {c: np.quantile(log_flux[letters == c], np.linspace(0, 1, 21)).tolist()
                                     for c in counts}
    summary["frames_from"] = (f"read per step by {cfg.data.loader_workers} loader workers"
                              if cfg.data.stream else "memory")
    data = TrainingData(frames, torch.tensor([GOES_CLASSES.index(c) for c in letters]),
                        torch.from_numpy(log_flux), letters, summary,
                        reader=FrameReader(ds.root) if cfg.data.stream else None, rows=rows,
                        frame_shape=tuple(ds.frames.shape[1:]))
    return data, ds


class BatchOrder:
    """Frame indices of every optimiser step's global batch: epoch e shuffled (or class-balanced)
    by SeedSequence([seed, e]). A global batch is processes x micro-batches x batch_size frames;
    what a process sees is a slice of it (`chunk`), so the frames of a step do not depend on how
    it is split across processes and accumulation."""

    def __init__(self, letters: np.ndarray, global_batch: int, seed: int, balanced: bool):
        self.n, self.global_batch, self.seed = len(letters), global_batch, seed
        if self.n < global_batch:
            raise TrainError(f"{self.n} training frames are fewer than one batch of {global_batch}")
        self.steps_per_epoch = self.n // global_batch
        counts = {c: (letters == c).sum() for c in set(letters)}
        w = np.array([1.0 / counts[c] for c in letters])
        self.weights = w / w.sum() if balanced else None
        self._epoch, self._order = -1, np.empty(0, dtype=np.int64)

    def indices(self, step: int) -> np.ndarray:
        epoch, pos = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch]))
            self._order = (rng.choice(self.n, size=self.n, p=self.weights) if self.weights is not None
                           else rng.permutation(self.n))
            self._epoch = epoch
        return self._order[pos * self.global_batch:(pos + 1) * self.global_batch]


def chunk(micro: int, rank: int, processes: int, batch_size: int) -> slice:
    """The rows of a global batch that micro-batch `micro` of process `rank` trains on."""
    start = (micro * processes + rank) * batch_size
    return slice(start, start + batch_size)


class StepFrames(Dataset):
    """Item `step`: the frames this process trains on at optimiser step `step` (its chunk of each
    micro-batch of the step's global batch, micro-batch after micro-batch), read from the dataset
    when asked. A pure function of (seed, step): each rank reads only its own shard, and a resumed
    run reads exactly the stream an uninterrupted one would have read from there."""

    def __init__(self, data: TrainingData, order: BatchOrder, rank: int, processes: int,
                 micro_batches: int, batch_size: int):
        self.reader, self.rows, self.order = data.reader, data.rows, order
        self.chunks = [chunk(m, rank, processes, batch_size) for m in range(micro_batches)]

    def indices(self, step: int) -> np.ndarray:
        batch = self.order.indices(step)
        return np.concatenate([batch[c] for c in self.chunks])

    def __getitem__(self, step: int) -> torch.Tensor:
        return torch.from_numpy(self.reader[self.rows[self.indices(step)]])


def step_stream(data: TrainingData, order: BatchOrder, steps: range, rank: int, processes: int,
                micro_batches: int, batch_size: int, workers: int):
    """Iterator over this process's frames of optimiser steps `steps`, prefetched by `workers`
    spawned reader processes (spawn, not fork: fsspec file systems are not fork-safe)."""
    frames = StepFrames(data, order, rank, processes, micro_batches, batch_size)
    return iter(DataLoader(frames, batch_size=None, sampler=steps, num_workers=workers,
                           multiprocessing_context="spawn" if workers else None,
                           prefetch_factor=4 if workers else None))


def step_generator(seed: int, step: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The random stream of one optimiser step (noise, timesteps, label dropout of its whole global
    batch; every process draws all of it and keeps its chunk)."""
    state = np.random.SeedSequence([seed, step, 1]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator(device=device).manual_seed(int(state) & 0x7FFF_FFFF_FFFF_FFFF)


def fit_latent_encoder(cfg: RunConfig, data: TrainingData, directory: Path,
                       main: bool) -> tuple[SolarAutoencoder, torch.Tensor]:
    """The domain autoencoder of a class_latent model, trained on the training frames only (kept in
    the run directory, so a resumed run reuses it), and the latents of those frames."""
    if (io.recover_dir(directory) / "config.json").is_file():
        encoder = SolarAutoencoder.from_pretrained(directory)
    else:
        encoder, _ = train_autoencoder(data.read(np.arange(len(data.letters))).float().numpy(),
                                       FitConfig(epochs=cfg.train.latent_epochs, seed=cfg.seed),
                                       latent_dim=cfg.train.latent_dim)
        if main:
            with io.atomic_dir(directory) as tmp:
                encoder.save_pretrained(tmp)
    encoder.eval()
    with torch.no_grad():
        n = len(data.letters)
        latents = torch.cat([encoder.encode(data.read(np.arange(i, min(i + 256, n))).float())
                             for i in range(0, n, 256)])
    return encoder, latents.float()
