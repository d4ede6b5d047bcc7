"""`solargen data fetch`: real SDO/AIA images, GOES XRS flux and the HEK flare list for a date range.

Sources and their terms (cite them in any publication):
- SDO/AIA browse JPEGs, 512 px, one per hour (the file nearest each full hour), from the SDO data
  site of NASA GSFC (https://sdo.gsfc.nasa.gov/assets/img/browse/YYYY/MM/DD/, directory listings
  give the file names). NASA data are free to use; credit "Courtesy of NASA/SDO and the AIA, EVE,
  and HMI science teams". Browse images are display products (8-bit, scaled), not calibrated DN.
- With `--aia-source level1`: SDO/AIA level-1 FITS (4096 px DN, dark/flat corrected and despiked,
  not registered like level 1.5; ~10-60 MB each), the record nearest each full hour, found and
  downloaded through sunpy's Fido from the Virtual Solar Observatory, which serves the JSOC
  (Stanford) archive; needs `pip install 'sunpy[net]'`. Same NASA terms and credit as above;
  sunpy asks to be cited too (https://sunpy.org/credit).
- GOES XRS 1-minute science-quality netCDF, one file per day, from NOAA NCEI: the reprocessed
  GOES 13-15 record (www.ncei.noaa.gov/data/goes-space-environment-monitor/access/science/xrs/,
  `--goes-satellite 15` covers 2010-04 to 2020-03) and GOES-R 16+ (data.ngdc.noaa.gov/platforms/
  solar-space-observing-satellites/goes/). US government data, no restrictions on use; NOAA asks
  for acknowledgement. The reprocessed 13-15 fluxes have the SWPC scaling factor removed.
- Flare events from the Heliophysics Event Knowledgebase (HEK, LMSAL; https://www.lmsal.com/hek/)
  API through sunpy's HEKClient (`pip install 'sunpy[net]'`), GOES events only, written as the HEK
  CSV layout of ../shared/data (GEV_START, GEV_PEAK, GEV_END, GOES_CLASS, AIA_LOC, AIA_XCEN,
  AIA_YCEN, AR_NOAANUM). Free to use; cite Hurlburt et al. (2012, Sol. Phys. 275, 67) for the HEK
  and NOAA SWPC for the GOES event list.

Behaviour: for each full hour the AIA frame nearest to it within +-30 min is downloaded (a
missing hour is reported in the manifest and the summary, never invented); every download goes
into `<file>.part` (level 1: the folder `fits.part/`) and is moved onto its name only when complete
and verified (JPEG decodes with PIL; FITS opens with astropy, its 2-D image decodes and is not all
NaN, WAVELNTH is the channel, DATE-OBS/T_OBS parse; netCDF opens and holds XRS flux; size > 0) and
recorded with its SHA-256 in `manifest.json`; a re-run skips verified files (so an interrupted
fetch resumes where it stopped) and re-fetches corrupt or changed ones; HTTP requests are retried
with exponential backoff (urllib3's Retry), broken transfers too. The output is what
`solargen data build` reads unchanged:

    solargen data build --images <out>/images --times <out>/times.csv --goes <out>/goes.csv \\
        --flares <out>/hek_flares.csv --out <dataset>

and for level 1 (all channels in one folder; the build takes time and channel from the headers)

    solargen data build --images <out>/fits --goes <out>/goes.csv --flares <out>/hek_flares.csv \\
        --channels 171,193 --out <dataset>
"""
from __future__ import annotations

import hashlib
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Protocol

import numpy as np
import pandas as pd
import requests
from requests.adapters import HTTPAdapter
from tqdm.auto import tqdm
from urllib3.util.retry import Retry

from solargen import io
from solargen.errors import SolargenError
from solargen.data.catalogs import heliographic_location

CHANNELS = ("94", "131", "171", "193", "211", "304", "335", "1600", "1700")
AIA_SOURCES = ("browse", "level1")
HALF_HOUR = pd.Timedelta("30min")


class FetchError(SolargenError):
    """A download that failed after all retries."""


class _Corrupt(Exception):
    """A downloaded file that does not verify."""


@dataclass(frozen=True)
class Endpoints:
    """Where each source lives (tests point these at a loopback server). The GOES templates name a
    monthly directory; the day's file is picked from its listing (the version suffix varies)."""

    sdo_browse: str = "https://sdo.gsfc.nasa.gov/assets/img/browse"
    goes_xrs: str = ("https://www.ncei.noaa.gov/data/goes-space-environment-monitor/access/science/"
                     "xrs/goes{sat:02d}/xrsf-l2-avg1m_science/{year}/{month}/")
    goes_xrs_r: str = ("https://data.ngdc.noaa.gov/platforms/solar-space-observing-satellites/goes/"
                       "goes{sat:02d}/l2/data/xrsf-l2-avg1m_science/{year}/{month}/")
    goes_satellite: int = 15
    hek: str = "https://www.lmsal.com/hek/her"

    def goes_directory(self, day: pd.Timestamp) -> str:
        template = self.goes_xrs_r if self.goes_satellite >= 16 else self.goes_xrs
        return template.format(sat=self.goes_satellite, year=f"{day:%Y}", month=f"{day:%m}")


HEK_CSV_COLUMNS = ("GEV_START", "GEV_PEAK", "GEV_END", "GOES_CLASS", "AIA_LOC", "AIA_XCEN", "AIA_YCEN",
                   "AR_NOAANUM")


class AiaClient(Protocol):
    """Where level-1 AIA records are found and downloaded (tests inject a loopback one)."""

    def search(self, channel: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Records of `channel` in [start, end): columns time (UTC) and record (a unique str id)."""

    def download(self, record: str, folder: Path) -> Path | None:
        """Download one record into `folder` (keeping a file already there); None for a 404."""


@dataclass
class SunpyAiaClient:
    """Level-1 AIA FITS through sunpy's Fido (the VSO, serving JSOC data), downloaded by parfive.
    `sample` thins the search (AIA takes an EUV image every 12 s): the record nearest a full hour
    is then within about sample/2 of it when data exist."""

    sample: pd.Timedelta = pd.Timedelta("6min")
    retries: int = 4
    backoff_s: float = 1.0
    progress: bool = True

    def __post_init__(self) -> None:
        net = _sunpy_net("--aia-source level1")
        self._fido, self._attrs = net.Fido, net.attrs
        self._rows: dict[str, object] = {}          # record id -> its search result row

    def search(self, channel: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        import astropy.units as u
        a = self._attrs
        response = self._fido.search(
            a.Time(f"{start:%Y-%m-%dT%H:%M:%S}", f"{end:%Y-%m-%dT%H:%M:%S}"), a.Instrument.aia,
            a.Wavelength(int(channel) * u.angstrom), a.Sample(self.sample.total_seconds() * u.s))
        rows = []
        for block in response:
            for row in block:
                self._rows[str(row["fileid"])] = row
                rows.append({"time": pd.Timestamp(row["Start Time"].isot, tz="UTC"),
                             "record": str(row["fileid"])})
        errors = [e for block in response for e in getattr(block, "errors", [])]
        if not rows and errors:
            raise FetchError(f"VSO search for AIA {channel} {start} to {end} failed: {errors}")
        return pd.DataFrame(rows, columns=["time", "record"])

    def download(self, record: str, folder: Path) -> Path | None:
        results = self._fido.fetch(self._rows[record], path=str(folder), overwrite=False,
                                   progress=self.progress)
        # parfive has no retry policy; sunpy's documented retry is Fido.fetch(results) again
        for attempt in range(self.retries):
            if not results.errors:
                break
            time.sleep(self.backoff_s * 2 ** attempt)
            results = self._fido.fetch(results, overwrite=False, progress=self.progress)
        if results.errors:
            if all(getattr(e.exception, "status", None) == 404 for e in results.errors):
                return None
            raise FetchError(f"AIA record {record}: download failed after {self.retries + 1} tries ("
                             + "; ".join(f"{e.url}: {e.exception}" for e in results.errors)
                             + "); re-run to resume")
        if len(results) != 1:
            raise FetchError(f"AIA record {record}: the VSO gave {len(results)} files, expected one")
        return Path(results[0])


@dataclass
class Fetcher:
    out: Path
    endpoints: Endpoints = Endpoints()
    retries: int = 4
    backoff_s: float = 1.0
    timeout_s: float = 60.0
    progress: bool = True

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.session = requests.Session()
        retry = Retry(total=self.retries, backoff_factor=self.backoff_s,
                      status_forcelist=(429, 500, 502, 503, 504))
        for scheme in ("http://", "https://"):
            self.session.mount(scheme, HTTPAdapter(max_retries=retry))
        self.manifest_path = self.out / "manifest.json"
        self.manifest = io.read_json(self.manifest_path) if self.manifest_path.exists() else {"files": {}}
        self.downloads = 0

    # ------------------------------------------------------------------ HTTP with retries
    def _get(self, url: str, stream: bool = False) -> requests.Response:
        """GET (the session retries with exponential backoff); a 404 is returned (the caller
        reports it)."""
        try:
            response = self.session.get(url, timeout=self.timeout_s, stream=stream)
            if response.status_code != 404:
                response.raise_for_status()
            return response
        except requests.RequestException as exc:
            raise FetchError(f"{url}: failed after {self.retries + 1} tries ({exc})") from None

    def _download(self, url: str, rel: str, verify) -> Path | None:
        """Fetch `url` to out/rel unless a verified copy is there; None when the server has none.
        The bytes stream into out/rel.part, renamed onto out/rel only once verified."""
        target = self.out / rel
        known = self.manifest["files"].get(rel)
        if target.exists() and _ok(verify, target):
            digest = _sha256(target)
            if known is None:                  # renamed, then killed before the manifest was saved
                self.manifest["files"][rel] = {"url": url, "sha256": digest,
                                               "bytes": target.stat().st_size}
                return target
            if digest == known["sha256"]:
                return target
        part = target.with_name(target.name + ".part")
        target.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):                                 # one more try after a corrupt download
            if not self._stream(url, part):
                return None
            if _ok(verify, part):
                part.replace(target)
                self.manifest["files"][rel] = {"url": url, "sha256": _sha256(target),
                                               "bytes": target.stat().st_size}
                self._save_manifest()
                return target
            part.unlink()
        raise FetchError(f"{url}: the downloaded file fails verification twice "
                         f"({verify.__doc__.strip()})")

    def _stream(self, url: str, part: Path) -> bool:
        """Stream `url` into `part`, retrying a broken transfer; False when the server has none."""
        # urllib3's Retry ends when the headers arrive; a body broken mid-stream is retried here
        for attempt in range(self.retries + 1):
            response = self._get(url, stream=True)
            if response.status_code == 404:
                return False
            self.downloads += 1
            try:
                with open(part, "wb") as fh:
                    for block in response.iter_content(1 << 16):
                        fh.write(block)
                return True
            except requests.RequestException as exc:
                if attempt == self.retries:
                    raise FetchError(f"{url}: transfer broken after {self.retries + 1} tries ({exc}); "
                                     "re-run to resume") from None
                time.sleep(self.backoff_s * 2 ** attempt)
        raise AssertionError("unreachable")

    def _save_manifest(self) -> None:
        io.write_json(self.manifest_path, self.manifest)

    # ------------------------------------------------------------------ sources
    def images(self, start: pd.Timestamp, end: pd.Timestamp, channel: str) -> pd.DataFrame:
        """Hourly browse JPEGs nearest each full hour in [start, end); returns the times table."""
        rows, missing = [], []
        hours = pd.date_range(start, end, freq="h", inclusive="left")
        listing_cache: dict[str, list[tuple[pd.Timestamp, str]]] = {}
        for hour in tqdm(hours, desc=f"AIA {channel} browse", unit="h", disable=not self.progress):
            candidates = []
            for day in {(hour - HALF_HOUR).normalize(), hour.normalize(),
                        (hour + HALF_HOUR).normalize()}:
                key = day.strftime("%Y/%m/%d")
                if key not in listing_cache:
                    listing_cache[key] = self._listing(day, channel)
                candidates += listing_cache[key]
            best = _nearest(hour, candidates)
            if best is None:
                missing.append(hour.isoformat())
                continue
            t, name = best
            url = f"{self.endpoints.sdo_browse}/{t:%Y/%m/%d}/{name}"
            if self._download(url, f"images/{name}", _verify_jpeg) is None:
                missing.append(hour.isoformat())
                continue
            rows.append({"file": name, "t_obs": t.isoformat(), "channel": channel})
        self.manifest.setdefault("missing_hours", {})[channel] = missing
        self._save_manifest()
        return pd.DataFrame(rows, columns=["file", "t_obs", "channel"])

    def _listing(self, day: pd.Timestamp, channel: str) -> list[tuple[pd.Timestamp, str]]:
        response = self._get(f"{self.endpoints.sdo_browse}/{day:%Y/%m/%d}/")
        if response.status_code == 404:
            return []
        pattern = re.compile(rf'href="(\d{{8}}_\d{{6}}_512_{int(channel):04d}\.jpg)"')
        names = sorted(set(pattern.findall(response.text)))
        return [(pd.Timestamp(pd.to_datetime(n[:15], format="%Y%m%d_%H%M%S"), tz="UTC"), n) for n in names]

    def fits(self, start: pd.Timestamp, end: pd.Timestamp, channel: str, client: AiaClient) -> None:
        """Level-1 FITS nearest each full hour in [start, end) into out/fits/ (one folder for all
        channels: the build takes time and channel from the headers)."""
        found = client.search(channel, start - HALF_HOUR, end + HALF_HOUR)
        candidates = list(zip(found["time"], found["record"]))
        stored = {v["record"]: rel for rel, v in self.manifest["files"].items() if "record" in v}
        missing = []
        hours = pd.date_range(start, end, freq="h", inclusive="left")
        for hour in tqdm(hours, desc=f"AIA {channel} level 1", unit="h", disable=not self.progress):
            best = _nearest(hour, candidates)
            if best is None or self._fetch_record(client, best[1], channel, stored) is None:
                missing.append(hour.isoformat())
        staging = self.out / "fits.part"
        if staging.is_dir() and not any(staging.iterdir()):
            staging.rmdir()
        self.manifest.setdefault("missing_hours", {})[channel] = missing
        self._save_manifest()

    def _fetch_record(self, client: AiaClient, record: str, channel: str,
                      stored: dict[str, str]) -> Path | None:
        """One level-1 record into out/fits unless a verified copy is there; None when the server
        has none. The client writes into out/fits.part; a verified file is moved onto out/fits."""
        rel = stored.get(record)
        if rel is not None:
            target = self.out / rel
            if (target.exists() and _fits_problem(target, channel) is None
                    and _sha256(target) == self.manifest["files"][rel]["sha256"]):
                return target
        staging = self.out / "fits.part"
        staging.mkdir(parents=True, exist_ok=True)
        for _ in range(2):                                 # one more try after a corrupt download
            path = client.download(record, staging)
            if path is None:
                return None
            self.downloads += 1
            problem = _fits_problem(path, channel)
            if problem is None:
                rel = stored[record] = f"fits/{path.name}"
                self.manifest["files"][rel] = {"record": record, "sha256": _sha256(path),
                                               "bytes": path.stat().st_size}
                self._save_manifest()          # before the move: a kill in between costs a re-download
                (self.out / "fits").mkdir(exist_ok=True)
                return path.replace(self.out / rel)
            path.unlink()
        raise FetchError(f"AIA record {record}: {path.name} fails verification twice ({problem})")

    def goes(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Daily XRS netCDF files (3 days past `end` so the 72 h labels exist), as one series."""
        from solargen.data.goes import read_goes_netcdf
        parts, missing = [], []
        sat = self.endpoints.goes_satellite
        days = pd.date_range(start.normalize(), end.normalize() + pd.Timedelta(days=3), freq="D")
        listings: dict[str, list[str]] = {}
        for day in tqdm(days, desc=f"GOES-{sat} XRS", unit="day", disable=not self.progress):
            folder = self.endpoints.goes_directory(day)
            if folder not in listings:
                response = self._get(folder)
                listings[folder] = [] if response.status_code == 404 else response.text
            pattern = rf'href="(sci_xrsf-l2-avg1m_g{sat:02d}_d{day:%Y%m%d}_v[0-9-]+\.nc)"'
            names = sorted(set(re.findall(pattern, listings[folder]) if listings[folder] else []))
            path = (self._download(folder + names[-1], f"goes/{names[-1]}", _verify_netcdf)
                    if names else None)                    # the newest version of the day's file
            if path is None:
                missing.append(f"{day:%Y-%m-%d}")
                continue
            parts.append(read_goes_netcdf(path))
        self.manifest["missing_goes_days"] = missing
        self._save_manifest()
        if not parts:
            raise FetchError(f"no GOES-{sat} XRS file found for {start:%Y-%m-%d} to {end:%Y-%m-%d} "
                             f"under {self.endpoints.goes_directory(start)} (GOES-15 covers 2010-04 "
                             "to 2020-03; choose another --goes-satellite for other dates)")
        series = pd.concat(parts).sort_index()
        return series[~series.index.duplicated()]

    def flares(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """HEK GOES flare events (sunpy's HEKClient reads every page) as the HEK CSV layout of
        ../shared/data."""
        net = _sunpy_net("the HEK flare list")
        from sunpy.net.hek import HEKClient
        a = net.attrs
        try:
            found = HEKClient(self.endpoints.hek + "?").search(
                a.Time(f"{start:%Y-%m-%dT%H:%M:%S}", f"{end:%Y-%m-%dT%H:%M:%S}"), a.hek.EventType("FL"),
                a.hek.OBS.Observatory == "GOES")
        except OSError as exc:                       # urllib's URLError and HTTPError among them
            raise FetchError(f"{self.endpoints.hek}: HEK search failed ({exc}); re-run to resume") from None
        rows = [{c: row[c] for c in found.raw.colnames} for row in found.raw]   # as the HEK sent them
        table = pd.DataFrame([{
            "GEV_START": r["event_starttime"], "GEV_PEAK": r["event_peaktime"],
            "GEV_END": r["event_endtime"], "GOES_CLASS": r["fl_goescls"].strip(),
            "AIA_LOC": heliographic_location(r.get("hgs_y"), r.get("hgs_x")),
            "AIA_XCEN": r.get("hpc_x"), "AIA_YCEN": r.get("hpc_y"),
            "AR_NOAANUM": r.get("ar_noaanum") or None,
        } for r in rows if (r.get("fl_goescls") or "").strip()], columns=list(HEK_CSV_COLUMNS))
        table = table.drop_duplicates().sort_values("GEV_PEAK", ignore_index=True)
        self.manifest["hek_events"] = len(table)
        return table


def _sunpy_net(what: str) -> ModuleType:
    """The sunpy.net module, or an ImportError that says how to install it."""
    try:
        import sunpy.net
    except ImportError as exc:
        raise ImportError(f"{what} needs sunpy with its network extras: pip install 'sunpy[net]' "
                          f"({exc})") from None
    return sunpy.net


def _nearest(hour: pd.Timestamp, candidates: list) -> tuple | None:
    """The (time, name) nearest `hour` within +-30 min (a tie takes the earlier); None if none."""
    near = [(abs(t - hour), t, name) for t, name in candidates if abs(t - hour) <= HALF_HOUR]
    return min(near)[1:] if near else None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ok(verify, path: Path) -> bool:
    try:
        return path.stat().st_size > 0 and verify(path)
    except Exception:  # any decoder failure means a corrupt file
        return False


def _verify_jpeg(path: Path) -> bool:
    """a JPEG that PIL decodes"""
    from PIL import Image
    with Image.open(path) as img:
        img.load()
    return True


def _fits_problem(path: Path, channel: str) -> str | None:
    """Why a FITS file is not a usable `channel` image as the build reads it; None when it is."""
    from astropy.io import fits
    from solargen.data.sources import _fits_header
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")            # astropy's truncation warning: reported below
            _, wave, error = _fits_header(path)
            if error:
                return error
            if wave != channel:
                return f"header WAVELNTH {wave} is not channel {channel}"
            with fits.open(path) as hdul:
                data = next(h for h in hdul if h.header.get("NAXIS", 0) == 2).data
                if not np.isfinite(data).any():
                    return "the image has no finite pixel"
    except Exception as exc:  # any decoder failure means a corrupt file
        return f"unreadable FITS image ({exc})"
    return None


def _verify_netcdf(path: Path) -> bool:
    """a netCDF file with GOES XRS flux"""
    from solargen.data.goes import read_goes_netcdf
    return len(read_goes_netcdf(path)) > 0


def fetch(start: str, end: str, channels: tuple[str, ...], out: str | Path,
          endpoints: Endpoints = Endpoints(), progress: bool = True, retries: int = 4,
          backoff_s: float = 1.0, aia_source: str = "browse",
          aia_client: AiaClient | None = None) -> dict:
    """Download AIA images (browse JPEGs + times.csv, or level-1 FITS under fits/), GOES flux and
    flares for [start, end); write goes.csv, hek_flares.csv and manifest.json under `out`.
    Level 1 searches through `aia_client` (default: sunpy's Fido). Returns the manifest."""
    unknown = [c for c in channels if c not in CHANNELS]
    if unknown:
        raise SolargenError(f"unknown AIA channel(s) {unknown}; AIA channels are {CHANNELS}")
    if aia_source not in AIA_SOURCES:
        raise SolargenError(f"unknown AIA source {aia_source!r}; choose one of {AIA_SOURCES}")
    t0, t1 = pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC")
    if t1 <= t0:
        raise SolargenError(f"--end {end} must be after --start {start}")
    fetcher = Fetcher(Path(out), endpoints, retries=retries, backoff_s=backoff_s, progress=progress)
    if aia_source == "level1":
        client = aia_client or SunpyAiaClient(retries=retries, backoff_s=backoff_s, progress=progress)
        for ch in channels:
            fetcher.fits(t0, t1, ch, client)
    else:
        times = pd.concat([fetcher.images(t0, t1, ch) for ch in channels], ignore_index=True)
        with io.atomic_path(fetcher.out / "times.csv") as tmp:
            times.to_csv(tmp, index=False)
    goes = fetcher.goes(t0, t1)
    with io.atomic_path(fetcher.out / "goes.csv") as tmp:
        pd.DataFrame({"time": goes.index.strftime("%Y-%m-%dT%H:%M:%S"), "xrsa": goes["xrsa"].to_numpy(),
                      "xrsb": goes["xrsb"].to_numpy()}).to_csv(tmp, index=False)
    with io.atomic_path(fetcher.out / "hek_flares.csv") as tmp:
        fetcher.flares(t0, t1).to_csv(tmp, index=False)
    fetcher.manifest.update(start=t0.isoformat(), end=t1.isoformat(), channels=list(channels),
                            aia_source=aia_source, downloads_this_run=fetcher.downloads,
                            **io.provenance())
    fetcher._save_manifest()
    return fetcher.manifest
