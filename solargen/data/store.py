"""The chunked frame store of a dataset directory, its streaming statistics and its lazy reader.

    <dataset>/frames.zarr/            zarr v3 group (attrs: channels, size, n_slots, parts, plan)
        frames      (T, C, H, W) float32 resized raw brightness in source units, one chunk per
                    slot holding every channel, Blosc zstd with bit-shuffle; NaN where absent
        present     (T,) bool: the slot holds a frame (written by `finalise`)
        t_source    (T, C) int64 ns since the epoch: each channel's source t_obs (NaT value where
                    absent; written by `finalise`)
        build/plan.parquet      the slot table: slot time, each channel's source frame, origin,
                                stale flag (written once by `init`)
        build/part-00007.npz    part 7's present mask, source times and partial statistics
        build/part-00007.json   part 7's skipped slots with reasons; written last: the flag that
                                part 7 is complete

The time axis is either the source's own frame times or a regular grid at a cadence (missing
frames keep their slot and are reported). Frames are stored before normalisation: the dataset's
`meta.json` holds the normalisation (fixed for 8-bit products, else from statistics merged over the
parts' training-window frames), and `StoreFrames` applies it on read, giving exactly the float16
values a `frames.npy` build holds. The build pattern is anemoi-datasets' init / load part i of N /
finalise: parts own disjoint slot ranges (so disjoint chunks), a finished part is never redone,
and a part killed half-way is redone whole.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from solargen import io
from solargen.errors import SolargenError

# zarr is imported where a store is opened: solargen.data.dataset (imported by every command)
# imports this module, and zarr adds about 0.3 s to a start-up that never touches a store.

class StoreError(SolargenError):
    """A frame store that is incomplete or was made for other settings."""


STORE_DIR = "frames.zarr"
STORE_FORMAT = "solargen-frame-store"
STORE_VERSION = 1
NAT = np.iinfo(np.int64).min
# Percentiles come from a histogram over the top bits of each float32 value, mapped to integers in
# the order of the values (negative values too: signed magnetograms): relative resolution
# 2^-(23 - DROP_BITS) = 2.4e-4.
DROP_BITS = 12


def compressor():
    from zarr.codecs import BloscCodec
    return BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")


# ----------------------------------------------------------------------------- statistics

N_BINS = 1 << (32 - DROP_BITS)
HALF = N_BINS // 2


def value_bins(values: np.ndarray) -> np.ndarray:
    """Histogram bin (0..N_BINS-1) of each float32 value, in the order of the values."""
    bits = (np.asarray(values, np.float32) + np.float32(0.0)).view(np.int32).astype(np.int64)   # -0 -> 0
    ordered = np.where(bits >= 0, bits, -(bits & 0x7FFFFFFF) - 1)
    return (ordered >> DROP_BITS) + HALF


def bin_edges(index: int) -> tuple[float, float]:
    """The values at the two ends of bin `index` of `value_bins`."""
    out = []
    for ordered in ((index - HALF) << DROP_BITS, ((index - HALF + 1) << DROP_BITS) - 1):
        bits = ordered if ordered >= 0 else (-(ordered + 1)) | -0x80000000
        out.append(float(np.array([bits], np.int64).astype(np.int32).view(np.float32)[0]))
    return out[0], out[1]


@dataclass
class PartialStats:
    """Per-channel count, sum, sum of squares, min, max and a value histogram of scaled brightness
    over some frames; partials of disjoint frame sets merge exactly (the histogram's percentiles
    are exact to its bin width)."""

    count: np.ndarray          # (C,) int64 pixels
    total: np.ndarray          # (C,) float64
    squares: np.ndarray        # (C,) float64
    low: np.ndarray            # (C,) float64
    high: np.ndarray           # (C,) float64
    hist: np.ndarray           # (C, N_BINS) int64 pixels per bin of the float32 bit pattern

    @classmethod
    def empty(cls, channels: int) -> "PartialStats":
        return cls(np.zeros(channels, np.int64), np.zeros(channels), np.zeros(channels),
                   np.full(channels, np.inf), np.full(channels, -np.inf),
                   np.zeros((channels, N_BINS), np.int64))

    def add(self, scaled: np.ndarray) -> None:
        """Add one frame (C, H, W) of scaled brightness."""
        for c, plane in enumerate(np.asarray(scaled, np.float32)):
            values = plane.ravel()
            self.count[c] += values.size
            self.total[c] += values.sum(dtype=np.float64)
            self.squares[c] += np.square(values, dtype=np.float64).sum()
            self.low[c] = min(self.low[c], float(values.min()))
            self.high[c] = max(self.high[c], float(values.max()))
            self.hist[c] += np.bincount(value_bins(values), minlength=N_BINS)

    def merge(self, other: "PartialStats") -> "PartialStats":
        return PartialStats(self.count + other.count, self.total + other.total,
                            self.squares + other.squares, np.minimum(self.low, other.low),
                            np.maximum(self.high, other.high), self.hist + other.hist)

    @property
    def mean(self) -> np.ndarray:
        return self.total / np.maximum(self.count, 1)

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(np.maximum(self.squares / np.maximum(self.count, 1) - self.mean ** 2, 0.0))

    def percentile(self, q: float) -> np.ndarray:
        """Per channel, the q-th percentile by numpy's linear rule on the order statistics, each
        order statistic taken at the centre of its histogram bin (clipped to [min, max])."""
        out = []
        for c in range(len(self.count)):
            cum = np.cumsum(self.hist[c])
            rank = q / 100.0 * (self.count[c] - 1)
            lo, frac = int(np.floor(rank)), float(rank - np.floor(rank))

            def at(r: int) -> float:
                lo_edge, hi_edge = bin_edges(int(np.searchsorted(cum, r + 1)))
                return float(np.clip((lo_edge + hi_edge) / 2, self.low[c], self.high[c]))

            out.append(at(lo) if frac == 0 else (1 - frac) * at(lo) + frac * at(lo + 1))
        return np.asarray(out)

    def to_arrays(self) -> dict[str, np.ndarray]:
        channel, key = np.nonzero(self.hist)
        return {"count": self.count, "total": self.total, "squares": self.squares, "low": self.low,
                "high": self.high, "hist_channel": channel, "hist_key": key,
                "hist_count": self.hist[channel, key]}

    @classmethod
    def from_arrays(cls, arrays: Any) -> "PartialStats":
        hist = np.zeros((len(arrays["count"]), N_BINS), np.int64)
        hist[arrays["hist_channel"], arrays["hist_key"]] = arrays["hist_count"]
        return cls(np.asarray(arrays["count"]), np.asarray(arrays["total"]),
                   np.asarray(arrays["squares"]), np.asarray(arrays["low"]),
                   np.asarray(arrays["high"]), hist)


# ----------------------------------------------------------------------------- the store

@dataclass(frozen=True)
class PartResult:
    """What one part found: per slot of its range, present and the channels' source t_obs."""

    present: np.ndarray        # (n,) bool
    t_source: np.ndarray       # (n, C) int64 ns, NAT where absent
    stats: PartialStats
    skipped: list[tuple[str, str]]   # (origin, reason)


class FrameStore:
    """A dataset directory's frames.zarr: `init` it from a plan, `write_part` each part, read
    `present` / `t_source` after `finalise`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    # -- init
    @classmethod
    def init(cls, path: str | Path, plan: pd.DataFrame, channels: tuple[str, ...], size: int,
             part_slots: int, attrs: dict[str, Any]) -> "FrameStore":
        """Create the store for `plan` (one row per slot), or reopen one made for the same plan
        and attrs (a resumed build); a store made for another plan is an error, never mixed."""
        import zarr
        store = cls(path)
        identity = {"format": STORE_FORMAT, "version": STORE_VERSION, "channels": list(channels),
                    "size": int(size), "n_slots": int(len(plan)), "part_slots": int(part_slots),
                    **attrs}
        identity = json.loads(json.dumps(identity, default=io._json_default))
        if (store.path / "zarr.json").is_file() and (store.path / "build" / "plan.parquet").is_file():
            have = store.attrs
            if have != identity:
                diff = sorted(k for k in set(have) | set(identity) if have.get(k) != identity.get(k))
                raise StoreError(f"{store.path}: an unfinished build with other settings is there "
                                   f"(differs in {diff}); remove it or build into another directory")
            return store
        group = zarr.open_group(store.path, mode="w", zarr_format=3)
        group.create_array("frames", shape=(len(plan), len(channels), size, size), dtype="float32",
                           chunks=(1, len(channels), size, size), compressors=compressor(),
                           fill_value=np.nan)
        with io.atomic_path(store.path / "build" / "plan.parquet") as tmp:   # a row group a part
            plan.to_parquet(tmp, index=False, row_group_size=part_slots)
        group.attrs.update(identity)   # last: a store with attrs and a plan is initialised
        return store

    @property
    def attrs(self) -> dict[str, Any]:
        return json.loads((self.path / "zarr.json").read_text())["attributes"]

    @property
    def n_parts(self) -> int:
        a = self.attrs
        return -(-a["n_slots"] // a["part_slots"])

    def part_range(self, part: int) -> range:
        a = self.attrs
        return range(part * a["part_slots"], min((part + 1) * a["part_slots"], a["n_slots"]))

    def plan(self, part: int | None = None) -> pd.DataFrame:
        """The slot table, or one part's rows (its own row group: a part reads only its slots)."""
        if part is None:
            return pd.read_parquet(self.path / "build" / "plan.parquet")
        return pq.ParquetFile(self.path / "build" / "plan.parquet").read_row_group(part).to_pandas()

    def frames_array(self, mode: str = "r"):
        import zarr
        return zarr.open_array(self.path / "frames", mode=mode)

    # -- load
    def _part_file(self, part: int, suffix: str) -> Path:
        return self.path / "build" / f"part-{part:05d}.{suffix}"

    def part_done(self, part: int) -> bool:
        return self._part_file(part, "json").is_file()

    def write_part(self, part: int, result: PartResult) -> None:
        """Record part `part` as complete (its frames are already in `frames`)."""
        with io.atomic_path(self._part_file(part, "npz")) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, present=result.present, t_source=result.t_source,
                         **result.stats.to_arrays())
        io.write_json(self._part_file(part, "json"),
                      {"part": part, "skipped": [{"frame": o, "reason": r} for o, r in result.skipped]})

    def read_part(self, part: int) -> PartResult:
        with np.load(self._part_file(part, "npz")) as arrays:
            stats = PartialStats.from_arrays(arrays)
            present, t_source = arrays["present"], arrays["t_source"]
        skipped = io.read_json(self._part_file(part, "json"))["skipped"]
        return PartResult(present, t_source, stats, [(s["frame"], s["reason"]) for s in skipped])

    # -- finalise
    def finalise(self) -> tuple[np.ndarray, np.ndarray, PartialStats, list[tuple[str, str]]]:
        """Merge the parts: present mask, source times, statistics and skipped slots; write the
        mask and times into the store; sweep what killed writers left behind."""
        import zarr
        missing = [p for p in range(self.n_parts) if not self.part_done(p)]
        if missing:
            raise StoreError(f"{self.path}: parts {missing[:10]} of {self.n_parts} are not built yet")
        present, t_source, skipped, stats = [], [], [], None
        for p in range(self.n_parts):     # merged as read: memory does not grow with the parts
            r = self.read_part(p)
            present.append(r.present)
            t_source.append(r.t_source)
            skipped += r.skipped
            stats = r.stats if stats is None else stats.merge(r.stats)
        present, t_source = np.concatenate(present), np.concatenate(t_source)
        group = zarr.open_group(self.path, mode="r+")
        for name, values in (("present", present), ("t_source", t_source)):
            if name not in group:
                group.create_array(name, shape=values.shape, dtype=values.dtype,
                                   chunks=values.shape, compressors=compressor(),
                                   fill_value=False if values.dtype == bool else NAT)
            group[name][...] = values
        self.sweep()
        return present, t_source, stats, skipped

    def sweep(self) -> None:
        """Remove temporary files that a killed writer left (zarr's '*.partial', ours '.*.tmp')."""
        for root, _, files in os.walk(self.path):
            for name in files:
                if name.endswith(".partial") or (name.startswith(".") and name.endswith(".tmp")):
                    Path(root, name).unlink(missing_ok=True)


def store_checksum(path: str | Path) -> str:
    """SHA-256 over every file of a store (relative path and bytes, in sorted order)."""
    import hashlib
    digest = hashlib.sha256()
    root = Path(path)
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(root)).encode() + b"\0")
        digest.update(file.read_bytes())
    return digest.hexdigest()


# ----------------------------------------------------------------------------- lazy reader

class StoreFrames:
    """The frames of a store dataset as an (N, C, H, W) float16 array-like in [-1, 1]: row i is
    store slot `slots[i]`, read and normalised on access. Picklable and fork/spawn safe: the zarr
    handle is reopened in each process."""

    dtype = np.dtype(np.float16)

    def __init__(self, path: str | Path, slots: np.ndarray, normalisation: Any):
        """`normalisation`: a solargen.data.dataset.Normalisation (anything with `normalise`)."""
        self.path, self.slots, self.normalisation = str(path), np.asarray(slots, np.int64), normalisation
        self._array, self._pid = None, None
        a = json.loads((Path(path) / "frames" / "zarr.json").read_text())
        self.shape = (len(self.slots), *a["shape"][1:])

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_array": None, "_pid": None}

    def __len__(self) -> int:
        return self.shape[0]

    def _frames(self):
        if self._array is None or self._pid != os.getpid():
            import zarr
            self._array, self._pid = zarr.open_array(self.path + "/frames", mode="r"), os.getpid()
        return self._array

    def raw(self, rows) -> np.ndarray:
        """Unnormalised frames of `rows` (an int, slice or integer array), float32."""
        slots = self.slots[rows]
        if np.ndim(slots) == 0:
            return np.asarray(self._frames()[int(slots)])
        if len(slots) == 0:
            return np.zeros((0, *self.shape[1:]), np.float32)
        order = np.argsort(slots, kind="stable")
        out = np.empty((len(slots), *self.shape[1:]), np.float32)
        out[order] = self._frames().get_orthogonal_selection((slots[order],))
        return out

    def __getitem__(self, rows) -> np.ndarray:
        """Rows (an int, slice or integer array) normalised to [-1, 1], float16."""
        raw = self.raw(np.asarray(rows) if isinstance(rows, list) else rows)
        return self.normalisation.normalise(raw).astype(np.float16)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.concatenate([self[i:i + 256] for i in range(0, len(self), 256)]) if len(self) \
            else np.zeros(self.shape, np.float16)
        return out if dtype is None else out.astype(dtype)

