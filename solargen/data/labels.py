"""Label rules: each a named function producing columns of the labels table.

All class columns hold the GOES letter (A/B/C/M/X) or None when the rule cannot label the frame;
a frame is never given a wrong label to fill a gap.

- `goes_at_frame`:  1-8 A flux at the frame time = max of the GOES samples within
                    +-`window_min` minutes of t_obs (5 min default, one sample each side at the
                    5-min cadence). No valid sample in the window -> missing.
- `peak_matched`:   the reference DDPM paper's rule: a flare labels the first frame at or after
                    its HEK peak time, if that frame is within `tolerance_min` minutes of the peak
                    (7 min in the paper); a frame hit by several flares takes the largest.
- `max_in_next`:    largest 1-8 A flux in [t_obs, t_obs + horizon) from the flux series. A window
                    that runs past the end of the series (or starts before it) gets no label.
- `eruptive_before_peak`: the ViT+LSTM paper's rule: every frame in the `horizon` hours before the
                    peak of a flare of at least a given class is labelled 'eruptive' when that
                    flare had a CME (catalogs.mark_eruptive), else 'confined'; a frame before
                    several such flares is 'eruptive' if any of them is (the positive class wins
                    overlaps); frames before no such flare get no label.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from solargen.data.goes import class_to_flux, letters_from_flux

HORIZONS_HOURS = (24, 48, 72)


def _hours(index: pd.DatetimeIndex) -> np.ndarray:
    return pd.DatetimeIndex(index).as_unit("ns").asi8 / 3.6e12


def _window_max(sample_h: np.ndarray, values: np.ndarray, lo_h: np.ndarray, hi_h: np.ndarray,
                right_closed: bool) -> np.ndarray:
    """nanmax of values over samples with lo <= t < hi (or <= hi); NaN where none is valid."""
    lo = np.searchsorted(sample_h, lo_h, side="left")
    hi = np.searchsorted(sample_h, hi_h, side="right" if right_closed else "left")
    out = np.full(len(lo_h), np.nan)
    for i, (a, b) in enumerate(zip(lo, hi)):
        if b > a:
            window = values[a:b]
            if np.isfinite(window).any():
                out[i] = np.nanmax(window)
    return out


def goes_at_frame(t_obs: pd.DatetimeIndex, goes: pd.DataFrame, window_min: float = 5.0) -> pd.DataFrame:
    """Columns goes_flux, goes_class: the flux at each frame time (see module doc)."""
    sample_h, flux = _hours(goes.index), goes["xrsb"].to_numpy(dtype=float)
    t = _hours(t_obs)
    w = window_min / 60.0
    value = _window_max(sample_h, flux, t - w, t + w, right_closed=True)
    return pd.DataFrame({"goes_flux": value, "goes_class": letters_from_flux(value)})


def max_in_next(t_obs: pd.DatetimeIndex, goes: pd.DataFrame, horizon_hours: float) -> pd.DataFrame:
    """Columns max_flux_<h>h, max_class_<h>h: the largest flux in the next `horizon_hours`."""
    sample_h, flux = _hours(goes.index), goes["xrsb"].to_numpy(dtype=float)
    t = _hours(t_obs)
    value = _window_max(sample_h, flux, t, t + horizon_hours, right_closed=False)
    cadence_h = float(np.median(np.diff(sample_h))) if len(sample_h) > 1 else 0.0
    outside = (t < sample_h[0]) | (t + horizon_hours > sample_h[-1] + cadence_h)
    value[outside] = np.nan
    h = int(horizon_hours) if float(horizon_hours).is_integer() else horizon_hours
    return pd.DataFrame({f"max_flux_{h}h": value, f"max_class_{h}h": letters_from_flux(value)})


def peak_matched(t_obs: pd.DatetimeIndex, events: pd.DataFrame, tolerance_min: float = 7.0) -> pd.DataFrame:
    """Columns peak_class, peak_flux, peak_time (see module doc)."""
    t = _hours(t_obs)
    n = len(t)
    flux = np.full(n, np.nan)
    peak_time = pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns, UTC]")
    if events is not None and len(events):
        peaks = _hours(pd.DatetimeIndex(events["peak"]))
        j = np.searchsorted(t, peaks, side="left")
        ok = j < n
        ok[ok] &= (t[j[ok]] - peaks[ok]) * 60.0 <= tolerance_min
        for k in np.flatnonzero(ok):
            frame, f = j[k], float(events["peak_flux"].iloc[k])
            if not np.isfinite(flux[frame]) or f > flux[frame]:
                flux[frame] = f
                peak_time.iloc[frame] = events["peak"].iloc[k]
    return pd.DataFrame({"peak_class": letters_from_flux(flux), "peak_flux": flux,
                         "peak_time": peak_time.to_numpy()})


ERUPTIVE_CLASSES = ("confined", "eruptive")
ERUPTIVE_MIN_CLASSES = ("M", "C")


def eruptive_column(min_class: str, horizon_hours: int = 24) -> str:
    return f"eruptive_{horizon_hours}h_ge_{min_class.lower()}"


def eruptive_before_peak(t_obs: pd.DatetimeIndex, events: pd.DataFrame, min_class: str = "M",
                         horizon_hours: float = 24) -> pd.DataFrame:
    """Per frame (see module doc): <column> 'eruptive' / 'confined' / None, and the peak time,
    GOES peak flux and duration (start to end, minutes) of the flare that gave the label (the
    nearest one among flares of the winning label): <column>_peak_time, _peak_flux,
    _duration_min. They describe the future flare: for counting flares and for an upper-bound
    reference only, never a forecaster input. `events` needs an `eruptive` column."""
    t = _hours(t_obs)
    column = eruptive_column(min_class, int(horizon_hours))
    label = np.full(len(t), None, dtype=object)
    flux, duration = np.full(len(t), np.nan), np.full(len(t), np.nan)
    peak_time = np.full(len(t), np.datetime64("NaT"), dtype="datetime64[ns]")
    chosen = events[(events["peak_flux"] >= class_to_flux(f"{min_class}1.0")) & events["eruptive"].notna()]
    # confined first, eruptive second (an eruptive flare wins the frames it shares); within one
    # label the latest flare first, so the nearest flare ahead of a frame is the one kept
    for eruptive in (False, True):
        some = chosen[chosen["eruptive"] == eruptive].sort_values("peak", ascending=False)
        minutes = ((some["end"] - some["start"]).dt.total_seconds() / 60.0).to_numpy()
        peaks = pd.DatetimeIndex(some["peak"]).tz_convert("UTC").tz_localize(None).to_numpy()
        for peak, when, f, d in zip(_hours(pd.DatetimeIndex(some["peak"])), peaks,
                                    some["peak_flux"], minutes):
            a, b = np.searchsorted(t, peak - horizon_hours, "left"), np.searchsorted(t, peak, "left")
            label[a:b], peak_time[a:b] = ERUPTIVE_CLASSES[int(eruptive)], when
            flux[a:b], duration[a:b] = f, d
    return pd.DataFrame({column: label, f"{column}_peak_time": pd.DatetimeIndex(peak_time).tz_localize("UTC"),
                         f"{column}_peak_flux": flux, f"{column}_duration_min": duration})


def eruptive_counts(table: pd.DataFrame, events: pd.DataFrame, horizon_hours: int = 24) -> dict:
    """Per minimum class: flares in the time range (eruptive / confined) and labelled frames."""
    t0, t1 = table["t_obs"].iloc[0], table["t_obs"].iloc[-1]
    inside = events[(events["peak"] > t0) & (events["peak"] <= t1 + pd.Timedelta(hours=1))]
    out = {}
    for letter in ERUPTIVE_MIN_CLASSES:
        col = eruptive_column(letter, horizon_hours)
        flares = inside[inside["peak_flux"] >= class_to_flux(f"{letter}1.0")]["eruptive"]
        out[col] = {"rule": "eruptive_before_peak", "min_class": letter, "horizon_hours": horizon_hours,
                    "flares": {"eruptive": int(flares.sum()), "confined": int((~flares).sum())},
                    "frames": {c: int((table[col] == c).sum()) for c in ERUPTIVE_CLASSES}}
    return out


def label_frames(t_obs: pd.DatetimeIndex, goes: pd.DataFrame, events: pd.DataFrame | None,
                 goes_window_min: float = 5.0, peak_tolerance_min: float = 7.0,
                 horizons: tuple[float, ...] = HORIZONS_HOURS) -> tuple[pd.DataFrame, dict]:
    """The labels table (t_obs first) and a counts dict for the build report."""
    t_obs = pd.DatetimeIndex(t_obs)
    parts = [pd.DataFrame({"t_obs": t_obs}), goes_at_frame(t_obs, goes, goes_window_min)]
    parts += [max_in_next(t_obs, goes, h) for h in horizons]
    parts.append(peak_matched(t_obs, events, peak_tolerance_min))
    table = pd.concat([p.reset_index(drop=True) for p in parts], axis=1)
    return table, label_counts(table, events, goes_window_min, peak_tolerance_min, horizons)


def label_counts(table: pd.DataFrame, events: pd.DataFrame | None, goes_window_min: float,
                 peak_tolerance_min: float, horizons: tuple[float, ...]) -> dict:
    """Per rule: class counts (incl. missing) and the parameters that produced them."""
    def counts(col: str) -> dict[str, int]:
        vc = table[col].value_counts(dropna=False)
        return {("missing" if pd.isna(k) else str(k)): int(v) for k, v in vc.items()}

    rules = {"goes_class": {"rule": "goes_at_frame", "window_min": goes_window_min,
                            "counts": counts("goes_class")}}
    for h in horizons:
        col = f"max_class_{int(h) if float(h).is_integer() else h}h"
        rules[col] = {"rule": "max_in_next", "horizon_hours": h, "counts": counts(col)}
    matched = int(table["peak_class"].notna().sum())
    n_events = 0 if events is None else len(events)
    in_range = 0
    if n_events:
        t0, t1 = table["t_obs"].iloc[0], table["t_obs"].iloc[-1]
        in_range = int(((events["peak"] >= t0) & (events["peak"] <= t1)).sum())
    rules["peak_class"] = {"rule": "peak_matched", "tolerance_min": peak_tolerance_min,
                           "counts": counts("peak_class"), "events_in_time_range": in_range,
                           "frames_matched": matched}
    return rules
