"""The dataset directory: the one contract every downstream piece reads.

    <dir>/frames.zarr     the chunked frame store `solargen data build` writes (solargen.data.store:
                          raw resized frames on a time axis with a present mask; normalised on
                          read), or
    <dir>/frames.npy      float16 (N, C, H, W), normalised to [-1, 1], memory-mappable (small
                          in-memory datasets: the synthetic default, bundles)
    <dir>/labels.parquet  one row per frame, in frame order, t_obs (UTC) first
    <dir>/meta.json       source, channels, size, scaling, normalisation, label rules, synthetic flag,
                          command and git commit that built it, counts
    <dir>/report.md       the human-readable build report

Normalisation: x_norm = 2 * (scaled - lo) / (hi - lo) - 1, clipped to [-1, 1], per channel, where
`scaled` is the raw brightness after the scaling named in meta["scaling"] (see `scale_brightness`).
8-bit pictures of normalised frames (PNG, display) map [-1, 1] linearly onto 0..255 (`to_uint8`,
`from_uint8`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from solargen import io
from solargen.data.store import StoreFrames
from solargen.errors import SolargenError

FRAMES_FILE, LABELS_FILE, META_FILE, REPORT_FILE = "frames.npy", "labels.parquet", "meta.json", "report.md"
SCALINGS = ("linear", "log", "asinh", "signed")
FORMAT_VERSION = 1


class DatasetError(SolargenError):
    """A dataset directory that is missing, incomplete or inconsistent."""


def scale_brightness(raw: np.ndarray, scaling: str, asinh_a: float = 0.02) -> np.ndarray:
    """Brightness scaling applied before normalisation.

    linear: x;  log: log10(1 + x);  asinh: asinh(x / (a * max_ref)) with max_ref = 1, i.e. the
    raw values are expected in [0, 1]-ish units or the a parameter set accordingly.
    Negative raw values (calibrated DN can dip below 0) are clipped to 0 first, except by `signed`
    (x as it is: magnetograms, e.g. SDOMLv2's HMI Bx / By / Bz, keep their polarity).
    """
    if scaling == "signed":
        return np.asarray(raw, dtype=np.float32)
    x = np.clip(np.asarray(raw, dtype=np.float32), 0, None)
    if scaling == "linear":
        return x
    if scaling == "log":
        return np.log10(1.0 + x)
    if scaling == "asinh":
        return np.arcsinh(x / asinh_a).astype(np.float32)
    raise DatasetError(f"unknown brightness scaling {scaling!r}; choose one of {SCALINGS}")


def unscale_brightness(scaled: np.ndarray, scaling: str, asinh_a: float = 0.02) -> np.ndarray:
    """Inverse of `scale_brightness` (for non-negative raw values)."""
    y = np.asarray(scaled, dtype=np.float32)
    if scaling in ("linear", "signed"):
        return y
    if scaling == "log":
        return np.power(10.0, y) - 1.0
    if scaling == "asinh":
        return (np.sinh(y) * asinh_a).astype(np.float32)
    raise DatasetError(f"unknown brightness scaling {scaling!r}; choose one of {SCALINGS}")


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """Normalised frames in [-1, 1] (any shape) -> uint8 0..255 (values outside are clipped)."""
    return np.round((np.clip(np.asarray(frames, dtype=np.float32), -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


def from_uint8(pixels: np.ndarray) -> np.ndarray:
    """8-bit pixels 0..255 (any shape) -> float32 in [-1, 1]; the inverse of `to_uint8`."""
    return np.asarray(pixels, dtype=np.float32) / 127.5 - 1.0


@dataclass(frozen=True)
class Normalisation:
    """Per-channel affine map of scaled brightness onto [-1, 1]."""

    scaling: str
    lo: tuple[float, ...]
    hi: tuple[float, ...]
    asinh_a: float = 0.02

    def normalise(self, raw: np.ndarray) -> np.ndarray:
        """raw (..., C, H, W) -> [-1, 1] float32."""
        scaled = scale_brightness(raw, self.scaling, self.asinh_a)
        lo, hi = self._bounds(scaled.ndim)
        return np.clip(2.0 * (scaled - lo) / (hi - lo) - 1.0, -1.0, 1.0).astype(np.float32)

    def denormalise(self, x: np.ndarray) -> np.ndarray:
        """[-1, 1] -> raw brightness units of the source."""
        lo, hi = self._bounds(np.ndim(x))
        scaled = (np.asarray(x, dtype=np.float32) + 1.0) / 2.0 * (hi - lo) + lo
        return unscale_brightness(scaled, self.scaling, self.asinh_a)

    def _bounds(self, ndim: int) -> tuple[np.ndarray, np.ndarray]:
        shape = (len(self.lo),) + (1,) * 2
        shape = (1,) * (ndim - 3) + shape if ndim >= 3 else (1,) * ndim
        lo = np.asarray(self.lo, np.float32).reshape(shape) if ndim >= 3 else np.float32(self.lo[0])
        hi = np.asarray(self.hi, np.float32).reshape(shape) if ndim >= 3 else np.float32(self.hi[0])
        return lo, hi

    def to_dict(self) -> dict[str, Any]:
        return {"scaling": self.scaling, "lo": list(self.lo), "hi": list(self.hi),
                "asinh_a": self.asinh_a}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Normalisation":
        return cls(d["scaling"], tuple(d["lo"]), tuple(d["hi"]), d.get("asinh_a", 0.02))


@dataclass
class SolarDataset:
    """A loaded dataset directory: memory-mapped frames, the labels table, the metadata."""

    root: Path
    labels: pd.DataFrame
    meta: dict[str, Any]
    _frames: np.ndarray | None = field(default=None, repr=False)

    @property
    def frames(self) -> np.ndarray:
        """(N, C, H, W) float16 in [-1, 1]: a memmap of frames.npy, or the store's lazy reader
        (row i is the store slot labels['slot'][i]); index it, then cast with `.astype(np.float32)`."""
        if self._frames is None:
            if self.stored:
                self._frames = StoreFrames(self.root / self.meta["frames_store"]["path"],
                                           self.labels["slot"].to_numpy(), self.normalisation)
            else:
                self._frames = np.load(self.root / FRAMES_FILE, mmap_mode="r")
        return self._frames

    @property
    def stored(self) -> bool:
        """The frames live in a chunked store (frames.zarr) rather than frames.npy."""
        return "frames_store" in self.meta

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def times(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.labels["t_obs"])

    @property
    def channels(self) -> list[str]:
        return list(self.meta["channels"])

    @property
    def size(self) -> int:
        return int(self.meta["size"])

    @property
    def synthetic(self) -> bool:
        return bool(self.meta.get("synthetic", False))

    @cached_property
    def normalisation(self) -> Normalisation:
        return Normalisation.from_dict(self.meta["normalisation"])

    def frame(self, i: int) -> np.ndarray:
        """Frame i as float32 (C, H, W) in [-1, 1]."""
        return np.asarray(self.frames[i], dtype=np.float32)

    def describe(self) -> str:
        kind = "SYNTHETIC (embedded default, not solar data)" if self.synthetic else "real"
        t = self.times
        return (f"{self.root}: {len(self)} frames, {kind}, channels {self.channels}, "
                f"{self.size}x{self.size}, {t.min()} to {t.max()}")


def write_dataset(root: str | Path, frames: np.ndarray, labels: pd.DataFrame, meta: dict[str, Any],
                  report: str) -> SolarDataset:
    """Write a dataset directory atomically file by file (meta.json last, so a directory with a
    meta.json is complete). `frames` is (N, C, H, W) in [-1, 1]; `labels` has t_obs and N rows."""
    root = Path(root)
    _check_contents(frames, labels, meta, str(root))
    root.mkdir(parents=True, exist_ok=True)
    (root / META_FILE).unlink(missing_ok=True)
    io.save_npy(root / FRAMES_FILE, np.ascontiguousarray(frames, dtype=np.float16))
    table = labels.reset_index(drop=True)
    table = table[["t_obs"] + [c for c in table.columns if c != "t_obs"]]
    with io.atomic_path(root / LABELS_FILE) as tmp:
        table.to_parquet(tmp, index=False)
    io.write_text(root / REPORT_FILE, report)
    full_meta = {"format_version": FORMAT_VERSION, "n_frames": int(len(table)), **meta}
    full_meta.setdefault("synthetic", False)
    io.write_json(root / META_FILE, full_meta)
    return load_dataset(root)


def write_store_dataset(root: str | Path, labels: pd.DataFrame, meta: dict[str, Any],
                        report: str) -> SolarDataset:
    """Finish a dataset directory whose frames are in its store (meta["frames_store"]): labels
    (with a `slot` column into the store), report, and meta.json last."""
    root = Path(root)
    _check_labels(labels, meta, str(root))
    table = labels.reset_index(drop=True)
    table = table[["t_obs"] + [c for c in table.columns if c != "t_obs"]]
    with io.atomic_path(root / LABELS_FILE) as tmp:
        table.to_parquet(tmp, index=False)
    io.write_text(root / REPORT_FILE, report)
    io.write_json(root / META_FILE, {"format_version": FORMAT_VERSION, "n_frames": int(len(table)), **meta})
    return load_dataset(root)


def _check_contents(frames: np.ndarray, labels: pd.DataFrame, meta: dict[str, Any], where: str) -> None:
    if frames.ndim != 4:
        raise DatasetError(f"{where}: frames must be (N, C, H, W), got shape {frames.shape}")
    if len(frames) != len(labels):
        raise DatasetError(f"{where}: {len(frames)} frames but {len(labels)} label rows")
    _check_labels(labels, meta, where)
    if frames.shape[1] != len(meta["channels"]):
        raise DatasetError(f"{where}: frames have {frames.shape[1]} channels, meta names "
                           f"{len(meta['channels'])}")
    if not np.isfinite(frames).all():
        raise DatasetError(f"{where}: frames contain NaN or infinite values")


def _check_labels(labels: pd.DataFrame, meta: dict[str, Any], where: str) -> None:
    if "t_obs" not in labels:
        raise DatasetError(f"{where}: labels table has no t_obs column")
    t = pd.DatetimeIndex(labels["t_obs"])
    if t.tz is None:
        raise DatasetError(f"{where}: t_obs must be timezone-aware UTC")
    if t.hasnans:
        raise DatasetError(f"{where}: {int(t.isna().sum())} frames have no t_obs")
    if not t.is_monotonic_increasing or t.has_duplicates:
        raise DatasetError(f"{where}: t_obs must be strictly increasing")
    for key in ("channels", "size", "normalisation", "source"):
        if key not in meta:
            raise DatasetError(f"{where}: meta lacks {key!r}")


def load_dataset(root: str | Path) -> SolarDataset:
    """Open a dataset directory written by `solargen data build` or `solargen data synthetic`."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a dataset directory (it does not exist)")
    for name in (META_FILE, LABELS_FILE):
        if not (root / name).is_file():
            raise DatasetError(f"{root}: not a complete solargen dataset ({name} is missing; "
                               "build one with `solargen data build` or `solargen data synthetic`)")
    meta = io.read_json(root / META_FILE)
    frames = root / meta["frames_store"]["path"] / "zarr.json" if "frames_store" in meta else root / FRAMES_FILE
    if not frames.is_file():
        raise DatasetError(f"{root}: not a complete solargen dataset ({frames.relative_to(root)} "
                           "is missing)")
    labels = pd.read_parquet(root / LABELS_FILE)
    labels["t_obs"] = pd.to_datetime(labels["t_obs"], utc=True)
    ds = SolarDataset(root=root, labels=labels, meta=meta)
    if ds.frames.shape[0] != len(labels):
        raise DatasetError(f"{root}: {ds.frames.shape[0]} frames but {len(labels)} label rows")
    return ds
