"""Image sources behind one interface: a list of frames with times, read one at a time.

Supported inputs (`open_source` picks by path):
- bundle .npz (the layout of ../shared/data/sdo-aia-2012): keys aia<ch> (N, H, W), t_obs_<ch> (N,)
  ISO UTC strings, optional stale_<ch> (N,) bool; frame i of every channel is the same hour.
- a directory of FITS files (AIA level 1 or similar): time from DATE-OBS / T_OBS, channel from
  WAVELNTH; the image is the first 2-D HDU, divided by EXPTIME when present (DN/s).
- a directory of PNG/JPG images with a CSV of observation times (columns file, t_obs, optional
  channel); brightness = max over RGB (how the browse bundle was made).
- an SDOMLv2 zarr store (local path or fsspec URL): groups per year, arrays per channel named
  '171A' (or '171'), (N, H, W), with a per-image 'T_OBS' list in the array attributes.
Multi-channel frames are matched to the first channel's time within +-`match_min` minutes.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from solargen.errors import SolargenError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
FITS_SUFFIXES = (".fits", ".fts", ".fit", ".fits.gz", ".fts.gz")


class SourceError(SolargenError):
    """An image source that cannot be opened or whose timestamps are unusable (stops the build)."""


class FrameError(SolargenError):
    """One unreadable frame (corrupt file, NaN pixels): the build skips it and reports why."""


class ImageSource(Protocol):
    channels: tuple[str, ...]
    description: str
    value_range: tuple[float, float] | None  # fixed raw range (8-bit products), None = data-driven

    def times(self) -> pd.DatetimeIndex: ...

    def read(self, i: int) -> list[np.ndarray]:
        """Raw 2-D brightness arrays, one per channel (float32; sizes may differ by channel)."""

    def origin(self, i: int) -> str: ...

    def stale(self, i: int) -> bool: ...

    def channel_times(self, channel: str) -> pd.DatetimeIndex:
        """The source times of one channel's frames (a build's plan matches slots to them)."""

    def read_one(self, channel: str, j: int) -> np.ndarray:
        """Frame j of `channel` in its own time order: raw 2-D float32, checked finite."""

    def origin_of(self, channel: str, j: int) -> str: ...


def _parse_times(values, where: str) -> pd.DatetimeIndex:
    t = pd.to_datetime(pd.Series(values, dtype=object).replace("", None), utc=True, errors="coerce")
    if t.isna().any():
        i = int(np.flatnonzero(t.isna().to_numpy())[0])
        raise SourceError(f"{where}: {int(t.isna().sum())} missing or unreadable timestamps "
                          f"(first at entry {i}: {values[i]!r})")
    return pd.DatetimeIndex(t)


def _check_order(t: pd.DatetimeIndex, where: str, names=None) -> None:
    dup = t.duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        other = int(np.flatnonzero(t == t[i])[0])
        what = f"{names[other]} and {names[i]}" if names is not None else f"entries {other} and {i}"
        raise SourceError(f"{where}: duplicated timestamp {t[i]} ({what})")
    if not t.is_monotonic_increasing:
        i = int(np.flatnonzero(np.diff(t.asi8) < 0)[0]) + 1
        what = f" ({names[i]})" if names is not None else ""
        raise SourceError(f"{where}: timestamps are not sorted: entry {i}{what} at {t[i]} comes "
                          f"after {t[i - 1]}")


def _check_finite(image: np.ndarray, origin: str) -> np.ndarray:
    if image.ndim != 2 or image.shape[0] < 2 or image.shape[1] < 2:
        raise FrameError(f"{origin}: expected a 2-D image, got shape {image.shape}")
    bad = ~np.isfinite(image)
    if bad.any():
        raise FrameError(f"{origin}: {int(bad.sum())} NaN or infinite pixels")
    return image.astype(np.float32, copy=False)


def _match(reference: pd.DatetimeIndex, other: pd.DatetimeIndex, match_min: float) -> np.ndarray:
    """For each reference time, the index of the nearest `other` time within match_min, else -1."""
    ref, oth = reference.as_unit("ns").asi8, other.as_unit("ns").asi8
    j = np.clip(np.searchsorted(oth, ref), 1, max(len(oth) - 1, 1))
    cand = np.stack([j - 1, np.minimum(j, len(oth) - 1)])
    dist = np.abs(oth[cand] - ref)
    best = cand[np.argmin(dist, axis=0), np.arange(len(ref))]
    ok = np.abs(oth[best] - ref) <= match_min * 60e9
    return np.where(ok, best, -1)


# ----------------------------------------------------------------------------- bundle .npz

@dataclass
class BundleSource:
    path: Path
    channels: tuple[str, ...]

    def __post_init__(self) -> None:
        try:
            self._load()
        except (OSError, ValueError, EOFError) as exc:
            if isinstance(exc, SourceError):
                raise
            raise SourceError(f"{self.path}: not a readable .npz bundle ({exc})") from None
        self.description = f"bundle {self.path.name} ({', '.join(self.channels)})"
        dtypes = {self._images[ch].dtype for ch in self.channels}
        self.value_range = (0.0, 255.0) if dtypes == {np.dtype(np.uint8)} else None

    def _load(self) -> None:
        self._npz = np.load(self.path, allow_pickle=False)
        self._images = {}
        for ch in self.channels:
            key = f"aia{ch}"
            if key not in self._npz.files:
                have = sorted(k[3:] for k in self._npz.files if k.startswith("aia"))
                raise SourceError(f"{self.path}: no channel {ch} in bundle (has {have})")
            self._images[ch] = self._npz[key]
        first = self.channels[0]
        if f"t_obs_{first}" not in self._npz.files:
            raise SourceError(f"{self.path}: bundle lacks t_obs_{first}")
        self._t = _parse_times(self._npz[f"t_obs_{first}"], str(self.path))
        _check_order(self._t, f"{self.path} (t_obs_{first})")
        n = len(self._t)
        stale = np.zeros(n, bool)
        for ch in self.channels:
            if len(self._images[ch]) != n:
                raise SourceError(f"{self.path}: aia{ch} has {len(self._images[ch])} frames, "
                                  f"t_obs_{first} has {n}")
            if f"stale_{ch}" in self._npz.files:
                stale |= self._npz[f"stale_{ch}"].astype(bool)
        self._stale = stale

    def times(self) -> pd.DatetimeIndex:
        return self._t

    def read(self, i: int) -> list[np.ndarray]:
        return [self.read_one(ch, i) for ch in self.channels]

    def origin(self, i: int) -> str:
        return f"{self.path.name}[{i}]"

    def channel_times(self, channel: str) -> pd.DatetimeIndex:
        return self._t

    def read_one(self, channel: str, j: int) -> np.ndarray:
        return _check_finite(np.asarray(self._images[channel][j], np.float32), self.origin(j))

    def origin_of(self, channel: str, j: int) -> str:
        return self.origin(j)

    def stale(self, i: int) -> bool:
        return bool(self._stale[i])


class _MatchedChannels(ABC):
    """Shared behaviour of per-file sources: each channel has its own time list, matched to the
    first channel's times; subclasses fill `_times` and implement `_read_one`."""

    channels: tuple[str, ...]
    match_min: float
    _times: dict[str, pd.DatetimeIndex]

    def _match_channels(self) -> None:
        ref = self._times[self.channels[0]]
        self._index = {ch: _match(ref, self._times[ch], self.match_min) for ch in self.channels}

    @abstractmethod
    def _read_one(self, channel: str, j: int) -> np.ndarray:
        """The raw image number j of `channel`."""

    def times(self) -> pd.DatetimeIndex:
        return self._times[self.channels[0]]

    def channel_times(self, channel: str) -> pd.DatetimeIndex:
        return self._times[channel]

    def read_one(self, channel: str, j: int) -> np.ndarray:
        return self._read_one(channel, j)

    def origin_of(self, channel: str, j: int) -> str:
        return str(self._files[channel][j])

    def read(self, i: int) -> list[np.ndarray]:
        out = []
        for ch in self.channels:
            j = self._index[ch][i]
            if j < 0:
                raise FrameError(f"{self.origin(i)}: no channel {ch} frame within "
                                 f"{self.match_min:g} min")
            out.append(self._read_one(ch, j))
        return out

    def origin(self, i: int) -> str:
        return str(self._files[self.channels[0]][i])

    def stale(self, i: int) -> bool:
        return False


# ----------------------------------------------------------------------------- FITS directory

def _fits_files(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_file() and
                  any(p.name.lower().endswith(s) for s in FITS_SUFFIXES))


def _fits_header(path: Path) -> tuple[pd.Timestamp | None, str | None, str | None]:
    """(time, channel, error) from a FITS header; the error names the problem."""
    from astropy.io import fits
    try:
        with fits.open(path) as hdul:
            hdu = next((h for h in hdul if h.header.get("NAXIS", 0) == 2), None)
            if hdu is None:
                return None, None, "no 2-D image HDU"
            header = hdu.header
            when = header.get("T_OBS") or header.get("DATE-OBS") or header.get("DATE_OBS")
            wave = header.get("WAVELNTH")
    except (OSError, ValueError, TypeError) as exc:
        return None, None, f"unreadable FITS ({exc})"
    if when is None:
        return None, None, "no DATE-OBS/T_OBS in header"
    t = pd.to_datetime(str(when).replace("Z", "").replace("_TAI", ""), utc=True, errors="coerce")
    if pd.isna(t):
        return None, None, f"unreadable DATE-OBS {when!r}"
    return t, (str(int(float(wave))) if wave is not None else None), None


def _read_fits_image(path: Path) -> np.ndarray:
    from astropy.io import fits
    try:
        with fits.open(path) as hdul:
            hdu = next(h for h in hdul if h.header.get("NAXIS", 0) == 2)
            data = np.asarray(hdu.data, dtype=np.float32)
            exptime = float(hdu.header.get("EXPTIME", 0) or 0)
    except (OSError, ValueError, TypeError, StopIteration) as exc:
        raise FrameError(f"{path}: unreadable FITS image ({exc})") from None
    if exptime > 0:
        data = data / exptime
    return _check_finite(data, str(path))


@dataclass
class FitsDirSource(_MatchedChannels):
    root: Path
    channels: tuple[str, ...]
    match_min: float = 30.0

    def __post_init__(self) -> None:
        files = _fits_files(self.root)
        if not files:
            raise SourceError(f"{self.root}: no FITS files ({', '.join(FITS_SUFFIXES)})")
        per_channel: dict[str, list[tuple[pd.Timestamp, Path]]] = {ch: [] for ch in self.channels}
        self.unreadable: list[tuple[str, str]] = []
        for path in files:
            t, wave, error = _fits_header(path)
            if error:
                self.unreadable.append((str(path), error))
                continue
            ch = wave if wave in per_channel else (self.channels[0] if wave is None and
                                                   len(self.channels) == 1 else None)
            if ch is not None:
                per_channel[ch].append((t, path))
        self._files: dict[str, list[Path]] = {}
        self._times: dict[str, pd.DatetimeIndex] = {}
        for ch, items in per_channel.items():
            if not items:
                raise SourceError(f"{self.root}: no readable FITS file of channel {ch}")
            items.sort(key=lambda x: x[0])
            t = pd.DatetimeIndex([x[0] for x in items])
            _check_order(t, f"{self.root} (channel {ch})", names=[x[1].name for x in items])
            self._files[ch], self._times[ch] = [x[1] for x in items], t
        self._match_channels()
        self.description = f"FITS directory {self.root} ({', '.join(self.channels)})"
        self.value_range = None

    def _read_one(self, channel: str, j: int) -> np.ndarray:
        return _read_fits_image(self._files[channel][j])


# ----------------------------------------------------------------------------- image folder + CSV

def _read_picture(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError
    if not path.is_file():
        raise FrameError(f"{path}: image file missing")
    if path.stat().st_size == 0:
        raise FrameError(f"{path}: empty (zero-byte) image file")
    try:
        with Image.open(path) as img:
            img.load()
            arr = np.asarray(img.convert("RGB"), dtype=np.float32)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise FrameError(f"{path}: corrupt or truncated image ({exc})") from None
    return _check_finite(arr.max(axis=2), str(path))


@dataclass
class ImageFolderSource(_MatchedChannels):
    root: Path
    times_csv: Path
    channels: tuple[str, ...]
    match_min: float = 30.0

    def __post_init__(self) -> None:
        if not self.times_csv or not Path(self.times_csv).is_file():
            raise SourceError(f"{self.root}: an image folder needs --times <csv> with columns "
                              f"file, t_obs (not found: {self.times_csv})")
        try:
            table = pd.read_csv(self.times_csv, dtype=str, keep_default_na=False)
        except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
            raise SourceError(f"{self.times_csv}: cannot read times CSV ({exc})") from None
        missing = {"file", "t_obs"} - set(table.columns)
        if missing:
            raise SourceError(f"{self.times_csv}: missing column(s) {sorted(missing)}")
        if "channel" not in table:
            if len(self.channels) > 1:
                raise SourceError(f"{self.times_csv}: several channels requested but the CSV has "
                                  "no 'channel' column")
            table["channel"] = self.channels[0]
        table["channel"] = table["channel"].str.replace("A", "", regex=False).str.strip()
        self._files, self._times = {}, {}
        for ch in self.channels:
            rows = table[table["channel"] == ch]
            if rows.empty:
                raise SourceError(f"{self.times_csv}: no rows for channel {ch}")
            where = f"{self.times_csv} (channel {ch})"
            t = _parse_times(rows["t_obs"].tolist(), where)
            _check_order(t, where, names=rows["file"].tolist())
            self._files[ch] = [self.root / f for f in rows["file"]]
            self._times[ch] = t
        self._match_channels()
        self.description = f"image folder {self.root} with times {self.times_csv}"
        self.value_range = (0.0, 255.0)

    def _read_one(self, channel: str, j: int) -> np.ndarray:
        return _read_picture(self._files[channel][j])


# ----------------------------------------------------------------------------- SDOMLv2 zarr

@dataclass
class ZarrSource(_MatchedChannels):
    url: str
    channels: tuple[str, ...]
    match_min: float = 30.0

    def __post_init__(self) -> None:
        import zarr
        options = {"anon": True} if self.url.startswith("s3://") else None   # public buckets
        try:
            root = zarr.open_group(self.url, mode="r", storage_options=options)
        except Exception as exc:  # zarr raises many types for a bad store
            raise SourceError(f"{self.url}: not a readable zarr store ({exc})") from None
        self._arrays: dict[str, list] = {ch: [] for ch in self.channels}
        self._times: dict[str, pd.DatetimeIndex] = {}
        years = sorted(name for name, _ in root.groups()) or [None]
        for ch in self.channels:
            pieces, times = [], []
            for year in years:
                group = root[year] if year is not None else root
                names = {name for name, _ in group.arrays()}
                name = next((n for n in (f"{ch}A", ch) if n in names), None)
                if name is None:
                    continue
                arr = group[name]
                t_obs = arr.attrs.get("T_OBS")
                if t_obs is None or len(t_obs) != arr.shape[0]:
                    raise SourceError(f"{self.url}/{year}/{name}: T_OBS attribute missing or of "
                                      f"the wrong length")
                pieces += [(arr, k) for k in range(arr.shape[0])]
                times += list(t_obs)
            if not pieces:
                hint = (" (no group or array could be listed: over http(s) a store needs consolidated "
                        "metadata, .zmetadata, as SDOMLv2 carries; zarr.consolidate_metadata writes it)"
                        if years == [None] and self.url.startswith(("http://", "https://")) else "")
                raise SourceError(f"{self.url}: no array for channel {ch} ('{ch}A' or '{ch}'){hint}")
            t = _parse_times(times, f"{self.url} (channel {ch})")
            order = np.argsort(t.asi8, kind="stable")
            t = t[order]
            _check_order(t, f"{self.url} (channel {ch})")
            self._arrays[ch] = [pieces[k] for k in order]
            self._times[ch] = t
        self._match_channels()
        self._cache: dict[str, tuple] = {}
        self.synthetic = bool(root.attrs.get("synthetic", False))   # solargen's synthetic survey
        self.description = (f"{'SYNTHETIC survey in SDOML layout' if self.synthetic else 'SDOML zarr'} "
                            f"{self.url} ({', '.join(self.channels)})")
        self.value_range = None

    def _read_one(self, channel: str, j: int) -> np.ndarray:
        """Through a one-chunk cache per channel: read in time order, each source chunk (SDOMLv2
        holds 15 frames a chunk) is fetched and decompressed once."""
        arr, k = self._arrays[channel][j]
        step = arr.chunks[0]
        first = k - k % step
        cached = self._cache.get(channel)
        if cached is None or cached[0] is not arr or cached[1] != first:
            cached = (arr, first, np.asarray(arr[first:first + step]))
            self._cache[channel] = cached
        return _check_finite(np.asarray(cached[2][k - first], np.float32), self.origin_of(channel, j))

    def origin(self, i: int) -> str:
        return self.origin_of(self.channels[0], i)

    def origin_of(self, channel: str, j: int) -> str:
        arr, k = self._arrays[channel][j]
        return f"{self.url}/{arr.path}[{k}]"

def open_source(images: str | Path, channels: tuple[str, ...], times: Path | None = None) -> ImageSource:
    """Pick the source type from the path: .npz bundle, .zarr (or URL), FITS dir, image dir."""
    text = str(images)
    if "://" in text or text.rstrip("/").endswith(".zarr"):
        return ZarrSource(text, channels)
    path = Path(images)
    if not path.exists():
        raise SourceError(f"{path}: image source not found")
    if path.is_file() and path.suffix.lower() == ".npz":
        return BundleSource(path, channels)
    if path.is_dir():
        if (path / "zarr.json").exists() or (path / ".zgroup").exists():
            return ZarrSource(text, channels)
        if _fits_files(path):
            return FitsDirSource(path, channels)
        if any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir()):
            return ImageFolderSource(path, times, channels)
    raise SourceError(f"{path}: not a recognised image source (a .npz bundle, a directory of FITS "
                      "or PNG/JPG files, or an SDOML .zarr store)")


def area_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a 2-D image to size x size by area averaging (exact block means when the size
    divides; otherwise torch's adaptive average pooling, which is area interpolation)."""
    h, w = image.shape
    if (h, w) == (size, size):
        return image.astype(np.float32, copy=False)
    if h % size == 0 and w % size == 0:
        return image.reshape(size, h // size, size, w // size).mean(axis=(1, 3), dtype=np.float64).astype(np.float32)
    import torch
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    return torch.nn.functional.adaptive_avg_pool2d(x, size)[0, 0].numpy()
