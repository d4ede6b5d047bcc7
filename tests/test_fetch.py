"""The fetcher against a loopback HTTP server serving a small mirror of the remote layouts."""
from __future__ import annotations

import asyncio
import json
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import h5py
import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from PIL import Image

from solargen.data.build import BuildConfig, build_dataset
from application.cli import main
from solargen.data.fetch import HEK_CSV_COLUMNS, Endpoints, FetchError, Fetcher, SunpyAiaClient, fetch

DAY = pd.Timestamp("2012-03-07", tz="UTC")
MISSING_HOUR = 5
LEVEL1 = [(ch, DAY + pd.Timedelta(hours=h, seconds=s)) for ch, s in (("171", 11), ("193", 6))
          for h in range(8) if (ch, h) != ("171", MISSING_HOUR)]
LEVEL1.append(("193", DAY + pd.Timedelta(hours=3, minutes=40, seconds=6)))   # not the nearest one


def _fits_name(channel: str, t: pd.Timestamp) -> str:
    return f"aia.lev1.{channel}A_{t:%Y-%m-%dT%H_%M_%S}.34Z.image_lev1.fits"   # the JSOC naming


def _write_fits(path: Path, channel: str, t: pd.Timestamp) -> None:
    """A 32 x 32 Rice-compressed AIA-like level-1 file (the layout the VSO serves)."""
    header = fits.Header({"TELESCOP": "SDO/AIA", "INSTRUME": "AIA_3", "LVL_NUM": 1.0,
                          "WAVELNTH": int(channel), "WAVEUNIT": "angstrom", "EXPTIME": 2.0,
                          "DATE-OBS": f"{t:%Y-%m-%dT%H:%M:%S}.34",
                          "T_OBS": f"{t + pd.Timedelta(seconds=1):%Y-%m-%dT%H:%M:%S}.34Z"})
    data = np.random.default_rng(t.hour).integers(0, 3000, (32, 32)).astype(np.int16)
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header)]).writeto(path, overwrite=True)


class LoopbackAia:
    """A level-1 client over the mirror: search lists LEVEL1, download goes through parfive over
    HTTP, as Fido.fetch does (overwrite=False: a file already in the folder is kept)."""

    def __init__(self, endpoints: Endpoints) -> None:
        self.base = endpoints.hek.rsplit("/", 1)[0] + "/aia/"
        self.parfive = pytest.importorskip("parfive")

    def search(self, channel: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        return pd.DataFrame([{"time": t, "record": self.base + _fits_name(ch, t)}
                             for ch, t in LEVEL1 if ch == channel and start <= t < end],
                            columns=["time", "record"])

    def download(self, record: str, folder: Path) -> Path | None:
        downloader = self.parfive.Downloader(progress=False, overwrite=False)
        downloader.enqueue_file(record, path=folder)
        results = asyncio.run(downloader.run_download())     # download() leaves its loop open
        if results.errors:
            if getattr(results.errors[0].exception, "status", None) == 404:
                return None
            raise FetchError(f"{record}: {results.errors[0].exception}")
        return Path(results[0])


class MirrorHandler(SimpleHTTPRequestHandler):
    """Serves the mirror folder; /hek answers like the HEK API; can fail or corrupt on demand."""

    log: list[str] = []
    fail_after: int | None = None
    corrupt_once: set[str] = set()
    truncate_once: set[str] = set()

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        type(self).log.append(self.path)
        if self.fail_after is not None and len(self.log) > self.fail_after:
            self.send_error(503)
            return
        if self.path.startswith("/hek"):
            page = int(parse_qs(urlparse(self.path).query)["page"][0])
            body = json.dumps(HEK_PAGES[page - 1]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        name = self.path.rsplit("/", 1)[-1]
        if name in self.corrupt_once:
            self.corrupt_once.discard(name)
            body = b"\xff\xd8 not really a jpeg"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if name in self.truncate_once:          # announce the whole file, send half, hang up
            self.truncate_once.discard(name)
            data = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


def _hek_event(**fields) -> dict:
    """An HEK API result row: the event coordinates sunpy's HEKClient parses, then `fields`."""
    return {"event_coordsys": "UTC-HPC-TOPO", "event_coordunit": "arcseconds",
            "event_coord1": fields.get("hpc_x") or 0.0, "event_coord2": fields.get("hpc_y") or 0.0,
            "event_coord3": None, **fields}


HEK_PAGES = [  # two pages, as the HEK API pages long answers (overmax)
    {"result": [_hek_event(event_starttime="2012-03-07T00:02:00", event_peaktime="2012-03-07T00:24:00",
                           event_endtime="2012-03-07T00:40:00", fl_goescls="X5.4", hgs_x=-27.4,
                           hgs_y=17.2, hpc_x=-416.0, hpc_y=374.0, ar_noaanum=11429)],
     "overmax": True},
    {"result": [_hek_event(event_starttime="2012-03-07T01:05:00", event_peaktime="2012-03-07T01:14:00",
                           event_endtime="2012-03-07T01:23:00", fl_goescls="X1.3", hgs_x=None,
                           hgs_y=None, hpc_x=None, hpc_y=None, ar_noaanum=11430),
                _hek_event(event_starttime="2012-03-07T03:00:00", event_peaktime="2012-03-07T03:10:00",
                           event_endtime="2012-03-07T03:20:00", fl_goescls="", ar_noaanum=0)],
     "overmax": False},
]


def _mirror(root: Path) -> None:
    folder = root / "browse" / "2012" / "03" / "07"
    folder.mkdir(parents=True)
    for h in range(8):
        if h == MISSING_HOUR:
            continue
        t = DAY + pd.Timedelta(hours=h, seconds=12)
        Image.fromarray(np.full((32, 32, 3), 20 * h + 20, np.uint8)).save(folder / f"{t:%Y%m%d_%H%M%S}_512_0171.jpg")
    goes = root / "goes" / "goes15" / "2012" / "03"
    goes.mkdir(parents=True)
    for d in range(5):
        day = DAY + pd.Timedelta(days=d)
        seconds = (day - pd.Timestamp("2000-01-01T12:00", tz="UTC")).total_seconds() + 60.0 * np.arange(1440)
        if d == 1:   # an older version beside the current one: the newest is taken
            (goes / f"sci_xrsf-l2-avg1m_g15_d{day:%Y%m%d}_v1-0-0.nc").write_bytes(b"old version")
        with h5py.File(goes / f"sci_xrsf-l2-avg1m_g15_d{day:%Y%m%d}_v1-0-1.nc", "w") as f:
            f["time"] = seconds
            f["time"].attrs["units"] = b"seconds since 2000-01-01 12:00:00"
            f["xrsa_flux"] = np.full(1440, 1e-8)
            f["xrsb_flux"] = np.full(1440, 5e-4 if d == 0 else 2e-6)
    (root / "aia").mkdir()
    for channel, t in LEVEL1:
        _write_fits(root / "aia" / _fits_name(channel, t), channel, t)


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "mirror"
    _mirror(root)
    MirrorHandler.log, MirrorHandler.fail_after = [], None
    MirrorHandler.corrupt_once, MirrorHandler.truncate_once = set(), set()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(MirrorHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield Endpoints(sdo_browse=f"{base}/browse", goes_xrs=base + "/goes/goes{sat:02d}/{year}/{month}/",
                    hek=f"{base}/hek")
    httpd.shutdown()


def _images(log):
    return [p for p in log if p.endswith(".jpg")]


def _fits_gets(log):
    return [p for p in log if p.endswith(".fits")]


def test_complete_fetch_then_build(server, tmp_path):
    out = tmp_path / "dl"
    manifest = fetch("2012-03-07T00:00", "2012-03-07T08:00", ("171",), out, server, progress=False)
    assert manifest["missing_hours"]["171"] == [(DAY + pd.Timedelta(hours=MISSING_HOUR)).isoformat()]
    times = pd.read_csv(out / "times.csv")
    assert len(times) == 7 and (out / "images").is_dir()
    assert manifest["downloads_this_run"] == 7 + 4             # 7 images, 4 GOES days (+72 h)
    assert all(len(v["sha256"]) == 64 for v in manifest["files"].values())
    assert sorted(p.name for p in (out / "goes").iterdir())[1].endswith("_d20120308_v1-0-1.nc")
    assert not list(out.rglob("*.part"))
    # The flare list has the HEK CSV layout of ../shared/data, positions included.
    hek = pd.read_csv(out / "hek_flares.csv")
    assert list(hek.columns) == list(HEK_CSV_COLUMNS) and manifest["hek_events"] == 2
    assert hek["AIA_LOC"].iloc[0] == "N17E27" and hek["AIA_LOC"].isna().iloc[1]
    ds = build_dataset(BuildConfig(images=str(out / "images"), times=out / "times.csv",
                                   goes=out / "goes.csv", flares=out / "hek_flares.csv", size=16),
                       tmp_path / "ds", progress=False)
    assert len(ds) == 7 and (ds.labels["max_class_24h"] == "X").all()
    assert ds.labels["peak_class"].isna().all()                # no frame within 7 min after a peak
    # The missing hour is absent from the dataset, not filled in.
    assert (DAY + pd.Timedelta(hours=MISSING_HOUR)) not in set(ds.times.floor("h"))


def test_interrupted_fetch_resumes_without_redownloading(server, tmp_path):
    out = tmp_path / "dl"
    MirrorHandler.fail_after = 5              # 2 day listings + 3 images, then the server goes down
    fetcher = Fetcher(out, server, retries=0, progress=False)
    with pytest.raises(FetchError, match="503"):
        fetcher.images(DAY, DAY + pd.Timedelta(hours=8), "171")
    done = len([p for p in (out / "images").iterdir() if p.suffix == ".jpg"])
    assert done == 3 and not list((out / "images").glob(".*"))   # no partial file left behind
    MirrorHandler.fail_after, MirrorHandler.log = None, []
    fetch("2012-03-07T00:00", "2012-03-07T08:00", ("171",), out, server, progress=False)
    assert len(_images(MirrorHandler.log)) == 7 - done


def test_broken_transfer_leaves_only_a_part_file_then_resumes(server, tmp_path):
    out = tmp_path / "dl"
    name = f"{DAY + pd.Timedelta(hours=2, seconds=12):%Y%m%d_%H%M%S}_512_0171.jpg"
    MirrorHandler.truncate_once = {name}
    fetcher = Fetcher(out, server, retries=0, progress=False)
    with pytest.raises(FetchError, match="transfer broken"):
        fetcher.images(DAY, DAY + pd.Timedelta(hours=8), "171")
    assert (out / "images" / f"{name}.part").exists() and not (out / "images" / name).exists()
    MirrorHandler.log = []
    fetch("2012-03-07T00:00", "2012-03-07T08:00", ("171",), out, server, progress=False)
    assert len(_images(MirrorHandler.log)) == 7 - 2          # the two finished ones are kept
    assert not list(out.rglob("*.part")) and (out / "images" / name).stat().st_size > 0
    # With retries, a broken transfer is simply tried again.
    MirrorHandler.truncate_once, MirrorHandler.log = {name}, []
    (out / "images" / name).unlink()
    fetch("2012-03-07T00:00", "2012-03-07T08:00", ("171",), out, server, progress=False, backoff_s=0.0)
    assert _images(MirrorHandler.log) == [f"/browse/2012/03/07/{name}"] * 2


def test_cli_rejects_bad_ranges(tmp_path, capsys):
    assert main(["data", "fetch", "--start", "2012-02-01", "--end", "2012-01-01", "--out",
                 str(tmp_path / "dl")]) == 2
    assert "must be after" in capsys.readouterr().err


def test_corrupt_files_are_detected_and_refetched(server, tmp_path):
    out = tmp_path / "dl"
    first = f"{DAY + pd.Timedelta(seconds=12):%Y%m%d_%H%M%S}_512_0171.jpg"
    MirrorHandler.corrupt_once = {first}      # the server sends a broken JPEG once
    fetch("2012-03-07T00:00", "2012-03-07T08:00", ("171",), out, server, progress=False)
    assert _images(MirrorHandler.log).count(f"/browse/2012/03/07/{first}") == 2
    # A file damaged on disk after the fetch is re-fetched on the next run, the rest reused.
    (out / "images" / first).write_bytes(b"garbage")
    MirrorHandler.log = []
    manifest = fetch("2012-03-07T00:00", "2012-03-07T08:00", ("171",), out, server, progress=False)
    assert _images(MirrorHandler.log) == [f"/browse/2012/03/07/{first}"]
    assert manifest["downloads_this_run"] == 1


def test_bad_arguments(server, tmp_path):
    with pytest.raises(ValueError, match="unknown AIA channel"):
        fetch("2012-03-07", "2012-03-08", ("172",), tmp_path, server, progress=False)
    with pytest.raises(ValueError, match="must be after"):
        fetch("2012-03-08", "2012-03-07", ("171",), tmp_path, server, progress=False)


def test_level1_fits_fetch_then_build(server, tmp_path):
    out = tmp_path / "dl"
    manifest = fetch("2012-03-07T00:00", "2012-03-07T08:00", ("171", "193"), out, server,
                     progress=False, aia_source="level1", aia_client=LoopbackAia(server))
    assert manifest["missing_hours"] == {"171": [(DAY + pd.Timedelta(hours=MISSING_HOUR)).isoformat()],
                                         "193": []}
    names = sorted(p.name for p in (out / "fits").iterdir())
    assert names == sorted(_fits_name(ch, t) for ch, t in LEVEL1 if t.minute == 0)   # the nearest
    assert manifest["downloads_this_run"] == 15 + 4 and manifest["aia_source"] == "level1"
    entry = manifest["files"][f"fits/{names[0]}"]
    assert entry["record"].endswith(names[0])
    assert entry["bytes"] == (out / "fits" / names[0]).stat().st_size
    assert not (out / "fits.part").exists() and not (out / "times.csv").exists()
    ds = build_dataset(BuildConfig(images=str(out / "fits"), goes=out / "goes.csv",
                                   flares=out / "hek_flares.csv", channels=("171", "193"), size=16),
                       tmp_path / "ds", progress=False)
    assert len(ds) == 7 and (ds.labels["max_class_24h"] == "X").all()
    assert (DAY + pd.Timedelta(hours=MISSING_HOUR)) not in set(ds.times.floor("h"))


def test_level1_interrupted_fetch_resumes_and_corrupt_files_are_refetched(server, tmp_path):
    out, client = tmp_path / "dl", LoopbackAia(server)
    MirrorHandler.fail_after = 3                      # 3 files, then the server goes down
    with pytest.raises(FetchError, match="503"):
        Fetcher(out, server, retries=0, progress=False).fits(DAY, DAY + pd.Timedelta(hours=8), "171",
                                                               client)
    assert len(list((out / "fits").iterdir())) == 3 and not any((out / "fits.part").iterdir())
    first = _fits_name("171", DAY + pd.Timedelta(seconds=11))
    MirrorHandler.fail_after, MirrorHandler.log = None, []
    MirrorHandler.corrupt_once = {_fits_name("171", DAY + pd.Timedelta(hours=4, seconds=11))}
    fetch("2012-03-07T00:00", "2012-03-07T08:00", ("171",), out, server, progress=False,
          aia_source="level1", aia_client=client)
    fits_gets = _fits_gets(MirrorHandler.log)
    assert len(fits_gets) == 7 - 3 + 1 and len(set(fits_gets)) == 7 - 3   # the corrupt one twice
    # A file damaged on disk is re-fetched on the next run, the rest reused.
    (out / "fits" / first).write_bytes(b"SIMPLE  = garbage")
    MirrorHandler.log = []
    manifest = fetch("2012-03-07T00:00", "2012-03-07T08:00", ("171",), out, server, progress=False,
                     aia_source="level1", aia_client=client)
    assert _fits_gets(MirrorHandler.log) == [f"/aia/{first}"] and manifest["downloads_this_run"] == 1
    # A file that fails twice (here: the wrong channel) stops the fetch with the reason.
    _write_fits(tmp_path / "mirror" / "aia" / first, "193", DAY)
    (out / "fits" / first).unlink()
    with pytest.raises(FetchError, match=f"{first} fails verification twice .*WAVELNTH 193"):
        fetch("2012-03-07T00:00", "2012-03-07T08:00", ("171",), out, server, progress=False,
              aia_source="level1", aia_client=client)


def test_sunpy_client_asks_fido_for_level1_aia(monkeypatch, tmp_path):
    net = pytest.importorskip("sunpy.net")
    import astropy.units as u
    from astropy.time import Time
    from parfive import Results
    from sunpy.net.fido_factory import UnifiedResponse
    from sunpy.net.vso.table_response import VSOQueryResponseTable
    searches, fetches = [], []
    table = VSOQueryResponseTable({"Start Time": Time(["2012-03-07T00:00:11", "2012-03-07T00:06:11"]),
                                   "fileid": ["aia__lev1:171:1", "aia__lev1:171:2"]})

    def fetch_(what, **kwargs):               # a broken transfer first, then the file
        fetches.append((what, kwargs))
        results = Results()
        if len(fetches) == 1:
            results.add_error(str(tmp_path / "a.fits"), "http://vso/a", OSError("connection reset"))
        else:
            results.append(path=str(tmp_path / "a.fits"), url="http://vso/a")
        return results

    monkeypatch.setattr(net.Fido, "search",
                        lambda *attrs: searches.append(attrs) or UnifiedResponse(table))
    monkeypatch.setattr(net.Fido, "fetch", fetch_)
    client = SunpyAiaClient(backoff_s=0.0, progress=False)
    found = client.search("171", DAY - pd.Timedelta("30min"), DAY + pd.Timedelta("90min"))
    query = {type(attr).__name__: attr for attr in searches[0]}
    assert query["Instrument"].value.lower() == "aia" and query["Wavelength"].min == 171 * u.AA
    assert query["Time"].start.isot == "2012-03-06T23:30:00.000" and query["Sample"].value == 360
    assert list(found["record"]) == ["aia__lev1:171:1", "aia__lev1:171:2"]
    assert found["time"].iloc[1] == DAY + pd.Timedelta(minutes=6, seconds=11)
    assert client.download("aia__lev1:171:2", tmp_path) == tmp_path / "a.fits"
    assert fetches[0][0]["fileid"] == "aia__lev1:171:2"
    assert fetches[0][1] == {"path": str(tmp_path), "overwrite": False, "progress": False}
    assert isinstance(fetches[1][0], Results) and len(fetches) == 2   # the failed one retried
