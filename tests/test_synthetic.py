"""The synthetic embedded default: deterministic per seed, regions only in the belts, class mix and
flux-to-brightness as configured, flares bright where they are, and 'M/X in the next 24 h'
separable from the frames by a simple statistic."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from application.cli import main
from solargen.data.catalogs import read_flares
from solargen.data.dataset import load_dataset
from solargen.data.goes import GOES_CLASSES, read_goes
from solargen.data.labels import label_frames
from solargen.data.synthetic_sun import (CHANNEL_LOOKS, SyntheticSun, SyntheticSunConfig, _pixel_gaussian,
                                         flare_look, synodic_rate)

CFG = SyntheticSunConfig(n_frames=24 * 30, size=32, seed=3)


@pytest.fixture(scope="module")
def sun() -> SyntheticSun:
    return SyntheticSun(CFG)


def test_deterministic_per_seed(sun):
    frames = [0, 100, 500]
    again = SyntheticSun(CFG)
    assert np.array_equal(sun.render(frames), again.render(frames))
    pd.testing.assert_frame_equal(sun.events(), again.events())
    pd.testing.assert_frame_equal(sun.goes(), again.goes())
    other = SyntheticSun(replace(CFG, seed=4))
    assert not np.array_equal(sun.render(frames), other.render(frames))
    assert not sun.flares["peak_hour"].equals(other.flares["peak_hour"])
    # A longer run starts with the same frames and flares (everything is simulated over a year).
    longer = SyntheticSun(replace(CFG, n_frames=CFG.n_frames + 200))
    assert np.array_equal(longer.render(frames), sun.render(frames))
    # Rendering a subset, in any order, equals the same frames of a contiguous render.
    block = sun.render(np.arange(95, 105))
    assert np.array_equal(sun.render([104, 100]), block[[9, 5]])


def test_regions_only_in_activity_belts(sun):
    lat = np.abs(sun.regions["lat"].to_numpy())
    lo, hi = CFG.belt_deg
    assert len(lat) > 100 and lat.min() >= lo and lat.max() <= hi
    # In the frames: active-region brightness never reaches high latitudes.
    frames = sun.render(np.arange(0, CFG.n_frames, 6))[:, 0]
    quiet = SyntheticSun(replace(CFG, regions_per_day=0.0)).render(np.arange(0, CFG.n_frames, 6))[:, 0]
    excess = frames - quiet
    g = sun.geometry
    polar = (g.r < 0.95) & (np.abs(g.lat) > 55)
    belts = (g.r < 0.9) & (np.abs(g.lat) < 35)
    assert excess[:, belts].max() > 60                       # regions do show in the belts
    assert excess[:, polar].max() < 20                       # never near the poles


def test_differential_rotation():
    assert synodic_rate(np.array([0.0]))[0] == pytest.approx(13.2, abs=0.1)
    assert synodic_rate(np.array([30.0]))[0] < synodic_rate(np.array([10.0]))[0]
    sun = SyntheticSun(replace(CFG, n_frames=48))
    st = sun.state(np.array([0.0, 1.0]))
    step = (st["lon"][1] - st["lon"][0] + 180) % 360 - 180
    assert np.allclose(step, synodic_rate(sun.regions["lat"].to_numpy()))


@pytest.mark.parametrize("mix", [SyntheticSunConfig().class_mix, (0.0, 0.2, 0.5, 0.2, 0.1)])
def test_class_mix_and_flux_law_as_configured(mix):
    sun = SyntheticSun(replace(CFG, class_mix=mix, flares_per_day=20.0, n_frames=24))
    letters = np.array([GOES_CLASSES[int(np.floor(np.log10(f))) + 8] for f in sun.flares["peak_flux"]])
    n = len(letters)
    p = np.asarray(mix) / sum(mix)
    assert n > 5000                                           # a simulated year
    for letter, share in zip(GOES_CLASSES, p):
        observed = np.mean(letters == letter)
        assert abs(observed - share) <= 4 * np.sqrt(share * (1 - share) / n) + 1e-12, letter
    # Inside a decade the peak flux follows dN/dF ~ F^-2: P(F < 2 floor) = (1 - 1/2) / (1 - 1/10).
    c = sun.flares["peak_flux"].to_numpy()[letters == "C"]
    assert np.mean(c < 2e-6) == pytest.approx(0.5 / 0.9, abs=0.04)
    # The default mix is the Sun's: imbalanced, rare M, rarer X.
    if mix == SyntheticSunConfig().class_mix:
        counts = pd.Series(letters).value_counts()
        assert counts["C"] > 5 * counts["M"] > 5 * counts.get("X", 0)


def test_flare_brightness_follows_flux_where_the_flare_is():
    """Each flare adds exactly the configured Gaussian (peak and extent from its current flux) at
    its region's projected position; nothing else changes."""
    cfg = replace(CFG, noise_dn=0.0, saturation_dn=None, n_frames=24 * 60)
    sun = SyntheticSun(cfg)
    g = sun.geometry
    edges = np.arange(cfg.size + 1) - 0.5
    checked, visible_gain = 0, []
    for f in np.unique(sun.flare_frame):
        here = sun.flare_frame == f
        flux = sun.flare_flux_now[here][0]
        if here.sum() != 1 or flux < 1e-6:
            continue
        region = int(sun.flares["region"].iat[sun.flare_index[here][0]])
        lat = np.radians(sun.regions["lat"].iat[region])
        lon = np.radians(sun.state(np.array([f * cfg.cadence_hours / 24.0]))["lon"][0, region])
        if np.cos(lat) * np.cos(lon) < 0.3:                   # on the disk, away from the limb
            continue
        peak_dn, sigma_deg = flare_look(cfg, flux)
        sigma = np.array([max(np.radians(sigma_deg) * g.radius_px, 0.3)])
        x = g.centre + 1.01 * np.cos(lat) * np.sin(lon) * g.radius_px
        y = g.centre - 1.01 * np.sin(lat) * g.radius_px
        blob = peak_dn * np.outer(_pixel_gaussian(edges, np.array([y]), sigma)[0],
                                  _pixel_gaussian(edges, np.array([x]), sigma)[0])
        quiet = sun.render([f], with_flares=False)[0, 0]
        flaring = sun.render([f])[0, 0]
        assert np.allclose(flaring, np.clip(quiet + blob, 0, 255), atol=0.02)
        visible_gain.append((flaring - quiet).sum() / blob.sum())
        checked += 1
    assert checked >= 10
    assert np.median(visible_gain) > 0.3                      # brighter where the flare is


def test_goes_series_and_flare_list_are_consistent(sun):
    goes, events = sun.goes(), sun.events()
    quiet, _ = CFG.background_flux
    assert (goes["xrsb"] >= quiet * 0.999).all()
    assert goes.index[0] == sun.times[0] - pd.Timedelta("1h")
    assert goes.index[-1] >= sun.times[-1] + pd.Timedelta("72h")
    at_peak = goes["xrsb"].reindex(events["peak"], method="nearest").to_numpy()
    big = events["peak_flux"].to_numpy() > 1e-5
    assert big.any() and (at_peak[big] > 0.5 * events["peak_flux"].to_numpy()[big]).all()
    assert events["location"].str.match(r"^[NS]\d{2}[EW]\d{2}$").all()
    assert (events["start"] <= events["peak"]).all() and (events["peak"] <= events["end"]).all()


def test_next_24h_m_or_x_is_separable_by_bright_area(tmp_path):
    cfg = replace(CFG, n_frames=24 * 90, size=32, seed=0)
    sun = SyntheticSun(cfg)
    frames = sun.render_all(progress=False)[:, 0]
    labels, _ = label_frames(sun.times, sun.goes(), sun.events())
    target = labels["max_class_24h"].isin(["M", "X"]).to_numpy()
    bright_area = (frames > 180).mean(axis=(1, 2))            # how much of the disk is active
    assert 0.05 < target.mean() < 0.6
    assert roc_auc_score(target, bright_area) > 0.65


def test_cli_writes_a_dataset_marked_synthetic(tmp_path, capsys):
    out = tmp_path / "syn"
    assert main(["data", "synthetic", "--n", "48", "--size", "16", "--channels", "171,94",
                 "--seed", "5", "--out", str(out)]) == 0
    ds = load_dataset(out)
    assert ds.synthetic and ds.meta["synthetic"] is True
    assert "synthetic embedded default" in ds.meta["source"]
    assert ds.frames.shape == (48, 2, 16, 16) and ds.channels == ["171", "94"]
    assert ds.meta["synthetic_config"]["seed"] == 5
    assert {"goes_flux", "goes_class", "max_class_24h", "max_flux_72h", "peak_class", "stale"} <= set(ds.labels)
    assert not ds.labels["stale"].any() and ds.labels["max_class_72h"].notna().all()
    assert "SYNTHETIC" in (out / "report.md").read_text()
    assert (ds.times == pd.date_range("2012-01-01", periods=48, freq="h", tz="UTC")).all()
    # The labels are what the real-data rules give for the written GOES series and flare list.
    goes = read_goes(out / "sources" / "goes_xrs_5min.csv")
    events = read_flares(out / "sources" / "flares.csv")
    again, _ = label_frames(ds.times, goes, events)
    assert np.allclose(again["max_flux_24h"], ds.labels["max_flux_24h"], rtol=1e-3)
    assert (again["peak_class"].fillna("") == ds.labels["peak_class"].fillna("")).all()


def test_cli_dry_run_and_bad_input(tmp_path, capsys):
    assert main(["data", "synthetic", "--dry-run", "--class-mix", "C:1,M:1"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["class_mix"] == [0.0, 0.0, 1.0, 1.0, 0.0]
    assert main(["data", "synthetic", "--channels", "172", "--out", str(tmp_path / "x")]) == 2
    assert "renders " + ", ".join(CHANNEL_LOOKS) in capsys.readouterr().err
    assert main(["data", "synthetic", "--class-mix", "Q:1", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
    with pytest.raises(ValueError, match="belt_deg"):
        SyntheticSun(replace(CFG, belt_deg=(40.0, 20.0)))
