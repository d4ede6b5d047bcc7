"""The synthetic embedded default: deterministic, belts only, flares bright where and as configured,
and 'M/X in the next 24 h' learnable from the frames."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from solargen.cli import main
from solargen.data.dataset import load_dataset
from solargen.data.synthetic import SyntheticSunConfig, _grid, generate, write_synthetic_dataset

CFG = SyntheticSunConfig(n_frames=24 * 40, size=32, seed=3)


@pytest.fixture(scope="module")
def sun():
    return generate(CFG)


def test_deterministic_per_seed(sun):
    again = generate(CFG)
    assert np.array_equal(sun["frames"], again["frames"])
    assert sun["events"]["peak_flux"].equals(again["events"]["peak_flux"])
    other = generate(replace(CFG, seed=4))
    assert not np.array_equal(sun["frames"], other["frames"])


def test_regions_only_in_activity_belts(sun):
    lat = np.abs(sun["regions"]["lat"].to_numpy())
    assert lat.min() >= CFG.belt_deg[0] and lat.max() <= CFG.belt_deg[1]
    # No brightening near the poles: pixels above 45 degrees latitude stay at the quiet level.
    x, y, r = _grid(CFG.size)
    polar = (r < 0.95) & (np.abs(y) > np.sin(np.radians(45)))
    equator_belt = (r < 0.95) & (np.abs(y) < np.sin(np.radians(35)))
    frames = sun["frames"][:, 0]
    assert frames[:, polar].max() < frames[:, equator_belt].max() - 50


def test_flux_power_law_as_configured():
    cfg = replace(CFG, strength_boost=0.0, flares_per_region_day=40.0, power_index=2.0, n_frames=24 * 30)
    flux = generate(cfg)["events"]["peak_flux"].to_numpy()
    above = np.mean(flux >= 10 * cfg.flux_min)          # P(F >= 10 Fmin) = 10^-(index - 1) = 0.1
    assert len(flux) > 1000 and abs(above - 0.1) < 0.03
    steeper = generate(replace(cfg, power_index=2.5))["events"]["peak_flux"].to_numpy()
    assert np.mean(steeper >= 10 * cfg.flux_min) < above / 2


def test_class_mix_is_imbalanced_like_the_sun(sun):
    letters = sun["events"]["goes_class"].str[0].value_counts()
    assert letters.get("C", 0) > 5 * letters.get("M", 0) > 0
    assert letters.get("X", 0) < letters.get("M", 0)


def test_flares_brighten_their_region_with_flux(sun):
    frames, flares, flux_now = sun["frames"][:, 0], sun["events"], sun["flare_flux"]
    x, y, _ = _grid(CFG.size)
    rx, ry, rmu = sun["position"]
    regions = sun["regions"]
    excess, fluxes = [], []
    for k in range(1, len(frames)):
        f = int(np.argmax(flux_now[k])) if flux_now.shape[1] else -1
        if f < 0 or flux_now[k, f] < 2e-6:
            continue
        j = int(np.flatnonzero(regions.index == flares["noaa_ar"].iat[f])[0])
        if rmu[k, j] < 0.3 or flux_now[k - 1, f] > 0.2 * flux_now[k, f]:
            continue
        pix = np.unravel_index(np.argmin((x - rx[k, j]) ** 2 + (y - ry[k, j]) ** 2), x.shape)
        excess.append(frames[k][pix] - frames[k - 1][pix])
        fluxes.append(flux_now[k, f])
    assert len(excess) >= 8
    assert np.mean(np.array(excess) > 0) > 0.9                   # brighter where the flare is
    assert spearmanr(fluxes, excess).statistic > 0.4             # and more so for bigger flares


def test_next_24h_m_or_x_is_learnable(tmp_path):
    ds = write_synthetic_dataset(replace(CFG, n_frames=24 * 60), tmp_path / "syn", progress=False)
    labels = ds.labels
    ok = labels["max_class_24h"].notna()
    target = labels.loc[ok, "max_class_24h"].isin(["M", "X"]).to_numpy()
    frames = np.asarray(ds.frames, np.float32)[ok.to_numpy(), 0]
    # A forecaster-free statistic: how much of the disk is bright (active-region area).
    stat = (frames > np.percentile(frames, 97)).mean(axis=(1, 2))
    assert 0.05 < target.mean() < 0.6
    assert roc_auc_score(target, stat) > 0.6


def test_cli_writes_a_dataset_marked_synthetic(tmp_path):
    out = tmp_path / "syn"
    assert main(["data", "synthetic", "--n", "30", "--size", "16", "--out", str(out)]) == 0
    ds = load_dataset(out)
    assert ds.synthetic and ds.meta["source"].startswith("synthetic")
    assert ds.frames.shape == (30, 1, 16, 16)
    assert {"goes_class", "max_class_24h", "max_flux_72h", "peak_class", "stale"} <= set(ds.labels.columns)
    assert "SYNTHETIC" in (out / "report.md").read_text()
    assert (ds.times == pd.date_range("2012-01-01", periods=30, freq="h", tz="UTC")).all()
