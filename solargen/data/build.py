"""`solargen data build`: images + GOES flux + flare catalogue -> a labelled dataset directory.

read -> validate (bad frames skipped and listed) -> resize (area) -> scale -> normalise -> label.
Normalisation range: 8-bit products (the browse bundle, PNG/JPG) use their fixed 0..255 range, so
no statistic is taken from the data; other sources use a fixed physical range (`norm_range`) or the
0.5 / 99.5 percentiles of the scaled brightness over the frames of a TRAINING window only (the
training window of fold `norm_fold` of `norm_folds`, or `norm_window`), so that validation and
test frames never move the statistics. Which, and over how many frames, is in meta.json and the
report.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from solargen import io
from solargen.data.catalogs import mark_eruptive, read_cdaw, read_flares
from solargen.data.dataset import Normalisation, SolarDataset, scale_brightness, write_dataset
from solargen.data.goes import GOES_CLASSES, read_goes
from solargen.data.labels import (ERUPTIVE_MIN_CLASSES, HORIZONS_HOURS, eruptive_before_peak,
                                  eruptive_counts, label_frames)
from solargen.data.sources import FrameError, area_resize, open_source
from solargen.data.splits import load_folds
from solargen.errors import SolargenError


@dataclass(frozen=True)
class BuildConfig:
    images: str
    goes: Path
    flares: Path | None = None
    cmes: Path | None = None
    times: Path | None = None
    size: int = 64
    channels: tuple[str, ...] = ("171",)
    scaling: str = "linear"
    peak_tolerance_min: float = 7.0
    goes_window_min: float = 5.0
    horizons: tuple[float, ...] = HORIZONS_HOURS
    percentiles: tuple[float, float] = (0.5, 99.5)
    norm_folds: str = "configs/folds/2012-rolling.yaml"
    norm_fold: str = "f1"
    norm_window: tuple[str, str] | None = None      # UTC [start, end): instead of the fold's
    norm_range: tuple[float, float] | None = None   # a fixed raw range instead of percentiles
    dark_fraction: float = 0.01     # skip a frame whose largest black region covers more of the disk


BLACKOUT = "blacked-out region"


def blacked_out(image: np.ndarray, value_range: tuple[float, float] | None, limit: float) -> float | None:
    """The fraction of the central disk (within 0.75 of the half-width, on the disk for browse
    images and level-1 AIA alike) that the largest connected black region covers, when it exceeds
    `limit`: a blacked-out block or a missing readout. Black is <= 2 of 255 for 8-bit products
    (their JPEG noise never reaches it on the disk) and exactly 0 otherwise."""
    from scipy import ndimage
    h, w = image.shape
    yy, xx = np.mgrid[:h, :w]
    disk = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2) < 0.75 * min(h, w) / 2
    black = image <= (value_range[0] + 2 * (value_range[1] - value_range[0]) / 255 if value_range else 0.0)
    labels, count = ndimage.label(black & disk)
    if count == 0:
        return None
    pixels = np.bincount(labels.ravel())[1:].max()
    largest = pixels / disk.sum()
    return float(largest) if largest > limit and pixels >= 4 else None   # a lone pixel is noise


def _normalisation(raw: np.ndarray, times: pd.DatetimeIndex, value_range,
                   config: BuildConfig) -> tuple[Normalisation, str]:
    n = raw.shape[1]
    fixed = value_range if value_range is not None else config.norm_range
    if fixed is not None:
        lo, hi = (float(v) for v in scale_brightness(np.asarray(fixed, dtype=float), config.scaling))
        if not hi > lo:
            raise SolargenError(f"--norm-range {fixed[0]:g} {fixed[1]:g}: the upper end must exceed the lower")
        what = "of the 8-bit product" if value_range is not None else "given with --norm-range"
        return (Normalisation(config.scaling, (lo,) * n, (hi,) * n),
                f"fixed raw range {fixed[0]:g}..{fixed[1]:g} {what}")
    if config.norm_window is not None:
        start, end = (pd.Timestamp(t, tz="UTC") for t in config.norm_window)
        where = f"the window {start} to {end} (--norm-window)"
    else:
        start, end = load_folds(config.norm_folds).get(config.norm_fold).window("train")
        where = f"the training window of fold {config.norm_fold} of {config.norm_folds} ({start} to {end})"
    inside = np.asarray((times >= start) & (times < end))
    if not inside.any():
        raise SolargenError(f"{config.images}: no frame falls in {where}, so no training statistics "
                            "can normalise it; give --norm-window START END inside your training "
                            "period, or a fixed range with --norm-range LO HI")
    scaled = scale_brightness(raw[inside], config.scaling)
    p_lo, p_hi = config.percentiles
    lo = tuple(float(np.percentile(scaled[:, c], p_lo)) for c in range(n))
    hi = tuple(float(np.percentile(scaled[:, c], p_hi)) for c in range(n))
    hi = tuple(h if h > l else l + 1.0 for l, h in zip(lo, hi))
    return (Normalisation(config.scaling, lo, hi),
            f"{p_lo:g} / {p_hi:g} percentiles of scaled brightness over the {int(inside.sum())} "
            f"frames in {where}")


def build_dataset(config: BuildConfig, out: str | Path, progress: bool = True) -> SolarDataset:
    """Build the dataset directory `out`; see the module docstring."""
    if config.size < 8:
        raise SolargenError(f"--size {config.size} is too small (minimum 8 pixels)")
    source = open_source(config.images, config.channels, config.times)
    times = source.times()
    goes = read_goes(config.goes)
    events = read_flares(config.flares) if config.flares else None
    if events is not None and config.cmes:
        events = events.assign(eruptive=mark_eruptive(events, read_cdaw(config.cmes)))

    skipped: list[tuple[str, str]] = list(getattr(source, "unreadable", []))
    kept, frames = [], []
    for i in tqdm(range(len(times)), desc="reading frames", unit="frame", disable=not progress):
        try:
            channels = source.read(i)
        except FrameError as exc:
            skipped.append((source.origin(i), str(exc).split(": ", 1)[-1]))
            continue
        dark = [(ch, f) for ch, img in zip(config.channels, channels)
                if (f := blacked_out(img, source.value_range, config.dark_fraction)) is not None]
        if dark:
            skipped.append((source.origin(i), f"{BLACKOUT}: " + "; ".join(
                f"channel {ch}: a black region covers {f:.1%} of the central disk" for ch, f in dark)))
            continue
        frames.append(np.stack([area_resize(img, config.size) for img in channels]))
        kept.append(i)
    if not frames:
        raise SolargenError(f"{config.images}: no readable frames ({len(skipped)} skipped: "
                         f"{skipped[:3]})")
    raw = np.stack(frames)
    kept_times = times[kept]
    norm, norm_note = _normalisation(raw, kept_times, source.value_range, config)

    labels, counts = label_frames(kept_times, goes, events, config.goes_window_min,
                                  config.peak_tolerance_min, config.horizons)
    labels["stale"] = [source.stale(i) for i in kept]
    labels["origin"] = [source.origin(i) for i in kept]
    if events is not None and "eruptive" in events:
        labels["peak_eruptive"] = _peak_eruptive(labels, events)
        for letter in ERUPTIVE_MIN_CLASSES:
            for name, values in eruptive_before_peak(kept_times, events, letter).items():
                labels[name] = values.array
        eruptive = eruptive_counts(labels, events)
    else:
        eruptive = {}

    meta = {
        "source": source.description,
        "channels": list(config.channels),
        "size": config.size,
        "scaling": config.scaling,
        "normalisation": norm.to_dict(),
        "normalisation_note": norm_note,
        "synthetic": False,
        "classes": list(GOES_CLASSES),
        "label_rules": counts,
        "eruptive_rules": eruptive,
        "goes_file": str(config.goes),
        "goes_coverage": [goes.index[0], goes.index[-1]],
        "flare_catalogue": str(config.flares) if config.flares else None,
        "cme_catalogue": str(config.cmes) if config.cmes else None,
        "n_read": len(times),
        "n_skipped": len(skipped),
        "skipped": [{"frame": o, "reason": r} for o, r in skipped],
        "skipped_events": [{"row": r, "reason": why} for r, why in
                           (events.attrs.get("skipped", []) if events is not None else [])],
        "build_config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        **io.provenance(),
    }
    report = render_report(meta, labels)
    return write_dataset(out, norm.normalise(raw), labels, meta, report)


def _peak_eruptive(labels: pd.DataFrame, events: pd.DataFrame) -> pd.Series:
    lookup = dict(zip(events["peak"], events["eruptive"]))
    return labels["peak_time"].map(lambda t: lookup.get(t) if pd.notna(t) else None).astype("boolean")


def render_report(meta: dict, labels: pd.DataFrame) -> str:
    """Markdown build report: what was read, skipped, and labelled how (also for synthetic data)."""
    kind = ("**SYNTHETIC data (the embedded default), not solar observations.**"
            if meta.get("synthetic") else "Real observations.")
    t = pd.DatetimeIndex(labels["t_obs"])
    lines = [
        "# solargen dataset build report", "", kind, "",
        f"- source: {meta['source']}",
        f"- channels: {', '.join(meta['channels'])}; size {meta['size']} x {meta['size']} "
        f"({'rendered at this size' if meta.get('synthetic') else 'area-averaged'}); "
        f"brightness scaling: {meta['scaling']}",
        f"- normalisation to [-1, 1]: lo {meta['normalisation']['lo']}, hi "
        f"{meta['normalisation']['hi']} ({meta.get('normalisation_note', '')})",
        f"- frames: {meta.get('n_read', len(labels))} read, {len(labels)} kept, "
        f"{meta.get('n_skipped', 0)} skipped; {int(labels.get('stale', pd.Series(dtype=bool)).sum())} "
        "kept frames are flagged stale (the source repeated the previous hour)",
        f"- time range: {t.min()} to {t.max()}",
        f"- GOES: {meta.get('goes_file', 'n/a')}; flare catalogue: {meta.get('flare_catalogue')}; "
        f"CME catalogue: {meta.get('cme_catalogue')}",
        f"- command: `{meta.get('command', '')}` at commit {meta.get('git_commit', '')}", "",
        "## Label rules and class counts", "",
        "| column | rule | parameters | " + " | ".join(GOES_CLASSES) + " | missing |",
        "|---|---|---|" + "---|" * (len(GOES_CLASSES) + 1),
    ]
    for column, info in meta["label_rules"].items():
        params = ", ".join(f"{k}={v}" for k, v in info.items()
                           if k not in ("rule", "counts", "events_in_time_range", "frames_matched"))
        cells = [str(info["counts"].get(c, 0)) for c in GOES_CLASSES]
        lines.append(f"| {column} | {info['rule']} | {params} | " + " | ".join(cells) +
                     f" | {info['counts'].get('missing', 0)} |")
    peak = meta["label_rules"].get("peak_class", {})
    if peak.get("events_in_time_range"):
        lines += ["", f"Peak matching: {peak['events_in_time_range']} catalogued flares peak inside "
                      f"the time range; {peak['frames_matched']} frames took a flare's class "
                      f"(tolerance {peak['tolerance_min']} min after the peak). With hourly frames "
                      "most flares peak more than the tolerance before the next frame."]
    if meta.get("eruptive_rules"):
        lines += ["", "## Eruptive / confined labels", "",
                  "A flare is eruptive when a CDAW CME first appears in LASCO C2 between 30 min before "
                  "its start and 90 min after its peak, on its side of the Sun (a halo CME, or a "
                  "central position angle within half the CME width + 45 deg of the flare's; the "
                  "angle test is skipped for flares within 0.3 solar radii of disk centre or without "
                  "a location). Every frame in the 24 h before the peak of such a flare takes its "
                  "label; the eruptive label wins overlaps.", "",
                  "| column | minimum class | flares eruptive | flares confined | frames eruptive | "
                  "frames confined |", "|---|---|---|---|---|---|"]
        for column, info in meta["eruptive_rules"].items():
            lines.append(f"| {column} | {info['min_class']} | {info['flares']['eruptive']} | "
                         f"{info['flares']['confined']} | {info['frames']['eruptive']} | "
                         f"{info['frames']['confined']} |")
        lines += ["", "One year gives tens (>= M) to a few hundred (>= C) flares: per-fold counts are "
                      "small and confidence intervals on eruptive-task skill scores are wide."]
    lines += ["", "A `max_class_<h>h` label is missing where the window runs past the end of the "
                  "GOES series or has no valid sample; `goes_class` is missing where no valid "
                  "sample lies within the window (floor and fill values are missing data)."]
    lines += ["", "## Skipped frames", ""]
    blackouts = sum(s["reason"].startswith(BLACKOUT) for s in meta.get("skipped", []))
    lines.append(f"{blackouts} frames skipped for a {BLACKOUT} (the largest black area covers more "
                 f"than {meta.get('build_config', {}).get('dark_fraction', 0.01):.0%} of the central "
                 "disk: blacked-out blocks, partial readouts); the rest for unreadable input.\n")
    if meta.get("skipped"):
        lines += [f"- {s['frame']}: {s['reason']}" for s in meta["skipped"]]
    else:
        lines.append("None.")
    if meta.get("skipped_events"):
        lines += ["", "## Skipped catalogue events", ""]
        lines += [f"- data row {s['row']}: {s['reason']}" for s in meta["skipped_events"]]
    return "\n".join(lines) + "\n"
