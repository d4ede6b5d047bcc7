"""The embedded default: a procedural synthetic Sun with flares, a GOES-like flux and a flare list.

Nothing here is solar data; every artefact it writes is marked synthetic. What it models:
- a limb-brightened EUV disk with an exponential off-limb corona (the 171 A look);
- active regions born in the two activity belts (|latitude| within `belt_deg`), each a bipolar
  loop system (two footpoint kernels joined by a loop arc), rotating differentially at the synodic
  rate, growing for `growth_days` and then decaying;
- flares drawn per region and hour with a rate that grows with the region's area and magnetic
  complexity; peak fluxes follow a truncated power law (rare M, rarer X, as on the Sun), scaled up
  for large complex regions; each flare rises quickly and decays more slowly;
- a 5-min GOES 1-8 A series = a background set by the total active area + every flare profile;
- frames show each flare as a compact brightening at its region whose amplitude and extent grow
  with the flare's current flux.
Labels come from the same rules as real data (`solargen.data.labels.label_frames`), so "largest
flare in the next 24 h" is learnable from region size and complexity, as in real forecasting.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from solargen import io
from solargen.data.build import render_report
from solargen.data.dataset import Normalisation, SolarDataset, write_dataset
from solargen.data.goes import GOES_CLASSES, MAX_FLUX, flux_to_class
from solargen.data.labels import label_frames

SOURCE = "synthetic embedded default (solargen.data.synthetic; not solar observations)"


@dataclass(frozen=True)
class SyntheticSunConfig:
    n_frames: int = 4368                 # hourly frames (4368 = half a year)
    size: int = 64
    seed: int = 0
    start: str = "2012-01-01T00:00:00"   # the calendar is nominal: the data are synthetic
    cadence_hours: float = 1.0
    belt_deg: tuple[float, float] = (5.0, 35.0)
    regions_per_day: float = 0.9         # births; ~ 10 regions on the disk at a time
    growth_days: float = 3.0
    lifetime_days: tuple[float, float] = (6.0, 20.0)
    flares_per_region_day: float = 1.2   # for a full-size region of complexity 1
    flux_min: float = 1e-6               # C1.0: smallest flare drawn
    power_index: float = 2.0             # dN/dF ~ F^-power_index (Sun: ~1.8-2.1)
    strength_boost: float = 6.0          # how much large complex regions scale flare fluxes up
    background_log_flux: tuple[float, float] = (-7.0, -6.2)  # quiet and fully active background
    noise: float = 2.0                   # pixel noise (0-255 scale)


def _synodic_rate(lat_deg: np.ndarray) -> np.ndarray:
    """Differential rotation, synodic, degrees per day."""
    s2 = np.sin(np.radians(lat_deg)) ** 2
    return 14.71 - 2.39 * s2 - 1.78 * s2 ** 2 - 0.99


def _regions(cfg: SyntheticSunConfig, rng: np.random.Generator, span_days: float) -> pd.DataFrame:
    start_days = -max(cfg.lifetime_days)          # regions already on the disk at frame 0
    n = rng.poisson(cfg.regions_per_day * (span_days - start_days))
    birth = rng.uniform(start_days, span_days, n)
    lat = rng.uniform(*cfg.belt_deg, n) * rng.choice([-1.0, 1.0], n)
    return pd.DataFrame({
        "birth": birth, "lat": lat, "lon0": rng.uniform(-180, 180, n),
        "life": rng.uniform(*cfg.lifetime_days, n),
        "area_max": rng.lognormal(0.0, 0.5, n).clip(0.3, 3.0),
        "complexity": rng.beta(1.2, 3.0, n),
        "tilt": rng.normal(0, 0.3, n),
    })


def _area(regions: pd.DataFrame, t_days: np.ndarray, growth_days: float) -> np.ndarray:
    """(T, R) area of every region at every time: linear growth, then linear decay to zero."""
    age = t_days[:, None] - regions["birth"].to_numpy()[None, :]
    life = regions["life"].to_numpy()[None, :]
    grow = np.clip(age / growth_days, 0, 1)
    decay = np.clip((life - age) / np.maximum(life - growth_days, 1e-3), 0, 1)
    return np.where((age >= 0) & (age <= life), regions["area_max"].to_numpy() * np.minimum(grow, decay), 0.0)


def _position(regions: pd.DataFrame, t_days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T, R) disk x, y (solar radii, north up, west right) and mu = cos(angle from disk centre)."""
    lat = regions["lat"].to_numpy()
    lon = regions["lon0"].to_numpy()[None, :] + _synodic_rate(lat)[None, :] * t_days[:, None]
    lon = (lon + 180.0) % 360.0 - 180.0
    la, lo = np.radians(lat)[None, :], np.radians(lon)
    return np.cos(la) * np.sin(lo), np.broadcast_to(np.sin(la), lo.shape), np.cos(la) * np.cos(lo)


def _flares(cfg: SyntheticSunConfig, rng: np.random.Generator, area: np.ndarray,
            regions: pd.DataFrame, t_hours: np.ndarray) -> pd.DataFrame:
    """Flares per region and hour: Poisson with a rate from area and complexity."""
    complexity = regions["complexity"].to_numpy()[None, :]
    rate = cfg.flares_per_region_day / 24.0 * area * (0.15 + complexity) ** 2 * cfg.cadence_hours
    counts = rng.poisson(rate)
    step, region = np.nonzero(counts)
    step, region = np.repeat(step, counts[step, region]), np.repeat(region, counts[step, region])
    strength = 1.0 + cfg.strength_boost * (area[step, region] / 3.0) * complexity[0, region] ** 1.5
    u = rng.uniform(size=len(step))
    flux = cfg.flux_min * strength * u ** (-1.0 / (cfg.power_index - 1.0))
    flux = np.minimum(flux, MAX_FLUX / 5)
    peak_h = t_hours[step] + rng.uniform(0, cfg.cadence_hours, len(step))
    rise_min = rng.uniform(4, 15, len(step))
    decay_min = 12.0 * (flux / cfg.flux_min) ** 0.15 * rng.uniform(0.7, 1.4, len(step))
    return pd.DataFrame({"region": region, "peak_h": peak_h, "peak_flux": flux,
                         "rise_min": rise_min, "decay_min": decay_min}).sort_values("peak_h",
                                                                                   ignore_index=True)


def _profile(flares: pd.DataFrame, t_hours: np.ndarray) -> np.ndarray:
    """(T, F) flux of each flare at each time: exponential rise to the peak, exponential decay."""
    dt_min = (t_hours[:, None] - flares["peak_h"].to_numpy()[None, :]) * 60.0
    rise = np.exp(np.minimum(dt_min, 0) / flares["rise_min"].to_numpy()[None, :] * 3.0)
    decay = np.exp(-np.maximum(dt_min, 0) / flares["decay_min"].to_numpy()[None, :])
    shape = np.where(dt_min < 0, rise, decay)
    shape[dt_min < -4 * flares["rise_min"].to_numpy()[None, :]] = 0.0
    return flares["peak_flux"].to_numpy()[None, :] * shape


def _goes(cfg: SyntheticSunConfig, regions, flares, t0: pd.Timestamp, span_hours: float) -> pd.DataFrame:
    t_h = np.arange(-2 * 12, (span_hours + 96) * 12) / 12.0        # 5-min samples, 4 days past the end
    total_area = _area(regions, t_h / 24.0, cfg.growth_days).sum(axis=1)
    lo, hi = cfg.background_log_flux
    background = 10 ** (lo + (hi - lo) * np.clip(total_area / 15.0, 0, 1))
    flux = background.copy()
    for chunk in np.array_split(np.arange(len(flares)), max(1, len(flares) // 200)):
        if len(chunk):
            flux += _profile(flares.iloc[chunk], t_h).sum(axis=1)
    index = t0 + pd.to_timedelta(t_h, unit="h")
    return pd.DataFrame({"xrsa": flux / 10.0, "xrsb": np.minimum(flux, MAX_FLUX)}, index=index)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel coordinates in solar radii; the disk fills ~85% of the frame like the browse crops."""
    c = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    x, y = np.meshgrid(c / 0.86, -c / 0.86)
    return x, y, np.hypot(x, y)


def _render(cfg: SyntheticSunConfig, rng: np.random.Generator, regions, area, pos, flares,
            flare_now: np.ndarray) -> np.ndarray:
    """(T, 1, H, W) frames on a 0-255 brightness scale."""
    x, y, r = _grid(cfg.size)
    mu = np.sqrt(np.clip(1 - r ** 2, 0, 1))
    base = np.where(r <= 1, 70.0 * (1.0 + 0.5 * (1 - mu)), 105.0 * np.exp(-(r - 1) / 0.06))
    px = 2.0 / cfg.size / 0.86                                      # one pixel in solar radii
    frames = np.empty((len(area), 1, cfg.size, cfg.size), np.float32)
    rx, ry, rmu = pos
    tilt = regions["tilt"].to_numpy()
    for k in range(len(area)):
        img = base.copy()
        for j in np.flatnonzero((area[k] > 0.02) & (rmu[k] > 0.05)):
            half = 0.08 * np.sqrt(area[k, j])                        # half footpoint separation
            dx, dy = half * np.cos(tilt[j]) * rmu[k, j], half * np.sin(tilt[j])
            width = max(0.04 * np.sqrt(area[k, j]), px * 0.8)
            amp = 60.0 * np.sqrt(area[k, j]) * (0.6 + 0.4 * rmu[k, j])
            for sx in (-1.0, 1.0):                                    # the two footpoints
                img += amp * np.exp(-((x - rx[k, j] - sx * dx) ** 2 + (y - ry[k, j] - sx * dy) ** 2)
                                    / (2 * width ** 2))
            # the loop arc: a ring segment of radius `half` bulging towards the limb
            d = np.hypot(x - rx[k, j], y - ry[k, j] - 0.3 * half)
            img += 0.5 * amp * np.exp(-((d - half) ** 2) / (2 * (0.6 * width) ** 2)) * (y > ry[k, j] - 0.3 * half)
        for f in np.flatnonzero(flare_now[k] > 1.2e-7):              # visible above B1.2
            j = int(flares["region"].iat[f])
            if rmu[k, j] <= 0.05:
                continue
            level = np.log10(flare_now[k, f] / 1e-7)                  # 0 at B1, 2 at C1, 3 at M1
            sigma = max(px * (0.6 + 0.5 * level), px * 0.5)
            img += 18.0 * level ** 1.5 * np.exp(-((x - rx[k, j]) ** 2 + (y - ry[k, j]) ** 2) / (2 * sigma ** 2))
        frames[k, 0] = img
    frames += rng.normal(0, cfg.noise, frames.shape).astype(np.float32)
    return np.clip(frames, 0, 255)


def generate(cfg: SyntheticSunConfig) -> dict:
    """Frames (T, 1, H, W) on 0-255, frame times, the GOES series, the flare list, the regions."""
    if cfg.n_frames < 1 or cfg.size < 8:
        raise ValueError(f"synthetic sun needs n_frames >= 1 and size >= 8, got {cfg.n_frames}, {cfg.size}")
    rng = np.random.default_rng(cfg.seed)
    t0 = pd.Timestamp(cfg.start, tz="UTC")
    t_hours = np.arange(cfg.n_frames) * cfg.cadence_hours
    span_hours = float(t_hours[-1] + cfg.cadence_hours)
    regions = _regions(cfg, rng, span_hours / 24.0 + 4)
    flare_hours = np.arange(-48, span_hours + 96, cfg.cadence_hours)
    flares = _flares(cfg, rng, _area(regions, flare_hours / 24.0, cfg.growth_days), regions, flare_hours)
    area = _area(regions, t_hours / 24.0, cfg.growth_days)
    pos = _position(regions, t_hours / 24.0)
    flare_now = _profile(flares, t_hours) if len(flares) else np.zeros((len(t_hours), 0))
    frames = _render(cfg, rng, regions, area, pos, flares, flare_now)
    goes = _goes(cfg, regions, flares, t0, span_hours)
    peak = t0 + pd.to_timedelta(flares["peak_h"].to_numpy(), unit="h")
    events = pd.DataFrame({
        "start": peak - pd.to_timedelta(flares["rise_min"].to_numpy() * 1.5, unit="min"),
        "peak": peak,
        "end": peak + pd.to_timedelta(flares["decay_min"].to_numpy() * 2.0, unit="min"),
        "goes_class": [flux_to_class(f) for f in flares["peak_flux"]],
        "peak_flux": flares["peak_flux"].to_numpy(),
        "location": None, "noaa_ar": pd.array(flares["region"].to_numpy(), dtype="Int64"),
        "source": "synthetic",
    })
    times = t0 + pd.to_timedelta(t_hours, unit="h")
    return {"frames": frames, "times": pd.DatetimeIndex(times), "goes": goes, "events": events,
            "regions": regions, "area": area, "position": pos, "flare_flux": flare_now}


def write_synthetic_dataset(cfg: SyntheticSunConfig, out: str, progress: bool = True) -> SolarDataset:
    """`solargen data synthetic`: a dataset dir in exactly the layout `solargen data build` writes."""
    sun = generate(cfg)
    labels, counts = label_frames(sun["times"], sun["goes"], sun["events"])
    labels["stale"] = False
    labels["origin"] = [f"synthetic[{i}]" for i in range(len(labels))]
    norm = Normalisation("linear", (0.0,), (255.0,))
    meta = {
        "source": SOURCE, "channels": ["171"], "size": cfg.size, "scaling": "linear",
        "normalisation": norm.to_dict(),
        "normalisation_note": "fixed 0..255 brightness scale of the synthetic renderer",
        "synthetic": True, "classes": list(GOES_CLASSES), "label_rules": counts,
        "goes_file": "synthetic 5-min series", "goes_coverage": [sun["goes"].index[0], sun["goes"].index[-1]],
        "flare_catalogue": f"synthetic flare list ({len(sun['events'])} flares)", "cme_catalogue": None,
        "n_read": len(labels), "n_skipped": 0, "skipped": [], "skipped_events": [],
        "synthetic_config": asdict(cfg), **io.provenance(),
    }
    return write_dataset(out, norm.normalise(sun["frames"]), labels, meta, render_report(meta, labels))
