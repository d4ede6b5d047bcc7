"""`solargen data fetch`: real SDO/AIA images, GOES XRS flux and the HEK flare list for a date range.

Sources (public; cite them in any publication):
- SDO/AIA browse JPEGs (512 px, NASA SDO, https://sdo.gsfc.nasa.gov/assets/img/browse/YYYY/MM/DD/):
  NASA data, free to use with credit "Courtesy of NASA/SDO and the AIA science team".
- GOES-15 XRS 1-min science netCDF (NOAA NCEI, https://www.ncei.noaa.gov/data/goes-space-
  environment-monitor/access/science/xrs/): US government data, public domain.
- HEK flare list (LMSAL, https://www.lmsal.com/hek/her): GOES flare events (SWPC), free to use.

Behaviour: for each full hour the browse frame nearest to it within +-30 min is downloaded (a
missing hour is reported in the manifest, never invented); every file is written to a temporary
file and renamed only when complete and verified (JPEG decodes, netCDF opens), and recorded with its SHA-256 in
`manifest.json`; a re-run skips verified files and re-fetches corrupt ones; requests are retried
with exponential backoff. The output is what `solargen data build` reads unchanged:

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
    """Where each source lives; tests point these at a loopback server."""

    sdo_browse: str = "https://sdo.gsfc.nasa.gov/assets/img/browse"
    goes_xrs: str = ("https://www.ncei.noaa.gov/data/goes-space-environment-monitor/access/science/"
                     "xrs/goes15/xrsf-l2-avg1m_science/{year}/{month}/"
                     "sci_xrsf-l2-avg1m_g15_d{year}{month}{day}_v1-0-0.nc")
    hek: str = "https://www.lmsal.com/hek/her"


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
    def _get(self, url: str, params: dict | None = None) -> requests.Response:
        for attempt in range(self.retries + 1):
            try:
                response = self.session.get(url, params=params, timeout=self.timeout_s)
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
        """Fetch `url` to out/rel unless a verified copy is there; None when the server has none."""
        target = self.out / rel
        known = self.manifest["files"].get(rel)
        if known and target.exists() and _sha256(target) == known["sha256"] and _ok(verify, target):
            return target
        for _ in range(2):
            response = self._get(url)
            if response.status_code == 404:
                return None
            self.downloads += 1
            try:
                with io.atomic_path(target) as part:  # renamed onto target only if verified
                    part.write_bytes(response.content)
                    if not _ok(verify, part):
                        raise _Corrupt(url)
            except _Corrupt:
                continue
            self.manifest["files"][rel] = {"url": url, "sha256": _sha256(target),
                                           "bytes": target.stat().st_size}
            self._save_manifest()
            return target
        raise FetchError(f"{url}: downloaded file fails verification twice")

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
        days = pd.date_range(start.normalize(), end.normalize() + pd.Timedelta(days=3), freq="D")
        for day in tqdm(days, desc="GOES XRS", unit="day", disable=not self.progress):
            url = self.endpoints.goes_xrs.format(year=f"{day:%Y}", month=f"{day:%m}", day=f"{day:%d}")
            path = self._download(url, f"goes/{url.rsplit('/', 1)[-1]}", _verify_netcdf)
            if path is None:
                missing.append(f"{day:%Y-%m-%d}")
                continue
            parts.append(read_goes_netcdf(path))
        self.manifest["missing_goes_days"] = missing
        self._save_manifest()
        if not parts:
            raise FetchError(f"no GOES XRS file found for {start:%Y-%m-%d} to {end:%Y-%m-%d}")
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
                "return": "event_starttime,event_peaktime,event_endtime,fl_goescls,ar_noaanum"})
            if response.status_code == 404:
                raise FetchError(f"{self.endpoints.hek}: HEK service not found")
            payload = response.json()
            rows += payload.get("result", [])
            if not payload.get("overmax"):
                break
            page += 1
        table = pd.DataFrame([{
            "GEV_START": r["event_starttime"], "GEV_PEAK": r["event_peaktime"],
            "GEV_END": r["event_endtime"], "GOES_CLASS": r["fl_goescls"],
            "AR_NOAANUM": r.get("ar_noaanum"),
        } for r in rows if r.get("fl_goescls")], columns=["GEV_START", "GEV_PEAK", "GEV_END", "GOES_CLASS", "AR_NOAANUM"])
        self.manifest["hek_events"] = len(table)
        return table


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ok(verify, path: Path) -> bool:
    try:
        return path.stat().st_size > 0 and verify(path)
    except Exception:  # any decoder failure means a corrupt file
        return False


def _verify_jpeg(path: Path) -> bool:
    from PIL import Image
    with Image.open(path) as img:
        img.load()
    return True


def _verify_netcdf(path: Path) -> bool:
    from solargen.data.goes import read_goes_netcdf
    return len(read_goes_netcdf(path)) > 0


def fetch(start: str, end: str, channels: tuple[str, ...], out: str | Path,
          endpoints: Endpoints = Endpoints(), progress: bool = True) -> dict:
    """Download images, GOES flux and flares for [start, end); write times.csv, goes.csv,
    hek_flares.csv and manifest.json under `out`. Returns the manifest."""
    unknown = [c for c in channels if c not in CHANNELS]
    if unknown:
        raise ValueError(f"unknown AIA channel(s) {unknown}; browse products exist for {CHANNELS}")
    t0, t1 = pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC")
    if t1 <= t0:
        raise ValueError(f"--end {end} must be after --start {start}")
    fetcher = Fetcher(Path(out), endpoints, progress=progress)
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
