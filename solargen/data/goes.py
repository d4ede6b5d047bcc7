"""GOES X-ray flux: class strings <-> peak flux, and XRS time series from CSV, netCDF or FITS.

Classes by 1-8 Angstrom peak flux F (W m^-2): A < 1e-7 <= B < 1e-6 <= C < 1e-5 <= M < 1e-4 <= X.
The sub-class is linear inside a decade (M2.5 = 2.5e-5); X continues past X9.9 (X28 = 2.8e-3).
Catalogues also hold numbers below 1 (HEK 'C0.9' = 9e-7, i.e. B9 after rescaling): accepted as
written. The 1e-9 W m^-2 sensor floor and fill values are missing data, never A-class Sun.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from solargen.errors import SolargenError

GOES_CLASSES: tuple[str, ...] = ("A", "B", "C", "M", "X")
CLASS_FLOOR: dict[str, float] = {"A": 1e-8, "B": 1e-7, "C": 1e-6, "M": 1e-5, "X": 1e-4}
# Physically possible 1-8 A flux range: below 1e-9 is the sensor floor, above 1e-2 never observed.
MIN_FLUX, MAX_FLUX = 1e-9, 1e-2
# Values that instruments and archives write for "no measurement".
FILL_VALUES = (-9999.0, -99999.0, -1.0, 0.0)
# A trailing '+' marks a saturated detector (e.g. X18+ in 2003): the number is a lower bound.
_CLASS_RE = re.compile(r"^\s*([ABCMX])\s*(\d+(?:\.\d*)?)\+?\s*$", re.IGNORECASE)


class GoesError(SolargenError):
    """A flux value or class string that cannot be a GOES measurement."""


def class_to_flux(goes_class: str) -> float:
    """'M2.5' -> 2.5e-05. A bare letter ('M') is rejected: it names a decade, not a flux."""
    if not isinstance(goes_class, str):
        raise GoesError(f"GOES class must be a string like 'M2.5', got {goes_class!r}")
    match = _CLASS_RE.match(goes_class)
    if match is None:
        raise GoesError(f"not a GOES class: {goes_class!r} (expected a letter A/B/C/M/X and a "
                        "number, e.g. 'M2.5')")
    letter, number = match.group(1).upper(), float(match.group(2))
    if number <= 0:
        raise GoesError(f"not a GOES class: {goes_class!r} (the number must be positive)")
    if letter != "X" and number >= 10.0:
        raise GoesError(f"not a GOES class: {goes_class!r} (use the next letter above 9.9)")
    return number * CLASS_FLOOR[letter]


def check_flux(flux: float) -> float:
    """Return `flux` as float if it is a possible 1-8 A flux, else raise GoesError."""
    try:
        value = float(flux)
    except (TypeError, ValueError):
        raise GoesError(f"X-ray flux must be a number, got {flux!r}") from None
    if math.isnan(value):
        raise GoesError("X-ray flux is NaN")
    if not (MIN_FLUX <= value <= MAX_FLUX):
        raise GoesError(f"impossible 1-8 A X-ray flux {value!r} W m^-2 (expected {MIN_FLUX:g} to "
                        f"{MAX_FLUX:g})")
    return value


def flux_to_letter(flux: float) -> str:
    """2.5e-5 -> 'M'."""
    value = check_flux(flux)
    for letter in reversed(GOES_CLASSES):
        if value >= CLASS_FLOOR[letter]:
            return letter
    return "A"


def flux_to_class(flux: float) -> str:
    """2.5e-5 -> 'M2.5' (one decimal, truncated the way NOAA reports it; X keeps counting)."""
    value = check_flux(flux)
    letter = flux_to_letter(value)
    number = math.floor(value / CLASS_FLOOR[letter] * 10 + 1e-6) / 10
    return f"{letter}{number:.1f}"


def letters_from_flux(flux: np.ndarray | pd.Series) -> np.ndarray:
    """Vectorised flux -> letter; NaN flux -> None (a missing label, never A)."""
    arr = np.asarray(flux, dtype=float)
    out = np.full(arr.shape, None, dtype=object)
    ok = np.isfinite(arr) & (arr > 0)
    idx = np.clip(np.floor(np.log10(np.where(ok, arr, 1.0))).astype(int) + 8, 0, 4)
    out[ok] = np.asarray(GOES_CLASSES, dtype=object)[idx[ok]]
    return out


def class_index(letter: str, classes: tuple[str, ...] = GOES_CLASSES) -> int:
    """'M' -> 3; an unknown letter is a clear error."""
    if letter not in classes:
        raise GoesError(f"unknown flare class {letter!r}; known classes are {', '.join(classes)}")
    return classes.index(letter)


# ----------------------------------------------------------------------------- XRS time series

def _clean_series(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Sort, check timestamps, and turn floor/fill values into NaN (missing, not A-class)."""
    if df.empty:
        raise GoesError(f"{source}: no GOES samples")
    if df.index.hasnans:
        raise GoesError(f"{source}: {int(df.index.isna().sum())} samples have no timestamp")
    if df.index.has_duplicates:
        dup = df.index[df.index.duplicated()][0]
        raise GoesError(f"{source}: duplicated timestamp {dup}")
    if not df.index.is_monotonic_increasing:
        df = df.sort_index()
    out = df[["xrsa", "xrsb"]].astype(float).copy()
    for col in ("xrsa", "xrsb"):
        vals = out[col].to_numpy()
        bad = ~np.isfinite(vals) | np.isin(vals, FILL_VALUES) | (vals <= MIN_FLUX) | (vals > MAX_FLUX)
        out.loc[bad, col] = np.nan
    out.index.name = "time"
    out.attrs["source"] = source
    return out


def _to_utc_index(values, source: str) -> pd.DatetimeIndex:
    try:
        idx = pd.DatetimeIndex(pd.to_datetime(values, utc=True))
    except (ValueError, TypeError) as exc:
        raise GoesError(f"{source}: unreadable timestamps ({exc})") from None
    return idx


def read_goes_csv(path: str | Path) -> pd.DataFrame:
    """The shared CSV layout: columns time, xrsa, xrsb (W m^-2)."""
    path = Path(path)
    try:
        raw = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise GoesError(f"{path}: cannot read GOES CSV ({exc})") from None
    missing = {"time", "xrsb"} - set(raw.columns)
    if missing:
        raise GoesError(f"{path}: GOES CSV lacks column(s) {sorted(missing)}; has {list(raw.columns)}")
    if "xrsa" not in raw:
        raw["xrsa"] = np.nan
    raw.index = _to_utc_index(raw.pop("time"), str(path))
    return _clean_series(raw, str(path))


def read_goes_netcdf(path: str | Path) -> pd.DataFrame:
    """NOAA GOES XRS netCDF: GOES-R L2 (`xrsa_flux`, `xrsb_flux`, `time` in s since 2000-01-01 12:00)
    and the reprocessed GOES 13-15 files (`a_flux`/`b_flux` or `xrsa_flux`/`xrsb_flux`)."""
    import h5py
    path = Path(path)
    try:
        ds = h5py.File(path, "r")
    except OSError:
        return _read_netcdf3(path)
    with ds:
        names = set(ds.keys())
        a = next((n for n in ("xrsa_flux", "a_flux", "xrsa") if n in names), None)
        b = next((n for n in ("xrsb_flux", "b_flux", "xrsb") if n in names), None)
        if b is None or "time" not in names:
            raise GoesError(f"{path}: no XRS flux variables found (variables: {sorted(names)})")
        time = ds["time"]
        units = time.attrs.get("units", b"")
        units = units.decode() if isinstance(units, bytes) else str(units)
        data = {"xrsb": _scaled(ds[b]), "xrsa": _scaled(ds[a]) if a else None}
        index = _cf_times(time[()], units, path)
    frame = pd.DataFrame({"xrsa": data["xrsa"] if data["xrsa"] is not None else np.nan,
                          "xrsb": data["xrsb"]}, index=index)
    return _clean_series(frame, str(path))


def _scaled(var) -> np.ndarray:
    vals = np.asarray(var[()], dtype=float)
    fill = var.attrs.get("_FillValue")
    if fill is not None:
        vals = np.where(vals == np.asarray(fill).item(), np.nan, vals)
    scale, offset = var.attrs.get("scale_factor"), var.attrs.get("add_offset")
    if scale is not None:
        vals = vals * float(np.asarray(scale).item())
    if offset is not None:
        vals = vals + float(np.asarray(offset).item())
    return vals


def _cf_times(values: np.ndarray, units: str, path: Path) -> pd.DatetimeIndex:
    match = re.match(r"\s*(\w+)\s+since\s+(.+)", units)
    if match is None:
        raise GoesError(f"{path}: time variable has no CF units (got {units!r})")
    unit = {"seconds": "s", "second": "s", "milliseconds": "ms", "minutes": "min",
            "hours": "h", "days": "D"}.get(match.group(1).lower())
    if unit is None:
        raise GoesError(f"{path}: unsupported time unit {match.group(1)!r}")
    origin = pd.Timestamp(match.group(2).strip().replace("UTC", "").strip())
    origin = origin.tz_localize("UTC") if origin.tzinfo is None else origin.tz_convert("UTC")
    return pd.DatetimeIndex(origin + pd.to_timedelta(np.asarray(values, dtype=float), unit=unit))


def _read_netcdf3(path: Path) -> pd.DataFrame:
    from scipy.io import netcdf_file
    try:
        ds = netcdf_file(path, "r", mmap=False)
    except Exception as exc:  # scipy raises TypeError/ValueError on non-netCDF bytes
        raise GoesError(f"{path}: not a readable netCDF file ({exc})") from None
    with ds:
        names = set(ds.variables)
        b = next((n for n in ("xrsb_flux", "b_flux", "xrsb") if n in names), None)
        a = next((n for n in ("xrsa_flux", "a_flux", "xrsa") if n in names), None)
        if b is None or "time" not in names:
            raise GoesError(f"{path}: no XRS flux variables found (variables: {sorted(names)})")
        units = ds.variables["time"].units.decode()
        index = _cf_times(ds.variables["time"][:].copy(), units, path)
        frame = pd.DataFrame({"xrsb": ds.variables[b][:].astype(float).copy(),
                              "xrsa": ds.variables[a][:].astype(float).copy() if a else np.nan},
                             index=index)
    return _clean_series(frame, str(path))


def read_goes_fits(path: str | Path) -> pd.DataFrame:
    """SDAC GOES FITS (e.g. go1520110607.fits): EDGES (band edges in Angstrom, one row per FLUX
    column), FLUXES with TIME (s from DATE-OBS TIME-OBS) and FLUX (n x 2)."""
    from astropy.io import fits
    path = Path(path)
    try:
        with fits.open(path) as hdul:
            header = hdul[0].header
            edges = np.asarray(hdul["EDGES"].data["EDGES"][0], float).reshape(-1, 2)
            table = hdul["FLUXES"].data
            times = np.asarray(table["TIME"][0], float).ravel()
            flux = np.asarray(table["FLUX"][0], float).reshape(len(times), -1)
            start = header.get("DATE-OBS")
            start_time = header.get("TIME-OBS", "00:00:00")
    except (OSError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise GoesError(f"{path}: not a readable SDAC GOES FITS file ({exc})") from None
    if start is None:
        raise GoesError(f"{path}: FITS header has no DATE-OBS")
    long_col = int(np.argmin(np.abs(edges[:, 0] - 1.0) + np.abs(edges[:, 1] - 8.0)))
    short_col = 1 - long_col
    origin = pd.Timestamp(f"{_sdac_date(start)} {start_time}", tz="UTC")
    index = pd.DatetimeIndex(origin + pd.to_timedelta(times, unit="s"))
    frame = pd.DataFrame({"xrsa": flux[:, short_col], "xrsb": flux[:, long_col]}, index=index)
    return _clean_series(frame, str(path))


def _sdac_date(value: str) -> str:
    """SDAC headers write dates as DD/MM/YYYY (older files DD/MM/YY); ISO dates pass through."""
    match = re.match(r"^(\d{2})/(\d{2})/(\d{2}|\d{4})$", value.strip())
    if match:
        day, month, year = match.groups()
        if len(year) == 2:
            year = ("19" if int(year) > 70 else "20") + year
        return f"{year}-{month}-{day}"
    return value


def read_goes(path: str | Path) -> pd.DataFrame:
    """Read an XRS series by file type. Returns a UTC-indexed frame with columns xrsa, xrsb
    (W m^-2); floor and fill values are NaN."""
    path = Path(path)
    if not path.exists():
        raise GoesError(f"{path}: GOES file not found")
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix.lower() == ".gz" else path.suffix.lower()
    if suffix in (".csv", ".csv.gz", ".txt"):
        return read_goes_csv(path)
    if suffix in (".nc", ".nc4", ".netcdf", ".h5"):
        return read_goes_netcdf(path)
    if suffix in (".fits", ".fts", ".fit", ".fits.gz"):
        return read_goes_fits(path)
    raise GoesError(f"{path}: unknown GOES file type {suffix!r} (expected .csv, .nc or .fits)")
