"""`solargen data fetch`: real SDO/AIA images, GOES XRS flux and the HEK flare list for a date range.

Sources and their terms (cite them in any publication):
- SDO/AIA browse JPEGs, 512 px, one per hour (the file nearest each full hour), from the SDO data
  site of NASA GSFC (https://sdo.gsfc.nasa.gov/assets/img/browse/YYYY/MM/DD/, directory listings
  give the file names). NASA data are free to use; credit "Courtesy of NASA/SDO and the AIA, EVE,
  and HMI science teams". Browse images are display products (8-bit, scaled), not calibrated DN.
- GOES XRS 1-minute science-quality netCDF, one file per day, from NOAA NCEI: the reprocessed
  GOES 13-15 record (www.ncei.noaa.gov/data/goes-space-environment-monitor/access/science/xrs/,
  `--goes-satellite 15` covers 2010-04 to 2020-03) and GOES-R 16+ (data.ngdc.noaa.gov/platforms/
  solar-space-observing-satellites/goes/). US government data, no restrictions on use; NOAA asks
  for acknowledgement. The reprocessed 13-15 fluxes have the SWPC scaling factor removed.
- Flare events from the Heliophysics Event Knowledgebase (HEK, LMSAL; https://www.lmsal.com/hek/)
  API, GOES events only, written as the HEK CSV layout of ../shared/data (GEV_START, GEV_PEAK,
  GEV_END, GOES_CLASS, AIA_LOC, AIA_XCEN, AIA_YCEN, AR_NOAANUM). Free to use; cite Hurlburt et al.
  (2012, Sol. Phys. 275, 67) for the HEK and NOAA SWPC for the GOES event list.

Behaviour: for each full hour the browse frame nearest to it within +-30 min is downloaded (a
missing hour is reported in the manifest and the summary, never invented); every download streams
into `<file>.part` and is renamed onto its name only when complete and verified (JPEG decodes with
PIL, netCDF opens and holds XRS flux, size > 0) and recorded with its SHA-256 in `manifest.json`;
a re-run skips verified files (so an interrupted fetch resumes where it stopped) and re-fetches
corrupt or changed ones; requests are retried with exponential backoff. The output is what
`solargen data build` reads unchanged:

    solargen data build --images <out>/images --times <out>/times.csv --goes <out>/goes.csv \\
        --flares <out>/hek_flares.csv --out <dataset>
"""
from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import requests
from tqdm.auto import tqdm

from solargen import io

CHANNELS = ("94", "131", "171", "193", "211", "304", "335", "1600", "1700")


class FetchError(RuntimeError):
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
        self.manifest_path = self.out / "manifest.json"
        self.manifest = io.read_json(self.manifest_path) if self.manifest_path.exists() else {"files": {}}
        self.downloads = 0

    # ------------------------------------------------------------------ HTTP with retries
    def _get(self, url: str, params: dict | None = None, stream: bool = False) -> requests.Response:
        """GET with retries and exponential backoff; a 404 is returned (the caller reports it)."""
        for attempt in range(self.retries + 1):
            try:
                response = self.session.get(url, params=params, timeout=self.timeout_s, stream=stream)
                if response.status_code == 404:
                    return response
                response.raise_for_status()
                return response
            except requests.RequestException as exc:
                if attempt == self.retries:
                    raise FetchError(f"{url}: failed after {self.retries + 1} tries ({exc})") from None
                time.sleep(self.backoff_s * 2 ** attempt)
        raise AssertionError("unreachable")

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
            for day in {(hour - pd.Timedelta("30min")).normalize(), hour.normalize(),
                        (hour + pd.Timedelta("30min")).normalize()}:
                key = day.strftime("%Y/%m/%d")
                if key not in listing_cache:
                    listing_cache[key] = self._listing(day, channel)
                candidates += listing_cache[key]
            near = [(abs(t - hour), t, name) for t, name in candidates if abs(t - hour) <= pd.Timedelta("30min")]
            if not near:
                missing.append(hour.isoformat())
                continue
            _, t, name = min(near)
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
        """HEK GOES flare events (all pages) as the HEK CSV layout of ../shared/data."""
        rows, page = [], 1
        while True:
            response = self._get(self.endpoints.hek, {
                "cosec": 2, "cmd": "search", "type": "column", "event_type": "fl",
                "event_coordsys": "helioprojective", "x1": -1200, "x2": 1200, "y1": -1200, "y2": 1200,
                "event_starttime": f"{start:%Y-%m-%dT%H:%M:%S}", "event_endtime": f"{end:%Y-%m-%dT%H:%M:%S}",
                "param0": "OBS_OBSERVATORY", "op0": "=", "value0": "GOES", "result_limit": 500,
                "page": page,
                "return": "event_starttime,event_peaktime,event_endtime,fl_goescls,hgs_x,hgs_y,"
                          "hpc_x,hpc_y,ar_noaanum"})
            if response.status_code == 404:
                raise FetchError(f"{self.endpoints.hek}: HEK service not found")
            payload = response.json()
            rows += payload.get("result", [])
            if not payload.get("overmax"):
                break
            page += 1
        table = pd.DataFrame([{
            "GEV_START": r["event_starttime"], "GEV_PEAK": r["event_peaktime"],
            "GEV_END": r["event_endtime"], "GOES_CLASS": r["fl_goescls"].strip(),
            "AIA_LOC": _hek_location(r.get("hgs_y"), r.get("hgs_x")),
            "AIA_XCEN": r.get("hpc_x"), "AIA_YCEN": r.get("hpc_y"),
            "AR_NOAANUM": r.get("ar_noaanum") or None,
        } for r in rows if (r.get("fl_goescls") or "").strip()], columns=list(HEK_CSV_COLUMNS))
        table = table.drop_duplicates().sort_values("GEV_PEAK", ignore_index=True)
        self.manifest["hek_events"] = len(table)
        return table


def _hek_location(lat, lon) -> str | None:
    """Stonyhurst latitude/longitude (deg) -> 'S17E81'; None when HEK gives no position."""
    try:
        lat, lon = float(lat), float(lon)
    except (TypeError, ValueError):
        return None
    return (f"{'N' if lat >= 0 else 'S'}{int(round(abs(lat))):02d}"
            f"{'W' if lon >= 0 else 'E'}{int(round(abs(lon))):02d}")


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


def _verify_netcdf(path: Path) -> bool:
    """a netCDF file with GOES XRS flux"""
    from solargen.data.goes import read_goes_netcdf
    return len(read_goes_netcdf(path)) > 0


def fetch(start: str, end: str, channels: tuple[str, ...], out: str | Path,
          endpoints: Endpoints = Endpoints(), progress: bool = True, retries: int = 4,
          backoff_s: float = 1.0) -> dict:
    """Download images, GOES flux and flares for [start, end); write times.csv, goes.csv,
    hek_flares.csv and manifest.json under `out`. Returns the manifest."""
    unknown = [c for c in channels if c not in CHANNELS]
    if unknown:
        raise ValueError(f"unknown AIA channel(s) {unknown}; browse products exist for {CHANNELS}")
    t0, t1 = pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC")
    if t1 <= t0:
        raise ValueError(f"--end {end} must be after --start {start}")
    fetcher = Fetcher(Path(out), endpoints, retries=retries, backoff_s=backoff_s, progress=progress)
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
                            downloads_this_run=fetcher.downloads, **io.provenance())
    fetcher._save_manifest()
    return fetcher.manifest
