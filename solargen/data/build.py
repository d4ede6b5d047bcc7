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

import functools
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage
from tqdm.auto import tqdm

from solargen import io
from solargen.data.catalogs import mark_eruptive, read_cdaw, read_flares
from solargen.data.dataset import (FRAMES_FILE, META_FILE, SCALINGS, Normalisation, SolarDataset,
                                   scale_brightness, write_store_dataset)
from solargen.data.goes import GOES_CLASSES, read_goes
from solargen.data.labels import (ERUPTIVE_MIN_CLASSES, HORIZONS_HOURS, eruptive_before_peak,
                                  eruptive_counts, label_frames)
from solargen.data.sources import FrameError, ImageSource, _match, area_resize, open_source
from solargen.data.splits import load_folds
from solargen.data.store import DROP_BITS, NAT, STORE_DIR, FrameStore, PartialStats, PartResult
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
    start: str | None = None        # UTC [start, end) of the slots; default: the source's span
    end: str | None = None
    cadence: str | None = None      # a regular time axis (e.g. "12min", "1h"); None: the source's
    tolerance_min: float | None = None   # channel matching; default cadence / 2, else 30 min
    part_slots: int = 256           # slots per part (one task of the parallel build)


BLACKOUT = "blacked-out region"
WRITE_BLOCK = 16          # slots written to the store per call


def blacked_out(image: np.ndarray, value_range: tuple[float, float] | None, limit: float,
                signed: bool = False) -> float | None:
    """The fraction of the central disk (within 0.75 of the half-width, on the disk for browse
    images and level-1 AIA alike) that the largest connected black region covers, when it exceeds
    `limit`: a blacked-out block or a missing readout. Black is <= 2 of 255 for 8-bit products
    (their JPEG noise never reaches it on the disk), <= 0 for other brightness and exactly 0 for
    signed data (magnetograms)."""
    h, w = image.shape
    yy, xx = np.mgrid[:h, :w]
    disk = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2) < 0.75 * min(h, w) / 2
    if signed:
        black = image == 0
    else:
        black = image <= (value_range[0] + 2 * (value_range[1] - value_range[0]) / 255 if value_range else 0.0)
    labels, count = ndimage.label(black & disk)
    if count == 0:
        return None
    pixels = np.bincount(labels.ravel())[1:].max()
    largest = pixels / disk.sum()
    return float(largest) if largest > limit and pixels >= 4 else None   # a lone pixel is noise


def _tolerance_min(config: BuildConfig) -> float:
    if config.tolerance_min is not None:
        return config.tolerance_min
    return pd.Timedelta(config.cadence).total_seconds() / 120.0 if config.cadence else 30.0


def _utc(text: str, what: str) -> pd.Timestamp:
    t = pd.to_datetime(text, utc=True, errors="coerce")
    if pd.isna(t):
        raise SolargenError(f"--{what} {text!r} is not a date/time")
    return t


def make_plan(source: ImageSource, config: BuildConfig) -> pd.DataFrame:
    """One row per slot: its time, each channel's source frame within the tolerance (-1: none),
    the origin of the first channel's frame and the stale flag."""
    ref = source.times()
    start = _utc(config.start, "start") if config.start else None
    end = _utc(config.end, "end") if config.end else None
    if config.cadence:
        try:
            step = pd.Timedelta(config.cadence)
        except ValueError:
            raise SolargenError(f"--cadence {config.cadence!r} is not a duration (e.g. 12min, 1h)") from None
        if step <= pd.Timedelta(0):
            raise SolargenError(f"--cadence {config.cadence!r} must be positive")
        first = start.floor(step) if start is not None else ref[0].round(step)
        slots = pd.date_range(first, end if end is not None else ref[-1].round(step) + step, freq=step,
                              inclusive="left")
    else:
        inside = np.ones(len(ref), bool)
        if start is not None:
            inside &= np.asarray(ref >= start)
        if end is not None:
            inside &= np.asarray(ref < end)
        slots = ref[inside]
    if len(slots) == 0:
        raise SolargenError(f"{config.images}: no frame between --start {config.start} and --end "
                            f"{config.end} (the source spans {ref[0]} to {ref[-1]})")
    tolerance = _tolerance_min(config)
    plan = pd.DataFrame({"t_slot": slots})
    for ch in config.channels:
        plan[f"source_{ch}"] = _match(slots, source.channel_times(ch), tolerance)
    first = plan[f"source_{config.channels[0]}"].to_numpy()
    plan["origin"] = [source.origin_of(config.channels[0], int(j)) if j >= 0 else
                      f"{source.description} at {t.isoformat()}" for j, t in zip(first, slots)]
    plan["stale"] = [bool(source.stale(int(j))) if j >= 0 else False for j in first]
    return plan


def _norm_window(config: BuildConfig) -> tuple[pd.Timestamp, pd.Timestamp, str]:
    if config.norm_window is not None:
        start, end = (pd.Timestamp(t, tz="UTC") for t in config.norm_window)
        return start, end, f"the window {start} to {end} (--norm-window)"
    start, end = load_folds(config.norm_folds).get(config.norm_fold).window("train")
    return start, end, (f"the training window of fold {config.norm_fold} of {config.norm_folds} "
                        f"({start} to {end})")


def _fixed_range(config: BuildConfig, value_range) -> tuple[float, float] | None:
    return value_range if value_range is not None else config.norm_range


def init_build(config: BuildConfig, out: Path) -> FrameStore:
    """Stage 1: check the config, read the source's index, write the plan and the empty store."""
    if config.size < 8:
        raise SolargenError(f"--size {config.size} is too small (minimum 8 pixels)")
    if config.part_slots < 1:
        raise SolargenError(f"--part-slots {config.part_slots} must be at least 1")
    if config.scaling not in SCALINGS:
        raise SolargenError(f"--scaling {config.scaling!r}: choose one of {SCALINGS}")
    source = open_source(config.images, config.channels, config.times)
    plan = make_plan(source, config)
    fixed = _fixed_range(config, source.value_range)
    window = None
    if fixed is None:
        start, end, _ = _norm_window(config)
        window = [start.isoformat(), end.isoformat()]
    attrs = {"source": source.description, "cadence": config.cadence,
             "tolerance_min": _tolerance_min(config), "scaling": config.scaling,
             "dark_fraction": config.dark_fraction, "stats_window": window,
             "value_range": list(source.value_range) if source.value_range else None,
             "synthetic": bool(getattr(source, "synthetic", False))}
    out.mkdir(parents=True, exist_ok=True)
    store = FrameStore.init(out / STORE_DIR, plan, config.channels, config.size, config.part_slots, attrs)
    if not all(store.part_done(p) for p in range(store.n_parts)):
        (out / META_FILE).unlink(missing_ok=True)     # a dataset dir with a meta.json is complete
        (out / FRAMES_FILE).unlink(missing_ok=True)   # an older in-RAM build's frames
    return store


@functools.lru_cache(maxsize=2)
def _worker_source(images: str, channels: tuple[str, ...], times: Path | None) -> ImageSource:
    """A worker opens (and indexes) a source once for all the parts it runs."""
    return open_source(images, channels, times)


def load_part(config: BuildConfig, store_path: str, part: int, progress: bool = False) -> int:
    """Stage 2, part `part`: read, check, resize and store the frames of its slots; record the
    part's statistics and skipped slots. A finished part is not redone; returns frames stored."""
    store = FrameStore(store_path)
    if store.part_done(part):
        return 0
    attrs = store.attrs
    source = _worker_source(config.images, config.channels, config.times)
    plan = store.plan(part)
    slots = store.part_range(part)
    frames = store.frames_array("r+")
    value_range = tuple(attrs["value_range"]) if attrs["value_range"] else None
    window = attrs["stats_window"] and [pd.Timestamp(t) for t in attrs["stats_window"]]
    stats = PartialStats.empty(len(config.channels))
    present = np.zeros(len(plan), bool)
    skipped: list[tuple[str, str]] = []
    block = np.full((WRITE_BLOCK, len(config.channels), config.size, config.size), np.nan, np.float32)
    rows = plan.itertuples(index=False)
    for k, row in enumerate(tqdm(rows, total=len(plan), desc=f"part {part}", unit="frame",
                                 disable=not progress)):
        if k % WRITE_BLOCK == 0 and k:      # consecutive slots go to the store in one call
            frames[slots.start + k - WRITE_BLOCK:slots.start + k] = block
            block[:] = np.nan
        frame = _read_slot(source, row, config, value_range, attrs["tolerance_min"], skipped)
        if frame is None:
            continue
        block[k % WRITE_BLOCK] = frame
        present[k] = True
        if window and window[0] <= row.t_slot < window[1]:
            stats.add(scale_brightness(frame, config.scaling))
    tail = (len(plan) - 1) % WRITE_BLOCK + 1
    frames[slots.stop - tail:slots.stop] = block[:tail]
    t_source = np.stack([_source_times(source, ch, plan[f"source_{ch}"].to_numpy(), present)
                         for ch in config.channels], axis=1)
    store.write_part(part, PartResult(present, t_source, stats, skipped))
    return int(present.sum())


def _source_times(source: ImageSource, channel: str, index: np.ndarray, present: np.ndarray) -> np.ndarray:
    """ns since the epoch of each present slot's `channel` frame (NAT where absent)."""
    times = source.channel_times(channel).as_unit("ns").asi8
    return np.where(present & (index >= 0), times[np.maximum(index, 0)], NAT)


def _read_slot(source: ImageSource, row, config: BuildConfig, value_range, tolerance_min: float,
               skipped: list[tuple[str, str]]) -> np.ndarray | None:
    """One slot's frame (C, size, size), or None with the reason appended to `skipped`."""
    origin = row.origin
    try:
        images = []
        for ch in config.channels:
            j = int(getattr(row, f"source_{ch}"))
            if j < 0:
                raise FrameError(f"{origin}: no channel {ch} frame within {tolerance_min:g} min")
            images.append(source.read_one(ch, j))
    except FrameError as exc:   # name the channel's own frame when it is not the slot's
        message = str(exc)
        skipped.append((origin, message.split(": ", 1)[-1] if message.startswith(f"{origin}:") else message))
        return None
    dark = [(ch, f) for ch, img in zip(config.channels, images)
            if (f := blacked_out(img, value_range, config.dark_fraction, config.scaling == "signed")) is not None]
    if dark:
        skipped.append((origin, f"{BLACKOUT}: " + "; ".join(
            f"channel {ch}: a black region covers {f:.1%} of the central disk" for ch, f in dark)))
        return None
    return np.stack([area_resize(img, config.size) for img in images])


def _normalisation(stats: PartialStats, value_range, config: BuildConfig,
                   n_channels: int) -> tuple[Normalisation, str]:
    fixed = _fixed_range(config, value_range)
    if fixed is not None:
        lo, hi = (float(v) for v in scale_brightness(np.asarray(fixed, dtype=float), config.scaling))
        if not hi > lo:
            raise SolargenError(f"--norm-range {fixed[0]:g} {fixed[1]:g}: the upper end must exceed the lower")
        what = "of the 8-bit product" if value_range is not None else "given with --norm-range"
        return (Normalisation(config.scaling, (lo,) * n_channels, (hi,) * n_channels),
                f"fixed raw range {fixed[0]:g}..{fixed[1]:g} {what}")
    _, _, where = _norm_window(config)
    frames = int(stats.count[0] // (config.size * config.size)) if len(stats.count) else 0
    if frames == 0:
        raise SolargenError(f"{config.images}: no frame falls in {where}, so no training statistics "
                            "can normalise it; give --norm-window START END inside your training "
                            "period, or a fixed range with --norm-range LO HI")
    p_lo, p_hi = config.percentiles
    lo = tuple(float(v) for v in stats.percentile(p_lo))
    hi = tuple(float(v) for v in stats.percentile(p_hi))
    hi = tuple(h if h > l else l + 1.0 for l, h in zip(lo, hi))
    return (Normalisation(config.scaling, lo, hi),
            f"{p_lo:g} / {p_hi:g} percentiles of scaled brightness over the {frames} frames in "
            f"{where} (merged from the parts' histograms, bin width 2^-{23 - DROP_BITS} relative)")


def finalise_build(config: BuildConfig, out: Path) -> SolarDataset:
    """Stage 3: merge the parts (mask, statistics, skipped), label the present frames, write
    labels.parquet, report.md and meta.json (last)."""
    store = FrameStore(out / STORE_DIR)
    attrs = store.attrs
    present, t_source, stats, skipped = store.finalise()
    plan = store.plan()
    kept = np.flatnonzero(present)
    if len(kept) == 0:
        raise SolargenError(f"{config.images}: no readable frames ({len(skipped)} skipped: "
                            f"{skipped[:3]})")
    value_range = tuple(attrs["value_range"]) if attrs["value_range"] else None
    norm, norm_note = _normalisation(stats, value_range, config, len(config.channels))
    kept_times = pd.DatetimeIndex(plan["t_slot"].iloc[kept])
    goes = read_goes(config.goes)
    events = read_flares(config.flares) if config.flares else None
    if events is not None and config.cmes:
        events = events.assign(eruptive=mark_eruptive(events, read_cdaw(config.cmes)))
    labels, counts = label_frames(kept_times, goes, events, config.goes_window_min,
                                  config.peak_tolerance_min, config.horizons)
    labels["stale"] = plan["stale"].to_numpy(bool)[kept]
    labels["origin"] = plan["origin"].to_numpy(object)[kept]
    if config.cadence:
        for c, ch in enumerate(config.channels):
            labels[f"t_source_{ch}"] = pd.to_datetime(t_source[kept, c], utc=True)
    labels["slot"] = kept
    if events is not None and "eruptive" in events:
        labels["peak_eruptive"] = _peak_eruptive(labels, events)
        for letter in ERUPTIVE_MIN_CLASSES:
            for name, values in eruptive_before_peak(kept_times, events, letter).items():
                labels[name] = values.array
        eruptive = eruptive_counts(labels, events)
    else:
        eruptive = {}
    meta = {
        "source": attrs["source"],
        "channels": list(config.channels),
        "size": config.size,
        "scaling": config.scaling,
        "normalisation": norm.to_dict(),
        "normalisation_note": norm_note,
        "frames_store": {"path": STORE_DIR, "slots": int(len(plan)), "present": int(len(kept)),
                         "parts": store.n_parts, "part_slots": attrs["part_slots"],
                         "cadence": config.cadence, "tolerance_min": attrs["tolerance_min"],
                         "window_stats": {"mean": stats.mean.tolist(), "std": stats.std.tolist(),
                                          "min": stats.low.tolist(), "max": stats.high.tolist(),
                                          "pixels": stats.count.tolist()}},
        "synthetic": attrs["synthetic"],
        "classes": list(GOES_CLASSES),
        "label_rules": counts,
        "eruptive_rules": eruptive,
        "goes_file": str(config.goes),
        "goes_coverage": [goes.index[0], goes.index[-1]],
        "flare_catalogue": str(config.flares) if config.flares else None,
        "cme_catalogue": str(config.cmes) if config.cmes else None,
        "n_read": int(len(plan)),
        "n_skipped": len(skipped),
        "skipped": [{"frame": o, "reason": r} for o, r in skipped],
        "skipped_events": [{"row": r, "reason": why} for r, why in
                           (events.attrs.get("skipped", []) if events is not None else [])],
        "build_config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        **io.provenance(),
    }
    return write_store_dataset(out, labels, meta, render_report(meta, labels))


def build_dataset(config: BuildConfig, out: str | Path, progress: bool = True,
                  executor: str = "local", workers: int | None = None,
                  address: str | None = None) -> SolarDataset:
    """Build (or resume building) the dataset directory `out`; see the module docstring.
    executor 'local': a process pool of `workers` (1: in this process); 'ray': one Ray task a
    part (on the cluster at `address`, else a local Ray). Every executor writes the same bytes."""
    if executor not in ("local", "ray"):
        raise SolargenError(f"--executor {executor!r}: choose local or ray")
    if workers is not None and workers < 1:
        raise SolargenError(f"--workers {workers} must be at least 1")
    out = Path(out)
    store = init_build(config, out)
    todo = [p for p in range(store.n_parts) if not store.part_done(p)]
    run_parts(config, str(store.path), todo, executor, workers, address, progress)
    return finalise_build(config, out)


def run_parts(config: BuildConfig, store_path: str, parts: list[int], executor: str,
              workers: int | None, address: str | None, progress: bool) -> None:
    """Stage 2 for `parts`: in this process, a spawned process pool, or Ray tasks (ray is an
    optional extra, imported only here)."""
    bar = tqdm(total=len(parts), desc="building parts", unit="part", disable=not progress)
    if executor == "ray":
        import ray
        if not ray.is_initialized():
            ray.init(address=address, num_cpus=None if address else workers,
                     include_dashboard=False, log_to_driver=False)
        task = ray.remote(num_cpus=1, max_retries=3)(load_part)
        pending = [task.remote(config, store_path, p) for p in parts]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            ray.get(done)
            bar.update(len(done))
    else:
        workers = workers or min(len(parts), os.cpu_count() or 1) or 1
        if workers == 1:
            for p in parts:
                load_part(config, store_path, p, progress=progress and len(parts) == 1)
                bar.update(1)
        else:   # spawn: fsspec file systems are not fork-safe
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                for future in as_completed([pool.submit(load_part, config, store_path, p) for p in parts]):
                    future.result()
                    bar.update(1)
    bar.close()


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
