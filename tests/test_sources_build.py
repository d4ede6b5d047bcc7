"""Image sources, the dataset build (bad frames listed, not dropped silently), torch datasets."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from PIL import Image

from application.cli import main
from solargen.data.build import BuildConfig, build_dataset
from solargen.data.dataset import DatasetError, load_dataset
from solargen.data.sources import SourceError, area_resize, open_source
from solargen.data.torchdata import FrameDataset, SequenceDataset
from solargen.errors import SolargenError

HOURS = pd.date_range("2012-03-06T00:00", periods=6, freq="h", tz="UTC")


def write_goes(path, start="2012-03-05", days=4):
    idx = pd.date_range(start, periods=days * 288, freq="5min", tz="UTC")
    flux = np.full(len(idx), 3e-7)
    flux[(idx >= "2012-03-07T00:10") & (idx <= "2012-03-07T00:40")] = 5e-4  # an X5 flare
    pd.DataFrame({"time": idx.strftime("%Y-%m-%dT%H:%M:%S"), "xrsa": 1e-8, "xrsb": flux}).to_csv(path, index=False)
    return path


def write_hek(path):
    path.write_text("GEV_START,GEV_PEAK,GEV_END,GOES_CLASS,AIA_LOC\n"
                    "2012-03-06T02:50:00,2012-03-06T02:57:00,2012-03-06T03:10:00,M1.2,N10E10\n")
    return path


def test_area_resize_is_block_mean():
    img = np.arange(16, dtype=np.float32).reshape(4, 4)
    assert np.allclose(area_resize(img, 2), [[2.5, 4.5], [10.5, 12.5]])
    assert area_resize(np.ones((10, 10), np.float32), 4).shape == (4, 4)


def test_bundle_build_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    bundle = tmp_path / "b.npz"
    np.savez(bundle, aia171=rng.integers(0, 256, (6, 32, 32), dtype=np.uint8),
             t_obs_171=np.array(HOURS.strftime("%Y-%m-%dT%H:%M:%S"), dtype=str),
             stale_171=np.array([False, False, True, False, False, False]))
    out = tmp_path / "ds"
    code = main(["data", "build", "--images", str(bundle), "--goes", str(write_goes(tmp_path / "g.csv")),
                 "--flares", str(write_hek(tmp_path / "hek.csv")), "--size", "16", "--out", str(out)])
    assert code == 0
    ds = load_dataset(out)
    assert ds.frames.shape == (6, 1, 16, 16) and ds.frames.dtype == np.float16
    frames = np.asarray(ds.frames)
    assert -1.0 <= float(frames.min()) and float(frames.max()) <= 1.0
    raw = np.load(bundle)["aia171"][0].reshape(16, 2, 16, 2).mean(axis=(1, 3))
    assert np.allclose(ds.normalisation.denormalise(ds.frame(0)), raw, atol=0.2)
    assert ds.labels["stale"].tolist() == [False, False, True, False, False, False]
    assert ds.labels.loc[3, "peak_class"] == "M"                  # 02:57 peak -> 03:00 frame
    # The X5 starts 2012-03-07 00:10: outside [t, t + 24 h) of the 00:00 frame, inside the rest.
    assert ds.labels["max_class_24h"].tolist() == ["B"] + ["X"] * 5
    assert ds.meta["synthetic"] is False and ds.meta["git_commit"]
    assert "Skipped frames" in (out / "report.md").read_text()


def _fits_copy(src, dst, when, data=None):
    with fits.open(src) as hdul:
        hdul[0].header["DATE-OBS"] = when
        hdul[0].header.pop("T_OBS", None)
        if data is not None:
            hdul[0].data = data
        hdul.writeto(dst)


def test_fits_directory_with_bad_frames(tmp_path):
    test_dir = pytest.importorskip("sunpy.data.test").__path__[0]
    src = f"{test_dir}/aia_171_level1.fits"
    folder = tmp_path / "fits"
    folder.mkdir()
    for h in range(3):
        _fits_copy(src, folder / f"aia_{h}.fits", HOURS[h].strftime("%Y-%m-%dT%H:%M:%S"))
    nan = fits.getdata(src).astype(np.float32)
    nan[5, 5] = np.nan
    _fits_copy(src, folder / "aia_3_nan.fits", HOURS[3].strftime("%Y-%m-%dT%H:%M:%S"), nan)
    _fits_copy(src, folder / "aia_4_truncated.fits", HOURS[4].strftime("%Y-%m-%dT%H:%M:%S"))
    good = (folder / "aia_4_truncated.fits").read_bytes()
    (folder / "aia_4_truncated.fits").write_bytes(good[: len(good) // 3])
    ds = build_dataset(BuildConfig(images=str(folder), goes=write_goes(tmp_path / "g.csv"), size=32),
                       tmp_path / "ds", progress=False)
    assert len(ds) == 3
    reasons = {s["frame"].split("/")[-1]: s["reason"] for s in ds.meta["skipped"]}
    assert "NaN" in reasons["aia_3_nan.fits"]
    assert "aia_4_truncated.fits" in reasons
    report = (tmp_path / "ds" / "report.md").read_text()
    assert "aia_3_nan.fits" in report and "aia_4_truncated.fits" in report


def test_fits_normalisation_comes_from_training_frames_only(tmp_path):
    """Test-window frames (May 2012, fold f1's test window) do not move the normalisation: making
    them five times brighter leaves lo/hi unchanged; the training frames (March) do move it."""
    test_dir = pytest.importorskip("sunpy.data.test").__path__[0]
    src = f"{test_dir}/aia_171_level1.fits"
    base = fits.getdata(src).astype(np.float32)
    test_hours = pd.date_range("2012-05-10T00:00", periods=3, freq="h", tz="UTC")
    goes = write_goes(tmp_path / "g.csv", start="2012-03-01", days=80)

    def build(name: str, train_gain: float, test_gain: float):
        folder = tmp_path / name
        folder.mkdir()
        for h in range(3):
            _fits_copy(src, folder / f"train_{h}.fits", HOURS[h].strftime("%Y-%m-%dT%H:%M:%S"),
                       base * train_gain * (1 + 0.1 * h))
            _fits_copy(src, folder / f"test_{h}.fits", test_hours[h].strftime("%Y-%m-%dT%H:%M:%S"),
                       base * test_gain * (1 + 0.1 * h))
        return build_dataset(BuildConfig(images=str(folder), goes=goes, size=16), tmp_path / f"ds-{name}",
                             progress=False)

    plain, bright_test, bright_train = build("plain", 1, 1), build("test5", 1, 5), build("train5", 5, 1)
    assert len(plain) == 6
    assert plain.meta["normalisation"] == bright_test.meta["normalisation"]
    assert bright_train.meta["normalisation"]["hi"][0] > 2 * plain.meta["normalisation"]["hi"][0]
    assert "3 frames in the training window of fold f1" in plain.meta["normalisation_note"]
    outside = BuildConfig(images=str(tmp_path / "plain"), goes=goes, size=16,
                          norm_window=("2013-01-01", "2013-02-01"))
    with pytest.raises(SolargenError, match="no frame falls in the window"):
        build_dataset(outside, tmp_path / "ds-outside", progress=False)
    fixed = build_dataset(BuildConfig(images=str(tmp_path / "plain"), goes=goes, size=16,
                                      norm_range=(0.0, 1000.0)), tmp_path / "ds-fixed", progress=False)
    assert fixed.meta["normalisation"]["lo"] == [0.0] and fixed.meta["normalisation"]["hi"] == [1000.0]


def test_blacked_out_frames_are_skipped_with_the_reason(tmp_path):
    """A black block on the disk (a missing readout) skips the frame; JPEG-like dark specks do not."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    disk = np.where(np.hypot(yy - 31.5, xx - 31.5) < 28, 90, 10).astype(np.float64)
    frames = np.repeat(disk[None], 6, axis=0) + rng.normal(0, 3, (6, 64, 64))
    frames[2, 20:40, 10:30] = 0                               # a 20 x 20 blacked-out block
    specks = rng.choice(64 * 64, 30, replace=False)
    frames[4].flat[specks] = 0                                # isolated black pixels only
    bundle = tmp_path / "b.npz"
    np.savez(bundle, aia171=frames.clip(0, 255).astype(np.uint8),
             t_obs_171=np.array([t.strftime("%Y-%m-%dT%H:%M:%S") for t in HOURS]))
    ds = build_dataset(BuildConfig(images=str(bundle), goes=write_goes(tmp_path / "g.csv"), size=16),
                       tmp_path / "ds", progress=False)
    assert len(ds) == 5
    (skip,) = ds.meta["skipped"]
    assert skip["reason"].startswith("blacked-out region: channel 171: a black region covers")
    assert "1 frames skipped for a blacked-out region" in (tmp_path / "ds" / "report.md").read_text()


def test_image_folder_zero_byte_jpeg_and_bad_times(tmp_path):
    folder = tmp_path / "img"
    folder.mkdir()
    rows = []
    for h in range(4):
        name = f"f{h}.jpg"
        if h == 2:
            (folder / name).write_bytes(b"")
        else:
            Image.fromarray(np.full((40, 40, 3), 30 * h + 30, np.uint8)).save(folder / name)
        rows.append((name, HOURS[h].isoformat()))
    times = tmp_path / "times.csv"
    pd.DataFrame(rows, columns=["file", "t_obs"]).to_csv(times, index=False)
    ds = build_dataset(BuildConfig(images=str(folder), times=times, goes=write_goes(tmp_path / "g.csv"),
                                   size=20), tmp_path / "ds", progress=False)
    assert len(ds) == 3 and ds.meta["skipped"][0]["reason"].startswith("empty (zero-byte)")
    unsorted = tmp_path / "unsorted.csv"
    pd.DataFrame([rows[1], rows[0]], columns=["file", "t_obs"]).to_csv(unsorted, index=False)
    with pytest.raises(SourceError, match="unsorted.csv.*not sorted"):
        open_source(folder, ("171",), unsorted)
    dup = tmp_path / "dup.csv"
    pd.DataFrame([rows[0], (rows[1][0], rows[0][1])], columns=["file", "t_obs"]).to_csv(dup, index=False)
    with pytest.raises(SourceError, match=r"dup.csv.*duplicated timestamp.*f0.jpg and f1.jpg"):
        open_source(folder, ("171",), dup)
    missing = tmp_path / "missing.csv"
    pd.DataFrame([rows[0], (rows[1][0], "")], columns=["file", "t_obs"]).to_csv(missing, index=False)
    with pytest.raises(SourceError, match="missing.csv.*missing or unreadable timestamps"):
        open_source(folder, ("171",), missing)


def test_sdoml_zarr_store(tmp_path):
    import zarr
    store = tmp_path / "sdoml.zarr"
    root = zarr.open_group(store, mode="w")
    for year, hours in (("2011", HOURS[:2]), ("2012", HOURS[2:4])):
        group = root.create_group(year)
        for ch, scale in (("171A", 1.0), ("94A", 0.1)):
            arr = group.create_array(ch, shape=(2, 32, 32), dtype="float32")
            arr[:] = scale * np.arange(2 * 32 * 32, dtype=np.float32).reshape(2, 32, 32)
            arr.attrs["T_OBS"] = [t.strftime("%Y-%m-%dT%H:%M:%S.00Z") for t in hours]
    src = open_source(str(store), ("171", "94"))
    assert len(src.times()) == 4 and src.times()[2] == HOURS[2]
    a171, a94 = src.read(1)
    assert np.allclose(a94, 0.1 * a171)
    ds = build_dataset(BuildConfig(images=str(store), goes=write_goes(tmp_path / "g.csv"), size=16,
                                   channels=("171", "94"), scaling="log"), tmp_path / "ds", progress=False)
    assert ds.frames.shape == (4, 2, 16, 16) and ds.meta["normalisation"]["scaling"] == "log"


def test_load_dataset_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    with pytest.raises(DatasetError, match="meta.json is missing"):
        load_dataset(tmp_path / "half")


def test_sequence_dataset_fills_short_gaps_and_skips_long(tmp_path):
    rng = np.random.default_rng(1)
    times = pd.date_range("2012-03-05", periods=24, freq="h", tz="UTC")
    keep = np.ones(24, bool)
    keep[[5, 6]] = False          # a 2-hour gap: filled
    keep[[14, 15, 16]] = False    # a 3-hour gap: skipped
    bundle = tmp_path / "b.npz"
    np.savez(bundle, aia171=rng.integers(0, 256, (keep.sum(), 8, 8), dtype=np.uint8),
             t_obs_171=np.array(times[keep].strftime("%Y-%m-%dT%H:%M:%S"), dtype=str))
    ds = build_dataset(BuildConfig(images=str(bundle), goes=write_goes(tmp_path / "g.csv"), size=8),
                       tmp_path / "ds", progress=False)
    ends = np.arange(len(ds))
    seq = SequenceDataset(ds, ends, np.zeros(len(ends), int), history=6)
    # Histories ending 00-04, 10-11 and 19-21 h start at a missing hour; those ending 17 and 18 h
    # span the 3-hour gap; 7 remain (ending 07, 08, 09, 12, 13, 22, 23 h).
    assert seq.skipped == {"first frame of the history missing": 5 + 2 + 3,
                           "more than 2 consecutive frames missing": 2}
    assert ds.times[seq.end_indices].hour.tolist() == [7, 8, 9, 12, 13, 22, 23]
    k = int(np.flatnonzero(ds.times[seq.end_indices] == times[7])[0])
    x, _ = seq[k]
    assert x.shape == (6, 1, 8, 8)
    f4, f7 = ds.frame(4), ds.frame(5)  # frames at 04:00 and 07:00 (05, 06 missing)
    assert np.allclose(x[3].numpy(), f4 + (f7 - f4) / 3, atol=1e-5)
    assert np.allclose(x[4].numpy(), f4 + 2 * (f7 - f4) / 3, atol=1e-5)
    assert seq.filled == 2 * 3  # the histories ending 07, 08, 09 h each interpolate 2 frames
    frames = FrameDataset(ds, np.arange(3), np.array([0, 1, 0]))
    assert frames[1][0].shape == (1, 8, 8) and int(frames[1][1]) == 1


@pytest.mark.shared_data
def test_real_2012_build_counts_match_independent_recount(shared_data, tmp_path):
    out = tmp_path / "ds"
    ds = build_dataset(BuildConfig(images=str(shared_data / "sdo-aia-2012" / "sdo_aia_2012.npz"),
                                   goes=shared_data / "goes" / "goes_xrs_5min_2011_2012.csv",
                                   flares=shared_data / "flares" / "hek_goes_flares_2003_2023.csv"),
                       out, progress=False)
    blackouts = [s for s in ds.meta["skipped"] if s["reason"].startswith("blacked-out region")]
    assert len(ds) + len(blackouts) == 7642 and ds.frames.shape == (len(ds), 1, 64, 64)
    assert 40 <= len(blackouts) <= 90        # 2012's 171 browse frames with blacked-out blocks
    assert any(s["frame"].endswith("[404]") for s in blackouts)   # 2012-01-18 14:56, nearly black
    # Independent re-count: put the flux on a regular 5-min grid, take sliding 24 h maxima.
    g = pd.read_csv(shared_data / "goes" / "goes_xrs_5min_2011_2012.csv", parse_dates=["time"])
    flux = g.set_index("time")["xrsb"].where(lambda v: v > 1e-9).resample("5min").max()
    window = 24 * 12
    padded = np.r_[flux.to_numpy(), np.full(window, np.nan)]
    with np.errstate(all="ignore"):
        peaks = np.nanmax(np.lib.stride_tricks.sliding_window_view(padded, window), axis=1)
    t_obs = pd.DatetimeIndex(ds.labels["t_obs"]).tz_localize(None)
    first = np.searchsorted(flux.index.to_numpy(), t_obs.to_numpy())  # first sample at or after t
    complete = t_obs + pd.Timedelta("24h") <= flux.index[-1] + pd.Timedelta("5min")
    letters = ["ABCMX"[int(np.clip(np.floor(np.log10(peaks[i])) + 8, 0, 4))] if ok else "missing"
               for i, ok in zip(first, complete)]
    recount = pd.Series(letters).value_counts().to_dict()
    assert ds.meta["label_rules"]["max_class_24h"]["counts"] == recount
    report = (out / "report.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| max_class_24h"))
    assert f"| {recount.get('X', 0)} | {recount.get('missing', 0)} |" in row
    assert recount["X"] > 50 and recount["M"] > 500  # 2012 is near solar maximum
