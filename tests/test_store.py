"""The survey-scale data path: a synthetic survey in SDOMLv2's layout, the chunked store built in
parts (in process, a process pool, Ray, over loopback HTTP), kill -9 and resume, streaming
statistics, the lazy reader, streamed diffusion training, bad input."""
from __future__ import annotations

import functools
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from solargen.data.build import BuildConfig, build_dataset
from solargen.data.dataset import load_dataset
from solargen.data.sources import SourceError
from solargen.data.store import FrameStore, PartialStats, StoreError, store_checksum
from solargen.data.survey import SurveyConfig, write_survey
from solargen.errors import SolargenError

CHANNELS = ("94", "131", "171")


@pytest.fixture(scope="module")
def survey(tmp_path_factory) -> Path:
    """2 years every 48 h (365 slots), 3 channels at 32 px, 5 % gaps per channel, one corrupt frame."""
    out = tmp_path_factory.mktemp("survey") / "survey"
    write_survey(SurveyConfig(years=2, channels=CHANNELS, size=32, cadence_hours=48, gaps=0.05,
                              corrupt=1, seed=3), out, progress=False)
    return out


def config(survey: Path, images: str | None = None, **changes) -> BuildConfig:
    base = BuildConfig(images=images or str(survey / "sdoml.zarr"), goes=survey / "goes_xrs_5min.csv",
                       flares=survey / "flares.csv", channels=CHANNELS, size=16, cadence="48h",
                       norm_window=("2010-01-01", "2010-09-01"), part_slots=40)
    return replace(base, **changes)


@pytest.fixture(scope="module")
def reference(survey, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("built") / "ds"
    build_dataset(config(survey), out, progress=False, workers=1)
    return out


def test_survey_has_sdoml_layout(survey):
    import zarr
    root = zarr.open_group(survey / "sdoml.zarr", mode="r")
    assert root.metadata.zarr_format == 2 and sorted(name for name, _ in root.groups()) == ["2010", "2011"]
    arr = root["2010"]["171A"]
    assert arr.chunks[0] == 15 and arr.shape[1:] == (32, 32) and arr.dtype == np.float32
    assert len(arr.attrs["T_OBS"]) == arr.shape[0] and arr.attrs["T_OBS"][0].endswith("Z")
    assert {"WAVELNTH", "EXPTIME", "QUALITY", "DEGRADATION"} <= set(arr.attrs)


def test_build_masks_gaps_and_names_the_corrupt_frame(survey, reference):
    ds = load_dataset(reference)
    import json
    summary = json.loads((survey / "survey.json").read_text())
    store = FrameStore(reference / "frames.zarr")
    assert store.attrs["n_slots"] == summary["frames"] == 365
    present = np.asarray(__import__("zarr").open_array(reference / "frames.zarr" / "present"))
    assert present.sum() == len(ds) and len(ds) + ds.meta["n_skipped"] == 365
    reasons = " | ".join(f"{s['frame']}: {s['reason']}" for s in ds.meta["skipped"])
    (corrupt,) = summary["corrupt"]
    assert f"{corrupt}: 1024 NaN or infinite pixels" in reasons
    assert "no channel" in reasons                        # the gaps, kept as absent slots
    assert ds.synthetic and "SYNTHETIC" in ds.describe()
    assert (ds.labels["slot"].diff().dropna() > 0).all()
    frames = np.asarray(ds.frames, dtype=np.float32)
    assert frames.shape == (len(ds), 3, 16, 16) and np.isfinite(frames).all()
    assert frames.min() >= -1 and frames.max() <= 1


def test_process_pool_and_ray_build_identical_stores(survey, reference, tmp_path):
    build_dataset(config(survey), tmp_path / "pool", progress=False, workers=2)
    assert store_checksum(tmp_path / "pool" / "frames.zarr") == store_checksum(reference / "frames.zarr")
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        build_dataset(config(survey), tmp_path / "ray", progress=False, executor="ray")
    finally:
        ray.shutdown()
    assert store_checksum(tmp_path / "ray" / "frames.zarr") == store_checksum(reference / "frames.zarr")
    assert load_dataset(tmp_path / "ray").labels.equals(load_dataset(reference).labels)


def test_kill_during_build_resumes_to_the_same_store_and_a_finished_build_writes_nothing(
        survey, reference, tmp_path):
    out = tmp_path / "killed"
    script = (f"from solargen.data.build import build_dataset; import tests.test_store as t; "
              f"from pathlib import Path; build_dataset(t.config(Path({str(survey)!r}), part_slots=5), "
              f"Path({str(out)!r}), progress=False, workers=1)")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[1])
    deadline = time.time() + 120
    while time.time() < deadline and not list((out / "frames.zarr" / "build").glob("part-0002*.json")):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = list((out / "frames.zarr" / "build").glob("part-*.json"))
    assert 3 <= len(done) < 73, "the kill should land mid-build"
    build_dataset(config(survey, part_slots=5), out, progress=False, workers=1)
    uninterrupted = tmp_path / "whole"
    build_dataset(config(survey, part_slots=5), uninterrupted, progress=False, workers=1)
    assert store_checksum(out / "frames.zarr") == store_checksum(uninterrupted / "frames.zarr")
    frames = out / "frames.zarr" / "frames"
    before = {p: p.stat().st_mtime_ns for p in frames.rglob("*") if p.is_file()}
    build_dataset(config(survey, part_slots=5), out, progress=False, workers=1)
    assert {p: p.stat().st_mtime_ns for p in frames.rglob("*") if p.is_file()} == before


class NoListing(http.server.SimpleHTTPRequestHandler):
    def list_directory(self, path):
        self.send_error(404, "no listing")


def test_store_over_loopback_http_builds_the_same(survey, reference, tmp_path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(survey))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/sdoml.zarr"
        build_dataset(config(survey, images=url), tmp_path / "http", progress=False, workers=1)
    finally:
        server.shutdown()
    # a server without directory listings (object stores behind plain HTTP) and a store without
    # consolidated metadata: nothing can be listed, and the error says what is missing
    unlisted = functools.partial(NoListing, directory=str(survey))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), unlisted)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hidden = survey / "sdoml.zarr" / ".zmetadata"
    hidden.rename(hidden.with_name("zmetadata.off"))
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/sdoml.zarr"
        with pytest.raises(SourceError, match="needs consolidated metadata"):
            build_dataset(config(survey, images=url), tmp_path / "plain", progress=False, workers=1)
    finally:
        hidden.with_name("zmetadata.off").rename(hidden)
        server.shutdown()
    local, remote = load_dataset(reference), load_dataset(tmp_path / "http")
    assert np.array_equal(np.asarray(local.frames), np.asarray(remote.frames))
    assert local.labels.drop(columns="origin").equals(remote.labels.drop(columns="origin"))
    assert local.meta["normalisation"] == remote.meta["normalisation"]


@pytest.mark.parametrize("signed", [False, True], ids=["brightness", "signed"])
def test_streaming_statistics_equal_numpy(signed):
    rng = np.random.default_rng(0)
    frames = [(rng.normal(0.0, 80.0, size=(2, 24, 24)) if signed else rng.gamma(2.0, 30.0, size=(2, 24, 24))
               ).astype(np.float32) for _ in range(9)]
    parts = [PartialStats.empty(2) for _ in range(3)]
    for k, frame in enumerate(frames):
        parts[k % 3].add(frame)
    merged = parts[0].merge(parts[1]).merge(parts[2])
    exact = np.stack(frames).astype(np.float64)
    for c in range(2):
        values = exact[:, c].ravel()
        assert merged.mean[c] == pytest.approx(values.mean(), rel=1e-6)
        assert merged.std[c] == pytest.approx(values.std(), rel=1e-6)
        assert merged.low[c] == values.min() and merged.high[c] == values.max()
        for q in (0.5, 50, 99.5):
            assert merged.percentile(q)[c] == pytest.approx(np.percentile(values, q), rel=2.5e-4)


def test_shards_of_two_ranks_are_disjoint_and_resume_mid_epoch_reads_the_same_stream():
    from solargen.diffusion.training_data import BatchOrder, StepFrames, TrainingData

    class Rows:
        def __getitem__(self, rows):
            return np.asarray(rows, np.float16)[:, None]

    n, batch, micro = 40, 4, 2
    letters = np.array(["B", "C"] * (n // 2))
    data = TrainingData(None, torch.zeros(n), torch.zeros(n), letters, {}, reader=Rows(),
                        rows=np.arange(100, 100 + n))
    order = BatchOrder(letters, batch * 2 * micro, seed=5, balanced=False)
    steps_per_epoch = order.steps_per_epoch
    ranks = [StepFrames(data, order, r, 2, micro, batch) for r in range(2)]
    for step in range(steps_per_epoch * 2):
        a, b = (set(ranks[r].indices(step).tolist()) for r in range(2))
        assert not a & b and len(a) == len(b) == batch * micro
        assert a | b == set(order.indices(step).tolist())
    epoch = np.concatenate([np.concatenate([ranks[r].indices(s) for r in range(2)])
                            for s in range(steps_per_epoch)])
    assert len(set(epoch.tolist())) == len(epoch) == steps_per_epoch * batch * 2 * micro   # no repeat
    assert set(epoch.tolist()) <= set(range(n))
    full = [ranks[0][s] for s in range(steps_per_epoch * 2)]
    fresh = StepFrames(data, BatchOrder(letters, batch * 2 * micro, seed=5, balanced=False), 0, 2, micro,
                       batch)
    resumed = [fresh[s] for s in range(3, steps_per_epoch * 2)]
    assert all(torch.equal(x, y) for x, y in zip(full[3:], resumed))


def test_streamed_training_equals_in_memory(tmp_path, reference):
    from tests.test_diffusion import make_dataset, tiny_config
    from solargen.diffusion.train import train
    make_dataset(tmp_path / "ds")
    losses = {}
    for name, stream, workers in (("ram", False, 0), ("stream0", True, 0), ("stream2", True, 2)):
        cfg = tiny_config(tmp_path, tmp_path / "ds", out=name, max_steps=4, checkpoint_every=10)
        cfg.data.stream, cfg.data.loader_workers = stream, workers
        losses[name] = train(cfg, progress=False).losses
    assert losses["ram"] == losses["stream0"] == losses["stream2"]


def test_bad_survey_input_is_one_clear_error_and_leaves_nothing(survey, tmp_path):
    import zarr
    empty = tmp_path / "empty.zarr"
    zarr.open_group(empty, mode="w", zarr_format=2)
    with pytest.raises(SourceError, match="no array for channel 94"):
        build_dataset(config(survey, images=str(empty)), tmp_path / "a", progress=False, workers=1)
    with pytest.raises(SourceError, match="no array for channel 1234"):
        build_dataset(config(survey, channels=("1234",)), tmp_path / "b", progress=False, workers=1)
    bad = tmp_path / "bad.zarr"
    group = zarr.open_group(bad, mode="w", zarr_format=2).create_group("2010")
    arr = group.create_array("171A", shape=(3, 8, 8), dtype="float32", chunks=(15, 8, 8))
    arr.attrs["T_OBS"] = ["2010-01-01T00:00:00Z", "2010-01-01T01:00:00Z"]
    with pytest.raises(SourceError, match="2010/171A: T_OBS attribute missing or of the wrong length"):
        build_dataset(config(survey, images=str(bad), channels=("171",)), tmp_path / "c",
                      progress=False, workers=1)
    with pytest.raises(SourceError, match="127.0.0.1:9/none.zarr: not a readable zarr store"):
        build_dataset(config(survey, images="http://127.0.0.1:9/none.zarr"), tmp_path / "d",
                      progress=False, workers=1)
    with pytest.raises(SolargenError, match="--cadence 'soon'"):
        build_dataset(config(survey, cadence="soon"), tmp_path / "e", progress=False, workers=1)
    assert not any((tmp_path / name).exists() for name in "abcde")


def test_a_store_built_for_other_settings_is_never_mixed(survey, reference, tmp_path):
    out = tmp_path / "ds"
    build_dataset(config(survey), out, progress=False, workers=1)
    (out / "meta.json").unlink()           # as if finalise had not run
    with pytest.raises(StoreError, match="differs in .*size"):
        build_dataset(config(survey, size=8), out, progress=False, workers=1)


def test_a_128px_store_dataset_trains_with_the_shipped_config_and_the_studio_serves_it(tmp_path):
    from application import studio
    from solargen.diffusion.run_config import load_config
    from solargen.diffusion.train import train
    survey = tmp_path / "survey"
    write_survey(SurveyConfig(years=0.3, start_year=2012, channels=("171",), size=128, cadence_hours=24,
                              seed=1), survey, progress=False)
    build_dataset(BuildConfig(images=str(survey / "sdoml.zarr"), goes=survey / "goes_xrs_5min.csv",
                              flares=survey / "flares.csv", channels=("171",), size=128, cadence="24h",
                              part_slots=32), tmp_path / "ds128", progress=False, workers=1)
    cfg = load_config("ddpm-128-class", [
        f"data.dataset={tmp_path / 'ds128'}", f"output_dir={tmp_path / 'run'}", "model.size=XS",
        "train.max_steps=2", "train.batch_size=2", "train.warmup_steps=1", "train.sample_every=0",
        "train.checkpoint_every=10", "train.mixed_precision=no", "data.stream=true", "data.loader_workers=0"])
    pipeline_dir = train(cfg, progress=False).pipeline_dir
    info = studio.inspect_model(pipeline_dir)
    letter = info.known_classes[0]
    result = studio.generate(studio.SampleRequest(model=str(pipeline_dir), flare_class=letter, steps=2,
                                                  count=1, sampler="ddpm"))
    assert result["images"].shape == (1, 1, 128, 128) and np.isfinite(result["images"]).all()
    frames, times = studio.real_frames(str(tmp_path / "ds128"), info, letter, 2, 0)
    assert frames.shape[1:] == (1, 128, 128) and len(times) == len(frames) > 0


def test_a_signed_magnetogram_channel_keeps_its_polarity(tmp_path):
    """An HMI-like component (SDOMLv2 names them Bx / By / Bz): --scaling signed keeps negative
    values through the store and the percentile normalisation."""
    import pandas as pd
    import zarr
    from numcodecs import Blosc
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:32, :32]
    disk = np.hypot(yy - 15.5, xx - 15.5) < 14
    times = pd.date_range("2012-01-01", periods=40, freq="6h", tz="UTC")
    group = zarr.open_group(tmp_path / "hmi.zarr", mode="w", zarr_format=2).create_group("2012")
    arr = group.create_array("Bz", shape=(40, 32, 32), dtype="float32", chunks=(15, 32, 32),
                             compressors=Blosc(cname="zstd", shuffle=Blosc.BITSHUFFLE))
    arr[:] = (rng.normal(0, 150, (40, 32, 32)) * disk).astype(np.float32)
    arr.attrs["T_OBS"] = [t.strftime("%Y-%m-%dT%H:%M:%S.00Z") for t in times]
    goes = pd.DataFrame({"time": pd.date_range("2012-01-01", periods=4000, freq="5min").strftime(
        "%Y-%m-%dT%H:%M:%S"), "xrsa": 1e-8, "xrsb": 1e-6})
    goes.to_csv(tmp_path / "goes.csv", index=False)
    ds = build_dataset(BuildConfig(images=str(tmp_path / "hmi.zarr"), goes=tmp_path / "goes.csv",
                                   channels=("Bz",), size=16, scaling="signed",
                                   norm_window=("2012-01-01", "2012-01-06")), tmp_path / "ds",
                       progress=False, workers=1)
    assert len(ds) == 40 and ds.meta["n_skipped"] == 0
    lo, hi = ds.meta["normalisation"]["lo"][0], ds.meta["normalisation"]["hi"][0]
    assert lo < -10 < 10 < hi
    frames = np.asarray(ds.frames, np.float32)
    assert frames.min() < -0.5 and frames.max() > 0.5
    assert abs(float(np.median(frames[:, :, 4:12, 4:12]))) < 0.1      # zero field sits mid-range
