"""The embedded default: a procedural synthetic Sun with flares, a GOES-like flux and a flare list.

Nothing here is solar data; every artefact it writes is marked synthetic. The model, in order:

1. Active regions are born (Poisson, `regions_per_day` over the whole sphere) at latitudes drawn
   from a truncated normal inside the activity belts (`belt_deg`; none at the poles), at a random
   longitude. Each grows for ~`growth_days` (smoothstep) to a log-normal peak area (millionths of
   a hemisphere, MSH) and then decays linearly at `decay_msh_per_day` (the Gnevyshev-Waldmeier
   rule: lifetime grows with area). Each is a bipolar loop system: two footpoint kernels with a
   Joy's-law tilt, three loop arcs between them, a diffuse halo and, for magnetically complex
   regions, a bright core at the polarity-inversion line. Complexity is drawn per region
   (Beta distribution) and builds up while the region emerges.
2. Everything rotates at the differential synodic rate (`synodic_rate`: ~13.1 deg/day at the
   equator, slower towards the poles).
3. Flares: a region's flare potential is (area / 500 MSH)^`size_exponent` x (1 + `complexity_gain`
   x complexity). Flares happen (Poisson, per hour) at a rate proportional to the total potential
   of the regions on the visible hemisphere, scaled so the mean rate is `flares_per_day`. Each
   flare's class letter is drawn from `class_mix` (default: the HEK GOES flare counts of 2012),
   its peak flux inside that decade from a power law dN/dF ~ F^-`power_index`, and its host region
   with probability ~ potential^(1 + `host_bias` x (class index - C)), so M and X flares come from
   large complex regions. "Largest flare in the next 24 h" therefore carries real, learnable
   signal in the frames, while the flare class mix is exactly the configured one.
4. A flare's flux rises as a half-Gaussian (`rise_min` from start to peak) and decays
   exponentially (half the peak after `decay_min`); both grow as (F / 1e-6)^`duration_index`.
5. The GOES 1-8 A series (5-min cadence) is a background that follows the total visible active
   area (from `background_flux[0]` with no regions to `background_flux[1]` on average) plus every
   flare profile; 0.5-4 A is 1% of the background plus 13% of the flare flux (the 2012 medians of
   xrsa/xrsb in quiet and >= M1 conditions).
6. Frames (rendered at the output size; separable, pixel-integrated Gaussians so nothing aliases):
   a limb-brightened disk (a uniform disk plus an exponential coronal shell integrated along the
   line of sight), an off-limb corona, a rotating and slowly evolving quiet-Sun texture, the active
   regions, and each flare as a compact brightening at its region whose peak brightness and
   extent follow the flare's current flux: peak = `flare_dn` x (F / 1e-5)^`flare_dn_index` and
   sigma = `flare_extent_deg` x (F / 1e-5)^`flare_extent_index`. A soft knee at `saturation_dn`
   mimics the saturated flare cores of the 8-bit browse images; Gaussian pixel noise on top.

Calibration to 2012 (../shared/data): `flares_per_day` and `class_mix` are the HEK GOES counts of
2012; `regions_per_day` = 0.8 and `size_exponent` = 2 were chosen so the frame labels resemble 2012
(one simulated year, seeds 0-2: largest flux in the next 24 h B 13-27%, C 58-65%, M 8-20%, X 1.4-2.5%
against B 24%, C 58%, M 16%, X 1.3% in 2012; GOES class at the frame B 88-91%, C 8-11%, M 0.9%
against B 85%, C 14%, M 0.5%). Brightness is on the 0-255 scale of the SDO browse JPEGs; the per-channel levels (171, 131, 94) are
tuned to the mean radial profiles of the 2012 browse frames in ../shared/data. Labels come from the
same code as real data (`solargen.data.labels.label_frames`). Determinism: everything is drawn from
generators seeded by (seed, stream); regions and flares are simulated over at least a year, so the
first N frames of a longer run equal an N-frame run (up to one year).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter, gaussian_filter1d
from scipy.special import erf, ndtr, ndtri
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from solargen.data.catalogs import heliographic_location
from solargen.data.goes import CLASS_FLOOR, GOES_CLASSES, MAX_FLUX, flux_to_class
from solargen.errors import SolargenError

# HEK GOES flare events peaking in 2012 (../shared/data/flares/hek_goes_flares_2003_2023.csv).
HEK_2012_COUNTS = {"A": 0, "B": 855, "C": 1446, "M": 134, "X": 7}
HEK_2012_DAYS = 366
_MIN_PER_SAMPLE = 5.0                      # GOES series cadence
_TEXTURE_DAYS = 3.0                        # quiet-Sun texture epoch


@dataclass(frozen=True)
class ChannelLook:
    """Brightness levels of one AIA channel on the 0-255 browse scale."""

    disk: float          # uniform disk emission
    shell: float         # coronal shell emission; disk centre = disk + shell
    scale_height: float  # of the shell, solar radii
    texture: float       # quiet-Sun log-contrast
    active: float        # active-region kernel peak for a 500 MSH region
    flare_gain: float    # flare brightness relative to 171


CHANNEL_LOOKS: dict[str, ChannelLook] = {
    "171": ChannelLook(disk=50.0, shell=19.0, scale_height=0.07, texture=0.22, active=120.0,
                       flare_gain=1.0),
    "131": ChannelLook(disk=34.0, shell=18.0, scale_height=0.05, texture=0.18, active=90.0,
                       flare_gain=2.5),
    "94": ChannelLook(disk=7.0, shell=7.0, scale_height=0.06, texture=0.15, active=45.0,
                      flare_gain=2.5),
    # not tuned to observations (no 2012 frames of these channels here): plausible levels that
    # give a synthetic survey its other SDOMLv2 channels
    "193": ChannelLook(disk=45.0, shell=22.0, scale_height=0.08, texture=0.20, active=110.0,
                       flare_gain=1.5),
    "211": ChannelLook(disk=25.0, shell=15.0, scale_height=0.08, texture=0.18, active=80.0,
                       flare_gain=1.8),
    "335": ChannelLook(disk=6.0, shell=6.0, scale_height=0.08, texture=0.15, active=35.0,
                       flare_gain=2.0),
}


@dataclass(frozen=True)
class SyntheticSunConfig:
    """Every knob of the synthetic Sun (see the module docstring for what each one drives)."""

    n_frames: int = 4368                  # hourly frames (4368 = half a year)
    size: int = 64                        # rendered directly at this size
    seed: int = 0
    start: str = "2012-01-01T00:00:00"    # nominal calendar only: the data are synthetic
    cadence_hours: float = 1.0
    channels: tuple[str, ...] = ("171",)  # any of CHANNEL_LOOKS
    disk_fraction: float = 0.86           # disk radius / half frame (the cropped browse frames)
    # active regions
    belt_deg: tuple[float, float] = (5.0, 35.0)   # |latitude| range of region births
    belt_centre_deg: float = 15.0                 # truncated-normal centre and width inside it
    belt_width_deg: float = 7.0
    regions_per_day: float = 0.8                  # births over the whole sphere
    growth_days: float = 3.0
    area_median_msh: float = 150.0                # log-normal peak area
    area_sigma: float = 0.9
    area_max_msh: float = 3000.0
    decay_msh_per_day: float = 15.0
    complexity_beta: tuple[float, float] = (1.0, 3.0)
    # flares
    flares_per_day: float = sum(HEK_2012_COUNTS.values()) / HEK_2012_DAYS
    class_mix: tuple[float, ...] = tuple(float(HEK_2012_COUNTS[c]) for c in GOES_CLASSES)
    power_index: float = 2.0                      # dN/dF ~ F^-index inside each decade
    size_exponent: float = 2.0
    complexity_gain: float = 4.0
    big_flare_bias: float = 1.0
    rise_min: float = 6.0                         # HEK 2012 medians, C1 flare
    decay_min: float = 6.0
    duration_index: float = 0.2
    # GOES background: with no regions, and on average (2012 daily minima: 5th pct, median)
    background_flux: tuple[float, float] = (1.3e-7, 4.6e-7)
    # look
    flare_dn: float = 60.0                        # flare peak brightness at F = 1e-5 (M1), 171
    flare_dn_index: float = 0.5
    flare_extent_deg: float = 1.5                 # flare sigma at F = 1e-5, heliographic deg
    flare_extent_index: float = 0.25
    saturation_dn: float | None = 200.0           # soft knee; None: linear up to 255
    noise_dn: float = 2.0

    def check(self) -> "SyntheticSunConfig":
        """Raise ValueError naming the first impossible setting."""
        problems = []
        if self.n_frames < 1:
            problems.append(f"n_frames must be >= 1 (got {self.n_frames})")
        if self.size < 8:
            problems.append(f"size must be >= 8 pixels (got {self.size})")
        if self.cadence_hours <= 0:
            problems.append(f"cadence_hours must be > 0 (got {self.cadence_hours})")
        unknown = [c for c in self.channels if c not in CHANNEL_LOOKS]
        if unknown or not self.channels:
            problems.append(f"channels {list(self.channels)}: the synthetic Sun renders "
                            f"{', '.join(CHANNEL_LOOKS)}")
        lo, hi = self.belt_deg
        if not 0 <= lo < hi <= 90:
            problems.append(f"belt_deg must satisfy 0 <= low < high <= 90 (got {self.belt_deg})")
        if len(self.class_mix) != len(GOES_CLASSES) or min(self.class_mix) < 0 or sum(self.class_mix) <= 0:
            problems.append(f"class_mix needs {len(GOES_CLASSES)} non-negative weights for "
                            f"{'/'.join(GOES_CLASSES)} (got {self.class_mix})")
        if self.power_index <= 1:
            problems.append(f"power_index must be > 1 (got {self.power_index})")
        if not 0 < self.disk_fraction <= 1:
            problems.append(f"disk_fraction must be in (0, 1] (got {self.disk_fraction})")
        if not 0 < self.background_flux[0] <= self.background_flux[1] < MAX_FLUX:
            problems.append(f"background_flux must be (quiet, mean) with 0 < quiet <= mean "
                            f"(got {self.background_flux})")
        if problems:
            raise SolargenError("synthetic sun config: " + "; ".join(problems))
        return self

    @property
    def class_probabilities(self) -> np.ndarray:
        mix = np.asarray(self.class_mix, float)
        return mix / mix.sum()


def synodic_rate(lat_deg: np.ndarray) -> np.ndarray:
    """Differential rotation as seen from Earth, deg/day: the magnetic-feature sidereal rate of
    Snodgrass (1983), 2.851 - 0.343 sin^2 - 0.474 sin^4 urad/s (sunpy's "snodgrass" model), minus
    the Earth's orbital 0.9856 deg/day; 13.13 deg/day at the equator."""
    s2 = np.sin(np.radians(lat_deg)) ** 2
    return 14.114 - 1.698 * s2 - 2.347 * s2 ** 2 - 0.9856


def flare_look(cfg: SyntheticSunConfig, flux: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(peak brightness in 171 DN, sigma in heliographic degrees) of a flare at `flux` W m^-2."""
    rel = np.asarray(flux, float) / 1e-5
    return cfg.flare_dn * rel ** cfg.flare_dn_index, cfg.flare_extent_deg * rel ** cfg.flare_extent_index


def flare_shape(dt_min: np.ndarray, rise_min: np.ndarray, decay_min: np.ndarray) -> np.ndarray:
    """Flux relative to the peak, `dt_min` minutes after it: half-Gaussian rise (e^-2 at the start,
    `rise_min` before the peak), exponential decay (1/2 at the end, `decay_min` after)."""
    rise = np.exp(-2.0 * (np.minimum(dt_min, 0.0) / rise_min) ** 2)
    decay = np.exp(-np.log(2.0) * np.maximum(dt_min, 0.0) / decay_min)
    return np.where(dt_min < 0, rise, decay)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


@lru_cache(maxsize=8)
def _shell_profile(scale_height: float) -> tuple[np.ndarray, np.ndarray]:
    """Line-of-sight integral of exp(-(rho - 1) / H) over the visible path, / H, on an r grid."""
    r = np.linspace(0.0, 2.0, 2001)
    z = np.linspace(0.0, 1.0, 4001)[None, :] * (1.0 + 12 * scale_height)
    dz = z[0, 1] - z[0, 0]
    out = np.empty_like(r)
    for i0 in range(0, len(r), 500):
        rr = r[i0:i0 + 500, None]
        inside = rr < 1.0
        z0 = np.sqrt(np.clip(1.0 - rr ** 2, 0.0, None))
        zz = z + np.where(inside, z0, 0.0)                      # front of the disk only
        emis = np.exp(-(np.sqrt(rr ** 2 + zz ** 2) - 1.0) / scale_height)
        path = emis.sum(axis=1) * dz - 0.5 * dz * emis[:, 0]
        out[i0:i0 + 500] = np.where(inside[:, 0], path, 2.0 * path) / scale_height
    return r, out


@dataclass(frozen=True)
class _Geometry:
    """Per-pixel quantities for one frame size (pixel centres, solar radii, north up, west right)."""

    radius_px: float
    centre: float
    r: np.ndarray
    lat: np.ndarray       # heliographic latitude of on-disk pixels (deg), 0 elsewhere
    lon: np.ndarray       # longitude from the central meridian (deg), 0 off-disk
    angle: np.ndarray     # position angle (deg, 0 = north, 90 = west)
    limb: np.ndarray      # 0 on the disk -> 1 just off-limb (texture blend)


def _geometry(size: int, disk_fraction: float) -> _Geometry:
    radius_px = disk_fraction * size / 2.0
    centre = (size - 1) / 2.0
    j = np.arange(size, dtype=float)
    x = (j[None, :] - centre) / radius_px
    y = (centre - j[:, None]) / radius_px
    r = np.hypot(x, y)
    mu = np.sqrt(np.clip(1.0 - r ** 2, 0.0, None))
    lat = np.degrees(np.arcsin(np.clip(y, -1, 1))) * (r < 1)
    lon = np.degrees(np.arctan2(x, mu)) * (r < 1)
    angle = np.degrees(np.arctan2(x, y)) % 360.0
    return _Geometry(radius_px, centre, r, lat, lon, angle, np.clip((r - 0.98) / 0.04, 0.0, 1.0))


def _base_disk(size: int, disk_fraction: float, look: ChannelLook, oversample: int = 4) -> np.ndarray:
    """Pixel-averaged quiet disk + corona for one channel (H, W)."""
    fine = _geometry(size * oversample, disk_fraction)
    r_grid, shell = _shell_profile(look.scale_height)
    value = look.disk * (fine.r < 1.0) + look.shell * np.interp(fine.r, r_grid, shell, right=0.0)
    return value.reshape(size, oversample, size, oversample).mean(axis=(1, 3))


# Bipolar region template: offsets along the bipole axis (u) and across it (v) in units of the
# footpoint separation, height (units of separation, radians-equivalent), sigma (units of
# separation), weight of the active-region brightness, weight of the complexity core.
def _template() -> np.ndarray:
    rows = [(-0.5, 0.0, 0.0, 0.20, 1.0, 0.0), (0.5, 0.0, 0.0, 0.20, 1.0, 0.0),   # footpoints
            (0.0, 0.0, 0.0, 1.0, 0.3, 0.0),                                         # halo
            (0.0, 0.0, 0.03, 0.14, 0.0, 1.0)]                                       # core
    for k in (-1, 0, 1):                                                            # loop arcs
        for s in np.arange(1, 6) / 6.0:
            rows.append((s - 0.5, 0.28 * k, (0.35 + 0.08 * k) * np.sin(np.pi * s), 0.11, 0.55, 0.0))
    return np.asarray(rows)


_TEMPLATE = _template()


class SyntheticSun:
    """One realisation of the synthetic Sun: regions, flares, GOES series; renders any frame."""

    def __init__(self, cfg: SyntheticSunConfig):
        self.cfg = cfg.check()
        self.t0 = pd.Timestamp(cfg.start)
        self.t0 = self.t0.tz_localize("UTC") if self.t0.tzinfo is None else self.t0.tz_convert("UTC")
        self.frame_hours = np.arange(cfg.n_frames) * cfg.cadence_hours
        span_h = float(self.frame_hours[-1]) + 73.0            # 72 h labels past the last frame
        self.sim_hours = np.arange(-2.0, max(span_h, 365 * 24.0) + 1.0)   # hourly grid
        self.regions = self._draw_regions(np.random.default_rng((cfg.seed, 1)))
        self._hourly_state()
        self.flares = self._draw_flares(np.random.default_rng((cfg.seed, 2)))
        self._textures(np.random.default_rng((cfg.seed, 3)))
        self.geometry = _geometry(cfg.size, cfg.disk_fraction)
        self.base = np.stack([_base_disk(cfg.size, cfg.disk_fraction, CHANNEL_LOOKS[c])
                              for c in cfg.channels])
        self._flare_frames()

    # ------------------------------------------------------------------ regions
    def _draw_regions(self, rng: np.random.Generator) -> pd.DataFrame:
        cfg = self.cfg
        burn_days = cfg.area_max_msh / cfg.decay_msh_per_day + 2 * cfg.growth_days
        t_lo, t_hi = -burn_days, self.sim_hours[-1] / 24.0
        n = rng.poisson(cfg.regions_per_day * (t_hi - t_lo))
        # latitude: normal(centre, width) truncated to the belt, by inverse CDF
        a, b = (np.asarray(cfg.belt_deg) - cfg.belt_centre_deg) / cfg.belt_width_deg
        u = rng.uniform(ndtr(a), ndtr(b), n)
        abs_lat = np.clip(cfg.belt_centre_deg + cfg.belt_width_deg * ndtri(u), *cfg.belt_deg)
        lat = abs_lat * rng.choice([-1.0, 1.0], n)
        area = np.minimum(np.exp(np.log(cfg.area_median_msh) + cfg.area_sigma * rng.standard_normal(n)),
                          cfg.area_max_msh)
        growth = cfg.growth_days * rng.uniform(0.5, 1.5, n)
        tilt = 0.5 * abs_lat + rng.normal(0.0, 8.0, n)          # Joy's law, degrees
        regions = pd.DataFrame({
            "birth_day": np.sort(rng.uniform(t_lo, t_hi, n)),
            "lat": lat,
            "lon0": rng.uniform(-180.0, 180.0, n),              # from the central meridian at t=0
            "peak_area": area,
            "growth_days": growth,
            "decay_days": area / cfg.decay_msh_per_day,
            "complexity": rng.beta(*cfg.complexity_beta, n),
            "tilt_deg": tilt,
            "separation_deg": np.maximum(18.0 * np.sqrt(area / 1000.0), 4.0),
        })
        regions["death_day"] = regions["birth_day"] + regions["growth_days"] + regions["decay_days"]
        regions.index.name = "region"
        return regions

    def state(self, t_days: np.ndarray, regions: pd.DataFrame | None = None) -> dict[str, np.ndarray]:
        """(T, R) area (MSH), complexity, longitude from the central meridian (deg), mu of the
        region centre, and flare potential, at times `t_days` (days since the first frame)."""
        reg = self.regions if regions is None else regions
        t = np.asarray(t_days, float)[:, None]
        age = t - reg["birth_day"].to_numpy()[None, :]
        growth = reg["growth_days"].to_numpy()[None, :]
        decay = reg["decay_days"].to_numpy()[None, :]
        grow = _smoothstep(age / growth)
        fade = np.clip(1.0 - (age - growth) / decay, 0.0, 1.0)
        frac = np.where(age < growth, grow, fade) * (age >= 0)
        area = reg["peak_area"].to_numpy()[None, :] * frac
        complexity = reg["complexity"].to_numpy()[None, :] * np.sqrt(frac) * grow
        lat = reg["lat"].to_numpy()[None, :]
        lon = reg["lon0"].to_numpy()[None, :] + synodic_rate(lat) * t
        lon = (lon + 180.0) % 360.0 - 180.0
        mu = np.cos(np.radians(lat)) * np.cos(np.radians(lon))
        potential = ((area / 500.0) ** self.cfg.size_exponent
                     * (1.0 + self.cfg.complexity_gain * complexity))
        return {"area": area, "fraction": frac, "complexity": complexity, "lon": lon, "mu": mu,
                "potential": potential}

    def _hourly_state(self) -> None:
        st = self.state(self.sim_hours / 24.0)
        visible = st["mu"] > -0.1                               # up to ~6 deg behind the limb
        self._potential = np.where(visible, st["potential"], 0.0)
        self._active_area = np.where(visible, st["area"], 0.0).sum(axis=1)
        inside = self.sim_hours >= 0
        self._mean_potential = float(self._potential[inside].sum(axis=1).mean())
        self._mean_area = float(self._active_area[inside].mean())

    # ------------------------------------------------------------------ flares
    def _draw_flares(self, rng: np.random.Generator) -> pd.DataFrame:
        """Per class c: region r flares at a rate ~ potential_r^e_c (e_c = 1 + big_flare_bias x
        (index(c) - index(C))), normalised so the mean rate over the simulated window is
        flares_per_day x class share."""
        cfg = self.cfg
        inside = self.sim_hours >= 0
        hours, letters, hosts = [], [], []
        for k, share in enumerate(cfg.class_probabilities):
            if share == 0:
                continue
            e = max(1.0 + cfg.big_flare_bias * (k - GOES_CLASSES.index("C")), 0.0)
            weight = np.where(self._potential > 0, self._potential ** e, 0.0)   # (T, R)
            total = weight.sum(axis=1)
            mean = total[inside].mean()
            if mean <= 0:
                continue
            counts = rng.poisson(cfg.flares_per_day * share / 24.0 * total / mean)
            hour = np.repeat(np.arange(len(total)), counts)
            cum = np.cumsum(weight[hour], axis=1)
            pick = rng.uniform(size=len(hour)) * cum[:, -1]
            hosts.append((cum < pick[:, None]).sum(axis=1))
            hours.append(hour)
            letters.append(np.full(len(hour), k))
        hour, letter, host = (np.concatenate(x) if x else np.zeros(0, int) for x in (hours, letters, hosts))
        n = len(hour)
        # peak flux inside the drawn decade: truncated power law by inverse CDF
        lo = np.asarray([CLASS_FLOOR[c] for c in GOES_CLASSES])[letter]
        q = 1.0 - cfg.power_index
        u = rng.uniform(size=n)
        flux = (lo ** q + u * ((10 * lo) ** q - lo ** q)) ** (1.0 / q)
        flux = np.minimum(flux, 10 * lo * (1 - 1e-9))            # stay inside the decade
        stretch = (flux / 1e-6) ** cfg.duration_index
        flares = pd.DataFrame({
            "region": host,
            "peak_hour": self.sim_hours[hour] + rng.uniform(0.0, 1.0, n),
            "peak_flux": flux,
            "rise_min": cfg.rise_min * stretch * rng.lognormal(0.0, 0.3, n),
            "decay_min": cfg.decay_min * stretch * rng.lognormal(0.0, 0.3, n),
        })
        return flares.sort_values("peak_hour", ignore_index=True)

    def _flare_frames(self) -> None:
        """Which frames see which flare, and the flare's flux then."""
        c = self.cfg.cadence_hours
        peak = self.flares["peak_hour"].to_numpy()
        first = np.ceil((peak - 1.0) / c).astype(int)
        offsets = np.arange(int(np.ceil(7.0 / c)) + 1)
        frame = first[:, None] + offsets[None, :]
        dt_min = (frame * c - peak[:, None]) * 60.0
        flux = self.flares["peak_flux"].to_numpy()[:, None] * flare_shape(
            dt_min, self.flares["rise_min"].to_numpy()[:, None],
            self.flares["decay_min"].to_numpy()[:, None])
        keep = (frame >= 0) & (frame < self.cfg.n_frames) & (flux > 1e-9)
        self.flare_frame = frame[keep]
        self.flare_index = np.broadcast_to(np.arange(len(peak))[:, None], frame.shape)[keep]
        self.flare_flux_now = flux[keep]

    def goes(self) -> pd.DataFrame:
        """5-min GOES-like series (xrsa, xrsb in W m^-2, UTC index) from 1 h before the first frame
        to 73 h after the last."""
        cfg = self.cfg
        per_hour = int(60 / _MIN_PER_SAMPLE)
        t_h = np.arange(-per_hour, int((self.frame_hours[-1] + 73.0) * per_hour) + 1) / per_hour
        quiet, mean = cfg.background_flux
        level = self._active_area / self._mean_area if self._mean_area > 0 else 0.0 * self._active_area
        background = quiet + (mean - quiet) * np.interp(t_h, self.sim_hours, level)
        flare = np.zeros_like(t_h)
        peak = self.flares["peak_hour"].to_numpy()
        k = np.arange(-per_hour, 6 * per_hour + 1)              # 1 h before to 6 h after the peak
        idx = np.round((peak[:, None] - t_h[0]) * per_hour).astype(int) + k[None, :]
        dt_min = (t_h[0] + idx / per_hour - peak[:, None]) * 60.0
        values = self.flares["peak_flux"].to_numpy()[:, None] * flare_shape(
            dt_min, self.flares["rise_min"].to_numpy()[:, None], self.flares["decay_min"].to_numpy()[:, None])
        ok = (idx >= 0) & (idx < len(t_h))
        np.add.at(flare, idx[ok], values[ok])
        xrsb = np.minimum(background + flare, MAX_FLUX)
        index = self.t0 + pd.to_timedelta(t_h, unit="h")
        goes = pd.DataFrame({"xrsa": 0.01 * background + 0.13 * flare, "xrsb": xrsb},
                            index=pd.DatetimeIndex(index, name="time"))
        return goes

    def events(self) -> pd.DataFrame:
        """The flare list in the catalogue layout of `solargen.data.catalogs` (peaks within the
        GOES series); peak_flux is the flare's own flux, as catalogues report it."""
        g_lo, g_hi = -1.0, float(self.frame_hours[-1]) + 73.0
        f = self.flares[(self.flares["peak_hour"] >= g_lo) & (self.flares["peak_hour"] <= g_hi)]
        peak_h = f["peak_hour"].to_numpy()
        region = f["region"].to_numpy()
        lat = self.regions["lat"].to_numpy()[region]
        lon = (self.regions["lon0"].to_numpy()[region] + synodic_rate(lat) * peak_h / 24.0 + 180) % 360 - 180
        peak = self.t0 + pd.to_timedelta(peak_h, unit="h")
        return pd.DataFrame({
            "start": (peak - pd.to_timedelta(f["rise_min"].to_numpy(), unit="min")).round("min"),
            "peak": peak.round("min"),
            "end": (peak + pd.to_timedelta(f["decay_min"].to_numpy(), unit="min")).round("min"),
            "goes_class": [flux_to_class(v) for v in f["peak_flux"]],
            "peak_flux": f["peak_flux"].to_numpy(),
            "location": [heliographic_location(a, o) for a, o in zip(lat, lon)],
            "noaa_ar": pd.array(region + 1, dtype="Int64"),       # synthetic region numbers
            "source": "synthetic",
        }).reset_index(drop=True)

    # ------------------------------------------------------------------ rendering
    def _textures(self, rng: np.random.Generator) -> None:
        """Two off-limb position-angle profiles (streamers and plumes); quiet-Sun fields are drawn
        lazily per texture epoch (`_field`)."""
        def ring() -> np.ndarray:
            f = gaussian_filter1d(rng.standard_normal(360), 6.0, mode="wrap")
            return (f - f.mean()) / f.std()

        self._ring = (ring(), ring())
        self._fields: dict[int, np.ndarray] = {}

    def _field(self, epoch: int) -> np.ndarray:
        """Quiet-Sun log-brightness field of one texture epoch on a 2-deg lat-lon grid: unit-variance
        mottling, brighter remnant plage in the activity belts, darker polar coronal holes."""
        if epoch not in self._fields:
            noise = np.random.default_rng((self.cfg.seed, 3, epoch + 1_000_000)).standard_normal((90, 180))
            f = sum(w * gaussian_filter(noise, s, mode=("nearest", "wrap"))
                    for w, s in ((0.5, 1.0), (0.35, 2.5), (0.15, 8.0)))
            lat = np.abs(np.linspace(-89, 89, 90))[:, None]
            self._fields[epoch] = ((f - f.mean()) / f.std()
                                   + 0.8 * np.exp(-0.5 * ((lat - 17.0) / 9.0) ** 2)   # belt plage
                                   - 0.6 * _smoothstep((lat - 55) / 20))             # polar holes
        return self._fields[epoch]

    def _quiet(self, t_days: np.ndarray) -> np.ndarray:
        """(T, H, W) quiet-Sun log-brightness modulation (unit scale). Each texture epoch lives two
        `_TEXTURE_DAYS` periods, cross-faded with its neighbours, and rotates differentially from
        its own birth, so the shear stays bounded as on the real Sun."""
        g = self.geometry
        out = np.empty((len(t_days),) + g.r.shape)
        i = np.clip((g.lat + 89.0) / 2.0, 0, 89)
        i0 = np.floor(i).astype(int)
        di, i1 = i - i0, np.minimum(i0 + 1, 89)
        rate = synodic_rate(g.lat)
        a = g.angle.astype(int) % 360
        for n, t in enumerate(t_days):
            epoch, phase = divmod(t / _TEXTURE_DAYS, 1.0)
            disk = np.zeros_like(g.r)
            for k, w in ((int(epoch), np.cos(np.pi / 2 * phase)), (int(epoch) + 1, np.sin(np.pi / 2 * phase))):
                lon = g.lon - rate * (t - (k - 1) * _TEXTURE_DAYS)
                j = ((lon + 180.0) % 360.0) / 2.0
                j0 = np.floor(j).astype(int)
                dj, j1, j0 = j - j0, (j0 + 1) % 180, j0 % 180
                f = self._field(k)
                disk += w * ((f[i0, j0] * (1 - dj) + f[i0, j1] * dj) * (1 - di)
                             + (f[i1, j0] * (1 - dj) + f[i1, j1] * dj) * di)
            ring_phase = 2 * np.pi * t / 27.0
            corona = np.cos(ring_phase) * self._ring[0][a] + np.sin(ring_phase) * self._ring[1][a]
            out[n] = disk * (1 - g.limb) + 1.3 * corona * g.limb
        return out

    def _sources(self, frames: np.ndarray, with_flares: bool) -> tuple[np.ndarray, ...]:
        """Flat list of Gaussian sources: frame position, x, y (pixels), sigma_x, sigma_y (pixels),
        amplitude per channel."""
        cfg, g = self.cfg, self.geometry
        t_days = frames * cfg.cadence_hours / 24.0
        alive = ((self.regions["birth_day"] <= t_days.max()) &
                 (self.regions["death_day"] >= t_days.min())).to_numpy()
        reg = self.regions[alive]
        st = self.state(t_days, reg)                            # (T, R)
        looks = [CHANNEL_LOOKS[c] for c in cfg.channels]
        active = np.asarray([lk.active for lk in looks])
        tpl = _TEMPLATE
        sep = reg["separation_deg"].to_numpy()[None, :] * (0.5 + 0.5 * st["fraction"])  # (T, R)
        tilt = np.radians(reg["tilt_deg"].to_numpy() * np.sign(reg["lat"].to_numpy()))[None, :, None]
        u, v = tpl[:, 0][None, None, :], tpl[:, 1][None, None, :]
        # leading (west, +u) footpoint nearer the equator: rotate towards the equator by the tilt
        dlon = sep[..., None] * (u * np.cos(tilt) - v * np.sin(tilt))
        dlat = -sep[..., None] * (u * np.sin(tilt) + v * np.cos(tilt))
        lat = reg["lat"].to_numpy()[None, :, None] + dlat
        lon = st["lon"][..., None] + dlon / np.cos(np.radians(lat))
        height = np.radians(tpl[:, 2][None, None, :] * sep[..., None])
        sigma_deg = tpl[:, 3][None, None, :] * sep[..., None]
        strength = (st["area"] / 500.0) ** 0.4                  # (T, R)
        weight = (tpl[:, 4][None, None, :] + tpl[:, 5][None, None, :] * 1.6 * st["complexity"][..., None])
        amp = strength[..., None, None] * weight[..., None] * active[None, None, None, :]
        fpos = np.broadcast_to(np.arange(len(frames))[:, None, None], lat.shape)
        parts = [(fpos.ravel(), lat.ravel(), lon.ravel(), height.ravel(), sigma_deg.ravel(),
                  amp.reshape(-1, len(looks)), True)]
        if with_flares:
            sel = np.isin(self.flare_frame, frames)
            if sel.any():
                pos = np.searchsorted(frames, self.flare_frame[sel])
                fl = self.flares.iloc[self.flare_index[sel]]
                host = fl["region"].to_numpy()
                flat = self.regions["lat"].to_numpy()[host]
                flon = (self.regions["lon0"].to_numpy()[host]
                        + synodic_rate(flat) * frames[pos] * cfg.cadence_hours / 24.0 + 180) % 360 - 180
                peak_dn, sig = flare_look(cfg, self.flare_flux_now[sel])
                famp = peak_dn[:, None] * np.asarray([lk.flare_gain for lk in looks])[None, :]
                parts.append((pos, flat, flon, np.full(len(pos), 0.01), sig, famp, False))
        out = [np.concatenate(x) for x in zip(*[p[:6] for p in parts])]
        surface = np.concatenate([np.full(len(p[0]), p[6]) for p in parts])
        fpos, lat, lon, height, sigma_deg, amp = out
        rho = 1.0 + height
        la, lo = np.radians(lat), np.radians(lon)
        x, y, z = rho * np.cos(la) * np.sin(lo), rho * np.sin(la), rho * np.cos(la) * np.cos(lo)
        r_proj = np.hypot(x, y)
        visible = (z > 0) | (r_proj > 1.0)
        sigma = np.maximum(np.radians(sigma_deg) * g.radius_px, 0.3)
        # foreshortening of surface features along the radial direction on the disk
        mu = np.clip(z / rho, 0.2, 1.0)
        cos2 = np.where(r_proj > 0, (x / np.maximum(r_proj, 1e-9)) ** 2, 0.5)
        squeeze = np.where(surface, 1.0 - mu ** 2, 0.0)
        sx = sigma * np.sqrt(1.0 - squeeze * cos2)
        sy = sigma * np.sqrt(1.0 - squeeze * (1.0 - cos2))
        keep = visible & (amp.max(axis=1) > 0.05)
        px, py = g.centre + x * g.radius_px, g.centre - y * g.radius_px
        return fpos[keep], px[keep], py[keep], sx[keep], sy[keep], amp[keep]

    def render(self, frames: np.ndarray | list[int], with_flares: bool = True) -> np.ndarray:
        """Raw frames (T, C, H, W) float32 on the 0-255 browse scale, for frame numbers `frames`."""
        cfg = self.cfg
        requested = np.asarray(frames, dtype=int)
        if requested.size and (requested.min() < 0 or requested.max() >= cfg.n_frames):
            raise IndexError(f"frame numbers must be in [0, {cfg.n_frames})")
        frames, inverse = np.unique(requested, return_inverse=True)
        t_days = frames * cfg.cadence_hours / 24.0
        texture = np.asarray([CHANNEL_LOOKS[c].texture for c in cfg.channels])
        img = self.base[None] * np.exp(texture[None, :, None, None] * self._quiet(t_days)[:, None])
        fpos, px, py, sx, sy, amp = self._sources(frames, with_flares)
        order = np.argsort(fpos, kind="stable")
        fpos, px, py, sx, sy, amp = fpos[order], px[order], py[order], sx[order], sy[order], amp[order]
        counts = np.bincount(fpos, minlength=len(frames))
        if len(fpos):
            slot = np.arange(len(fpos)) - np.repeat(np.cumsum(counts) - counts, counts)
            edges = np.arange(cfg.size + 1) - 0.5
            gx, gy = _pixel_gaussian(edges, px, sx), _pixel_gaussian(edges, py, sy)
            k = int(counts.max())
            big_x = np.zeros((len(frames), k, cfg.size), np.float32)
            big_y = np.zeros((len(frames), k, cfg.size), np.float32)
            big_x[fpos, slot], big_y[fpos, slot] = gx, gy
            with threadpool_limits(limits=1, user_api="blas"):   # many tiny products: 1 thread
                for c in range(len(cfg.channels)):
                    weights = np.zeros((len(frames), k), np.float32)
                    weights[fpos, slot] = amp[:, c]
                    img[:, c] += np.matmul((big_y * weights[..., None]).transpose(0, 2, 1), big_x)
        if cfg.noise_dn > 0:
            for i, f in enumerate(frames):
                img[i] += cfg.noise_dn * np.random.default_rng((cfg.seed, 4, int(f))).standard_normal(
                    img.shape[1:], dtype=np.float32)
        if cfg.saturation_dn is not None:
            knee = cfg.saturation_dn
            img = np.where(img > knee, knee + (255.0 - knee) * np.tanh((img - knee) / (255.0 - knee)), img)
        return np.clip(img, 0.0, 255.0).astype(np.float32)[inverse.reshape(-1)]

    def render_all(self, chunk: int = 256, progress: bool = True) -> np.ndarray:
        frames = np.empty((self.cfg.n_frames, len(self.cfg.channels), self.cfg.size, self.cfg.size),
                          np.float32)
        starts = range(0, self.cfg.n_frames, chunk)
        for s in tqdm(starts, desc="synthetic sun", unit="chunk", disable=not progress):
            idx = np.arange(s, min(s + chunk, self.cfg.n_frames))
            frames[idx] = self.render(idx)
        return frames

    @property
    def times(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.t0 + pd.to_timedelta(self.frame_hours, unit="h"))


def _pixel_gaussian(edges: np.ndarray, mean: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """(K, P) Gaussian integrated over each pixel, scaled so a wide one peaks at 1."""
    z = (edges[None, :] - mean[:, None]) / (np.sqrt(2.0) * sigma[:, None])
    return (np.sqrt(np.pi / 2.0) * sigma[:, None] * np.diff(erf(z), axis=1)).astype(np.float32)
