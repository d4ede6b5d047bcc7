"""Eruptive / confined labels (CME association with a position-angle rule) and the eruptive-24h
task: a hand-made catalogue with a known answer, and leak-free folds on the real 2012 data."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.tasks import TaskError, get_task, part_samples, select_samples
from solargen.data.catalogs import mark_eruptive, position_angle, read_cdaw
from solargen.data.labels import eruptive_before_peak

CDAW_HEADER = "date,time,central_pa,width,linear_speed\n"


def _events(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    """(start, peak, class, location) rows as a catalogs event table; each ends 30 min after peak."""
    from solargen.data.goes import class_to_flux
    return pd.DataFrame({"start": pd.to_datetime([r[0] for r in rows], utc=True),
                         "peak": pd.to_datetime([r[1] for r in rows], utc=True),
                         "end": pd.to_datetime([r[1] for r in rows], utc=True) + pd.Timedelta("30min"),
                         "goes_class": [r[2] for r in rows],
                         "peak_flux": [class_to_flux(r[2]) for r in rows],
                         "location": [r[3] for r in rows]})


def test_position_angle_of_heliographic_locations():
    assert position_angle("N90W00")[0] == pytest.approx(0.0, abs=1e-6)      # north pole
    assert position_angle("N00E90")[0] == pytest.approx(90.0)                # east limb
    assert position_angle("S90W00")[0] == pytest.approx(180.0)
    assert position_angle("N00W90")[0] == pytest.approx(270.0)               # west limb
    pa, r = position_angle("S17E81")
    assert 90 < pa < 180 and r == pytest.approx(1.0, abs=0.05)
    assert np.isnan(position_angle(None)[0]) and np.isnan(position_angle("here")[0])


def test_cme_association_time_window_and_position_angle(tmp_path):
    events = _events([
        ("2012-03-01 10:00", "2012-03-01 10:20", "M2.0", "S17E81"),   # CME inside, right side
        ("2012-03-02 10:00", "2012-03-02 10:20", "M2.0", "S17E81"),   # CME 3 h after the peak
        ("2012-03-03 10:00", "2012-03-03 10:20", "M2.0", "S17E81"),   # CME inside, west limb
        ("2012-03-04 10:00", "2012-03-04 10:20", "M2.0", "S17E81"),   # halo CME inside
        ("2012-03-05 10:00", "2012-03-05 10:20", "M2.0", "N02W03"),   # near centre: angle skipped
        ("2012-03-06 10:00", "2012-03-06 10:20", "M2.0", None),        # no location: time only
    ])
    cmes = tmp_path / "cme.csv"
    cmes.write_text(CDAW_HEADER + "\n".join([
        "2012/03/01,10:48:00,100,40,900", "2012/03/02,13:30:00,100,40,900",
        "2012/03/03,10:48:00,280,30,900", "2012/03/04,10:48:00,Halo,360,1500",
        "2012/03/05,10:48:00,280,30,900", "2012/03/06,10:48:00,280,30,900"]) + "\n")
    table = read_cdaw(cmes)
    assert table["halo"].tolist() == [False, False, False, True, False, False]
    assert mark_eruptive(events, table).tolist() == [True, False, False, True, True, True]
    # without the angle rule only the time window counts
    assert mark_eruptive(events, table, pa_tolerance_deg=None).tolist() == [True, False, True, True,
                                                                           True, True]


def test_frames_before_the_peak_take_the_label_and_eruptive_wins_overlaps():
    t = pd.date_range("2012-03-01 00:00", periods=72, freq="h", tz="UTC")
    events = _events([("2012-03-01 19:00", "2012-03-01 20:30", "M1.0", "S10E40"),
                      ("2012-03-02 05:00", "2012-03-02 06:30", "X1.0", "S10E40"),
                      ("2012-03-03 05:00", "2012-03-03 06:30", "C5.0", "S10E40")])
    events["eruptive"] = [False, True, False]
    table = eruptive_before_peak(t, events, "M")
    m = table["eruptive_24h_ge_m"]
    hours = np.arange(72)
    # frames at 00..20 h precede the confined M peak (20:30), frames up to 30 h precede the X peak
    # (06:30 next day, eruptive): their windows overlap and eruptive wins from 06:30 - 24 h on
    expected = np.where(hours <= 6, "confined", np.where(hours <= 30, "eruptive", "-"))
    assert m.fillna("-").tolist() == expected.tolist()
    # the flare behind each label: the confined M (1e-5, 120 min) or the eruptive X (1e-4, 120 min)
    flux = table["eruptive_24h_ge_m_peak_flux"].to_numpy()
    assert (flux[:7] == 1e-5).all() and (flux[7:31] == 1e-4).all() and np.isnan(flux[31:]).all()
    assert (table["eruptive_24h_ge_m_duration_min"].iloc[:31] == 120).all()
    peaks = table["eruptive_24h_ge_m_peak_time"]
    assert peaks.iloc[0] == events["peak"].iloc[0] and peaks.iloc[30] == events["peak"].iloc[1]
    c = eruptive_before_peak(t, events, "C")["eruptive_24h_ge_c"]
    assert c.iloc[31:55].eq("confined").all() and c.iloc[55:].isna().all()   # the C flare's day


@pytest.mark.shared_data
def test_real_2012_eruptive_task_counts_and_leak_free_folds(shared_data, tmp_path):
    from solargen.config import config_path
    from solargen.data.build import BuildConfig, build_dataset
    from solargen.data.splits import load_folds
    ds = build_dataset(BuildConfig(images=str(shared_data / "sdo-aia-2012" / "sdo_aia_2012.npz"),
                                   goes=shared_data / "goes" / "goes_xrs_5min_2011_2012.csv",
                                   flares=shared_data / "flares" / "hek_goes_flares_2003_2023.csv",
                                   cmes=shared_data / "cmes" / "cdaw_cme_list_2010_2018.csv", size=8),
                       tmp_path / "ds", progress=False)
    rules = ds.meta["eruptive_rules"]
    m, c = rules["eruptive_24h_ge_m"], rules["eruptive_24h_ge_c"]
    assert 10 <= m["flares"]["eruptive"] + m["flares"]["confined"] <= 300   # 2012: tens of >= M
    assert c["flares"]["eruptive"] + c["flares"]["confined"] > 5 * m["flares"]["confined"]
    assert m["flares"]["eruptive"] > 0 and m["flares"]["confined"] > 0
    assert "Eruptive / confined labels" in (tmp_path / "ds" / "report.md").read_text()
    task = get_task("eruptive-24h")
    samples = select_samples(ds, task)
    assert set(np.unique(samples.targets)) == {0, 1}
    assert samples.excluded["no >= M flare peaks within 24 h"] > len(samples.indices)
    folds = load_folds(config_path("folds/2012-rolling.yaml"))
    folds.check(task.horizon_hours)
    history = 10
    for fold in folds:
        parts = {p: part_samples(ds, task, fold, p, history) for p in ("train", "val", "test")}
        for part, s in parts.items():
            start, end = fold.window(part)
            first = ds.times[s.indices] - pd.Timedelta(hours=history - 1)
            assert (first >= start).all() and (ds.times[s.indices] < end).all()
        # the flares that label training frames peak before validation inputs begin
        last_train = ds.times[parts["train"].indices].max()
        val_start = fold.window("val")[0]
        assert last_train + pd.Timedelta(hours=task.horizon_hours) < val_start
    # the floors and the flare-oracle reference train and evaluate through the one trainer
    from forecasting.config import ForecastConfig
    from forecasting.evaluate import evaluate_checkpoint
    from forecasting.train import train
    from solargen.errors import SolargenError
    for model in ("persistence", "flare-oracle"):
        out = tmp_path / model
        meta = train(ForecastConfig(data=str(tmp_path / "ds"), out=str(out), model=model,
                                    task="eruptive-24h", folds=str(config_path("folds/2012-rolling.yaml"))))
        assert meta["classes"] == ["confined", "eruptive"] and meta["kind"] == "floor"
        report = evaluate_checkpoint(out, str(tmp_path / "ds"), out / "test", part="test")
        assert report["scores"]["n"] > 0
        table = pd.read_csv(out / "test" / "probabilities.csv")
        assert table["event observed"].eq(table["observed"].eq("eruptive")).all()
    with pytest.raises(SolargenError, match="eruptive tasks only"):
        train(ForecastConfig(data=str(tmp_path / "ds"), out=str(tmp_path / "no"), model="flare-oracle",
                             task="binary-24h", folds=str(config_path("folds/2012-rolling.yaml"))))


def test_dataset_without_cme_labels_names_the_rebuild(tmp_path):
    from solargen.data.synthetic import write_synthetic_dataset
    from solargen.data.synthetic_sun import SyntheticSunConfig
    ds = write_synthetic_dataset(SyntheticSunConfig(n_frames=48, size=8), tmp_path / "syn", progress=False)
    with pytest.raises(TaskError, match=r"eruptive_24h_ge_m.*--cmes"):
        select_samples(ds, get_task("eruptive-24h"))
