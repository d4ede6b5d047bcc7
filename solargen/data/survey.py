"""`solargen data synth-survey`: a synthetic survey in SDOMLv2's exact layout, for tests and
benchmarks of the survey-scale data path (it is procedural, never solar data).

    <out>/sdoml.zarr/            zarr v2, as SDOMLv2 ships AIA: one group per year ("2010", ...),
        <year>/<ch>A             one float32 array per channel, (N, H, W), chunks (15, H, W),
                                 attributes: per-frame header lists T_OBS, WAVELNTH, EXPTIME,
                                 QUALITY, DEGRADATION
    <out>/goes_xrs_5min.csv      the survey's GOES 1-8 A series (the layout `data build` reads)
    <out>/flares.csv             its flare list (HEK layout)
    <out>/README.md              what it is, with the gaps and corrupt frames it holds

Frames come from the embedded synthetic Sun (solargen.data.synthetic_sun) at the requested size and
cadence. On request, each channel independently loses a fraction of its frames (gaps: the header
lists simply lack them, as in SDOMLv2) and some frames are NaN-filled (corrupt), listed by name.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from solargen import io
from solargen.data.synthetic import write_sources
from solargen.data.synthetic_sun import CHANNEL_LOOKS, SyntheticSun, SyntheticSunConfig
from solargen.errors import SolargenError

CHUNK_FRAMES = 15                     # SDOMLv2's frames per chunk
# seconds after the nominal time at which each channel's exposure is stamped (the AIA sequence)
T_OBS_OFFSET_S = {"94": 2.12, "131": 9.57, "171": 9.35, "193": 4.84, "211": 2.63, "335": 2.63}
EXPTIME_S = {"94": 2.9, "131": 2.9, "171": 2.0, "193": 2.0, "211": 2.9, "335": 2.9}


@dataclass(frozen=True)
class SurveyConfig:
    years: float = 2.0
    start_year: int = 2010
    channels: tuple[str, ...] = ("94", "131", "171")
    size: int = 512
    cadence_hours: float = 1.0
    frames: int | None = None        # only the first N frames (benchmarks)
    gaps: float = 0.0                # fraction of each channel's frames missing
    corrupt: int = 0                 # NaN-filled frames (spread over channels)
    seed: int = 0

    def check(self) -> "SurveyConfig":
        unknown = [c for c in self.channels if c not in CHANNEL_LOOKS]
        if unknown or not self.channels:
            raise SolargenError(f"--channels {','.join(self.channels)}: the synthetic Sun renders "
                                f"{', '.join(CHANNEL_LOOKS)}")
        if not 0 <= self.gaps < 1:
            raise SolargenError(f"--gaps {self.gaps}: a fraction in [0, 1)")
        if self.years <= 0 or self.cadence_hours <= 0 or self.size < 8 or self.corrupt < 0:
            raise SolargenError("synth-survey: --years, --cadence must be positive, --size >= 8, "
                                "--corrupt >= 0")
        if self.frames is not None and self.frames < 1:
            raise SolargenError(f"--frames {self.frames} must be at least 1")
        return self

    @property
    def n_frames(self) -> int:
        n = int(round(self.years * 365.25 * 24 / self.cadence_hours))
        return min(n, self.frames) if self.frames else n


def write_survey(cfg: SurveyConfig, out: str | Path, progress: bool = True) -> dict:
    """Write the survey folder; returns its summary (also in README.md)."""
    import zarr
    from numcodecs import Blosc
    cfg.check()
    out = Path(out)
    if (out / "sdoml.zarr").exists():
        raise SolargenError(f"{out}/sdoml.zarr exists; choose a new --out")
    sun = SyntheticSun(SyntheticSunConfig(n_frames=cfg.n_frames, size=cfg.size, seed=cfg.seed,
                                          start=f"{cfg.start_year}-01-01T00:00:00",
                                          cadence_hours=cfg.cadence_hours, channels=cfg.channels))
    times = sun.times
    rng = np.random.default_rng((cfg.seed, 7))
    keep = rng.random((len(cfg.channels), len(times))) >= cfg.gaps
    corrupt = set()
    candidates = np.argwhere(keep)
    for k in rng.choice(len(candidates), size=min(cfg.corrupt, len(candidates)), replace=False):
        corrupt.add(tuple(int(v) for v in candidates[k]))
    root = zarr.open_group(out / "sdoml.zarr", mode="w", zarr_format=2)
    root.attrs.update({"synthetic": True, "generator": "solargen data synth-survey (procedural Sun)"})
    years = times.year.to_numpy()
    arrays, filled, names = {}, {}, {}
    for year in np.unique(years):
        group = root.create_group(str(year))
        for c, ch in enumerate(cfg.channels):
            rows = np.flatnonzero(keep[c] & (years == year))
            t = [(times[i] + pd.Timedelta(seconds=T_OBS_OFFSET_S.get(ch, 5.0))).strftime(
                "%Y-%m-%dT%H:%M:%S.%f")[:-4] + "Z" for i in rows]
            arr = group.create_array(f"{ch}A", shape=(len(rows), cfg.size, cfg.size), dtype="float32",
                                     chunks=(CHUNK_FRAMES, cfg.size, cfg.size),
                                     compressors=Blosc(cname="zstd", clevel=3, shuffle=Blosc.BITSHUFFLE),
                                     fill_value=0.0)
            arr.attrs.update({"T_OBS": t, "WAVELNTH": [int(ch)] * len(rows),
                              "EXPTIME": [EXPTIME_S.get(ch, 2.9)] * len(rows),
                              "QUALITY": [0] * len(rows), "DEGRADATION": [1.0] * len(rows)})
            arrays[(year, c)], filled[(year, c)] = arr, 0
            for k, i in enumerate(rows):
                names[(c, int(i))] = f"{year}/{ch}A[{k}]"
    buffers: dict[tuple, list[np.ndarray]] = {key: [] for key in arrays}

    def flush(key) -> None:
        block = buffers[key]
        if block:
            arrays[key][filled[key]:filled[key] + len(block)] = np.stack(block)
            filled[key] += len(block)
            buffers[key] = []

    for start in tqdm(range(0, len(times), CHUNK_FRAMES), desc="synthetic survey", unit="chunk",
                      disable=not progress):
        idx = np.arange(start, min(start + CHUNK_FRAMES, len(times)))
        rendered = sun.render(idx)
        for k, i in enumerate(idx):
            for c in range(len(cfg.channels)):
                if keep[c, i]:
                    key = (years[i], c)
                    frame = rendered[k, c]
                    buffers[key].append(np.full_like(frame, np.nan) if (c, int(i)) in corrupt else frame)
                    if len(buffers[key]) == CHUNK_FRAMES:
                        flush(key)
    for key in arrays:
        flush(key)
    zarr.consolidate_metadata(out / "sdoml.zarr", zarr_format=2)   # .zmetadata: readable over HTTP
    goes, events = sun.goes(), sun.events()
    write_sources(out, goes, events)
    summary = {"config": asdict(cfg), "frames": len(times), "first": times[0].isoformat(),
               "last": times[-1].isoformat(),
               "missing_per_channel": {ch: int((~keep[c]).sum()) for c, ch in enumerate(cfg.channels)},
               "corrupt": sorted(names[key] for key in corrupt), "flares": int(len(events)),
               **io.provenance()}
    io.write_json(out / "survey.json", summary)
    io.write_text(out / "README.md", _readme(summary))
    return summary


def _readme(summary: dict) -> str:
    cfg = summary["config"]
    lines = ["# Synthetic survey in SDOMLv2's layout", "",
             "**SYNTHETIC data (solargen's procedural Sun), not solar observations.**", "",
             f"- {summary['frames']} slots every {cfg['cadence_hours']} h from {summary['first']} to "
             f"{summary['last']}, channels {', '.join(cfg['channels'])}, {cfg['size']} x {cfg['size']} "
             f"float32, seed {cfg['seed']}",
             "- missing frames per channel (gaps): " + ", ".join(
                 f"{ch} {n}" for ch, n in summary["missing_per_channel"].items()),
             f"- corrupt (NaN-filled) frames: {', '.join(summary['corrupt']) or 'none'}",
             f"- {summary['flares']} flares in flares.csv; GOES series in goes_xrs_5min.csv",
             f"- command: `{summary['command']}` at commit {summary['git_commit']}", "",
             "Build a dataset from it:", "",
             f"    solargen data build --images sdoml.zarr --goes goes_xrs_5min.csv --flares flares.csv "
             f"--channels {','.join(cfg['channels'])} --cadence {cfg['cadence_hours']:g}h --size 64 "
             f"--norm-window {summary['first'][:10]} <end of your training window> --out <dataset>", ""]
    return "\n".join(lines)
