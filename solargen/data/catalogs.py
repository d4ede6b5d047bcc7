"""Flare catalogues (HEK, NOAA SWPC) into one event table, and CDAW CMEs to mark eruptive flares.

Event table columns (one row per flare, sorted by peak):
    start, peak, end   UTC timestamps
    goes_class         class string as catalogued, e.g. 'M2.5'
    peak_flux          W m^-2 from the class string
    location           heliographic location (e.g. 'S17E81') or None
    noaa_ar            NOAA active-region number or <NA>
    source             'HEK' or 'SWPC'
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from solargen.data.goes import GoesError, class_to_flux
from solargen.errors import SolargenError

EVENT_COLUMNS = ("start", "peak", "end", "goes_class", "peak_flux", "location", "noaa_ar", "source")
HEK_COLUMNS = ("GEV_START", "GEV_PEAK", "GEV_END", "GOES_CLASS")
SWPC_COLUMNS = ("date", "start_time", "max_time", "end_time", "goes_class")


_LOCATION = re.compile(r"^([NS])(\d+(?:\.\d+)?)([EW])(\d+(?:\.\d+)?)$")


class CatalogError(SolargenError):
    """A flare or CME catalogue that cannot be read as such."""


def heliographic_location(lat: object, lon: object) -> str | None:
    """Stonyhurst latitude/longitude (deg) in the HEK/NOAA style, e.g. 'S17E81'; None when either is
    missing or not a finite number."""
    try:
        lat, lon = float(lat), float(lon)
    except (TypeError, ValueError):
        return None
    if not (np.isfinite(lat) and np.isfinite(lon)):
        return None
    return (f"{'N' if lat >= 0 else 'S'}{int(round(abs(lat))):02d}"
            f"{'W' if lon >= 0 else 'E'}{int(round(abs(lon))):02d}")


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise CatalogError(f"{path}: catalogue file not found")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise CatalogError(f"{path}: catalogue is empty") from None
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path}: cannot read catalogue CSV ({exc})") from None


def _fluxes(classes: pd.Series, path: Path) -> np.ndarray:
    out = np.empty(len(classes))
    for i, (row, value) in enumerate(classes.items()):
        try:
            out[i] = class_to_flux(value)
        except GoesError as exc:
            raise CatalogError(f"{path}: row {row + 2}: {exc}") from None
    return out


def _finish(events: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Validate times; events with inconsistent times are skipped and listed in
    `events.attrs["skipped"]` as (data row, reason) so the build report can say so."""
    if events.empty:
        raise CatalogError(f"{path}: catalogue has no flare events")
    missing = events[["start", "peak", "end"]].isna().any(axis=1).to_numpy()
    disorder = ((events["peak"] < events["start"]) | (events["end"] < events["peak"])).to_numpy()
    skipped = [(int(r) + 2, "missing or unreadable start/peak/end time") for r in np.flatnonzero(missing)]
    skipped += [(int(r) + 2, "times not ordered start <= peak <= end")
                for r in np.flatnonzero(disorder & ~missing)]
    events = events[~(missing | disorder)]
    if events.empty:
        raise CatalogError(f"{path}: no flare event has consistent start/peak/end times")
    events = events.sort_values("peak", kind="stable").reset_index(drop=True)[list(EVENT_COLUMNS)]
    events.attrs.update(source_file=str(path), skipped=sorted(skipped))
    return events


def read_hek(path: str | Path) -> pd.DataFrame:
    """HEK GOES flare list (GEV_START, GEV_PEAK, GEV_END, GOES_CLASS, optional AIA_LOC, AR)."""
    path = Path(path)
    raw = _read_csv(path)
    missing = set(HEK_COLUMNS) - set(raw.columns)
    if missing:
        raise CatalogError(f"{path}: not a HEK flare list (missing columns {sorted(missing)})")
    times = {k: pd.to_datetime(raw[c].replace("", None), utc=True, errors="coerce")
             for k, c in (("start", "GEV_START"), ("peak", "GEV_PEAK"), ("end", "GEV_END"))}
    location = raw["AIA_LOC"].replace("", None) if "AIA_LOC" in raw else None
    ar_col = next((c for c in ("AR_NOAANUM", "ar_noaanum", "noaa_ar") if c in raw), None)
    events = pd.DataFrame({
        **times,
        "goes_class": raw["GOES_CLASS"].str.strip(),
        "peak_flux": _fluxes(raw["GOES_CLASS"], path),
        "location": location,
        "noaa_ar": pd.to_numeric(raw[ar_col], errors="coerce").astype("Int64") if ar_col else pd.NA,
        "source": "HEK",
    })
    return _finish(events, path)


def _swpc_time(date: pd.Series, hhmm: pd.Series) -> pd.Series:
    text = date.str.strip() + hhmm.str.strip().str.zfill(4)
    return pd.to_datetime(text, format="%Y%m%d%H%M", utc=True, errors="coerce")


def read_swpc(path: str | Path) -> pd.DataFrame:
    """NOAA SWPC event-report flare list: date YYYYMMDD and start/max/end as HHMM; times that
    wrap past midnight are moved to the next day."""
    path = Path(path)
    raw = _read_csv(path)
    missing = set(SWPC_COLUMNS) - set(raw.columns)
    if missing:
        raise CatalogError(f"{path}: not a SWPC flare list (missing columns {sorted(missing)})")
    start = _swpc_time(raw["date"], raw["start_time"])
    peak = _swpc_time(raw["date"], raw["max_time"])
    end = _swpc_time(raw["date"], raw["end_time"])
    day = pd.Timedelta(days=1)
    peak = peak.where(peak >= start, peak + day)
    end = end.where(end >= peak, end + day)
    ar = pd.to_numeric(raw["noaa_ar"].str.strip(), errors="coerce") if "noaa_ar" in raw else np.nan
    events = pd.DataFrame({
        "start": start, "peak": peak, "end": end,
        "goes_class": raw["goes_class"].str.strip(),
        "peak_flux": _fluxes(raw["goes_class"], path),
        "location": None,
        "noaa_ar": pd.Series(ar).astype("Int64") if "noaa_ar" in raw else pd.NA,
        "source": "SWPC",
    })
    return _finish(events, path)


def read_flares(path: str | Path) -> pd.DataFrame:
    """Read a HEK or SWPC flare list, recognised by its columns."""
    path = Path(path)
    header = _read_csv(path).columns
    if set(HEK_COLUMNS) <= set(header):
        return read_hek(path)
    if set(SWPC_COLUMNS) <= set(header):
        return read_swpc(path)
    raise CatalogError(f"{path}: neither a HEK ({', '.join(HEK_COLUMNS)}) nor a SWPC "
                       f"({', '.join(SWPC_COLUMNS)}) flare list; columns are {list(header)}")


def read_cdaw(path: str | Path) -> pd.DataFrame:
    """SOHO/LASCO CDAW CME list: first C2 appearance time, central position angle (NaN for halo
    CMEs, whose `halo` flag is set), width, linear speed."""
    path = Path(path)
    raw = _read_csv(path)
    if "time_c2" in raw:
        t = pd.to_datetime(raw["time_c2"], utc=True, errors="coerce")
    elif {"date", "time"} <= set(raw.columns):
        t = pd.to_datetime(raw["date"] + " " + raw["time"], format="%Y/%m/%d %H:%M:%S",
                           utc=True, errors="coerce")
    else:
        raise CatalogError(f"{path}: not a CDAW CME list (needs time_c2 or date + time columns)")
    if t.isna().all():
        raise CatalogError(f"{path}: no readable CME times")
    width = raw["width"].str.extract(r"(\d+)")[0].astype(float) if "width" in raw else np.nan
    speed = pd.to_numeric(raw.get("linear_speed"), errors="coerce")
    cpa = raw.get("central_pa", pd.Series("", index=raw.index)).str.strip()
    halo = cpa.str.lower().eq("halo") | (pd.Series(width, index=raw.index) >= 360)
    cmes = pd.DataFrame({"time": t, "central_pa": pd.to_numeric(cpa, errors="coerce"),
                         "halo": halo, "width": width, "linear_speed": speed}).dropna(subset=["time"])
    return cmes.sort_values("time").reset_index(drop=True)


def position_angle(location: object) -> tuple[float, float]:
    """(position angle in degrees counter-clockwise from solar north through east, distance from
    disk centre in solar radii) of a heliographic location such as 'S17E81'; NaNs if unreadable."""
    match = _LOCATION.match(str(location))
    if match is None:
        return float("nan"), float("nan")
    ns, lat, ew, lon = match.groups()
    lat = np.radians(float(lat) * (1 if ns == "N" else -1))
    lon = np.radians(float(lon) * (1 if ew == "W" else -1))
    x, y = np.sin(lon) * np.cos(lat), np.sin(lat)          # on the disk, solar radii, west / north
    return float(np.degrees(np.arctan2(-x, y)) % 360.0), float(np.hypot(x, y))


def mark_eruptive(events: pd.DataFrame, cmes: pd.DataFrame, before_min: float = 30,
                  after_min: float = 90, pa_tolerance_deg: float | None = 45.0,
                  pa_min_radius: float = 0.3) -> pd.Series:
    """True where a CME first appears in LASCO C2 between `before_min` before the flare start and
    `after_min` after its peak (the usual temporal association window) and, with
    `pa_tolerance_deg`, lies on the flare's side of the Sun: a halo CME, or a central position
    angle within half the CME width + `pa_tolerance_deg` of the flare's position angle. The angle
    test applies only to flares with a location at least `pa_min_radius` from disk centre (nearer
    centre the projected angle says little); False = confined."""
    cmes = cmes.sort_values("time")
    t = cmes["time"].to_numpy()
    lo = np.searchsorted(t, (events["start"] - pd.Timedelta(minutes=before_min)).to_numpy())
    hi = np.searchsorted(t, (events["peak"] + pd.Timedelta(minutes=after_min)).to_numpy(), "right")
    flags = hi > lo
    if pa_tolerance_deg is not None and "central_pa" in cmes:
        cpa, width = cmes["central_pa"].to_numpy(float), cmes["width"].to_numpy(float)
        halo = cmes["halo"].to_numpy(bool)
        for k in np.flatnonzero(flags):
            pa, radius = position_angle(events["location"].iloc[k])
            if not (np.isfinite(pa) and radius >= pa_min_radius):
                continue
            window = slice(lo[k], hi[k])
            off = np.abs((cpa[window] - pa + 180.0) % 360.0 - 180.0)
            reach = np.nan_to_num(width[window], nan=0.0) / 2 + pa_tolerance_deg
            flags[k] = bool((halo[window] | (off <= reach)).any())
    return pd.Series(flags, index=events.index, name="eruptive")
