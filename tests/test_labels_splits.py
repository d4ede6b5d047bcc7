"""Label rules and leakage-safe splits, on hand-made series and on the real 2012 data."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from solargen.data.catalogs import read_flares
from solargen.data.goes import read_goes
from solargen.data.labels import goes_at_frame, label_frames, max_in_next, peak_matched
from solargen.data.splits import (SplitError, check_no_leakage, fold_indices, load_folds,
                                  parse_folds)

FOLDS = "configs/folds/2012-rolling.yaml"


def letters(column) -> list:
    """Class column as a list with None for missing (pandas may store missing as NaN)."""
    return [None if pd.isna(x) else x for x in column]


def series(values, start="2012-01-01", freq="5min"):
    idx = pd.date_range(start, periods=len(values), freq=freq, tz="UTC")
    return pd.DataFrame({"xrsa": np.nan, "xrsb": np.asarray(values, float)}, index=idx)


def test_goes_at_frame_window_and_missing():
    g = series([1e-6, 2e-6, np.nan, np.nan, np.nan, 5e-5])
    t = pd.DatetimeIndex(["2012-01-01T00:05", "2012-01-01T00:15", "2012-01-01T00:25"], tz="UTC")
    out = goes_at_frame(t, g, window_min=5)
    assert out["goes_flux"].iloc[0] == 2e-6            # max of 00:00..00:10
    assert np.isnan(out["goes_flux"].iloc[1])           # only NaN samples in 00:10..00:20
    assert letters(out["goes_class"]) == ["C", None, "M"]


def test_max_in_next_and_end_of_series():
    g = series([1e-7] * 12 * 30 + [3e-4] + [1e-7] * 12 * 30)  # an X3 sample at 30:00, series 60 h
    t = pd.date_range("2012-01-01T05:00", periods=4, freq="12h", tz="UTC")  # 05, 17, 29, 41 h
    out = max_in_next(t, g, 24)
    assert letters(out["max_class_24h"]) == ["B", "X", "X", None]  # 41 h + 24 h > end of series
    assert np.isnan(out["max_flux_24h"].iloc[3])


def test_peak_matched_first_frame_after_peak_within_tolerance():
    t = pd.date_range("2012-01-01", periods=5, freq="h", tz="UTC")
    events = pd.DataFrame({
        "peak": pd.to_datetime(["2012-01-01T00:55", "2012-01-01T01:58", "2012-01-01T02:30",
                                "2012-01-01T02:57"], utc=True),
        "peak_flux": [2e-6, 5e-5, 1e-4, 3e-6]})
    out = peak_matched(t, events, tolerance_min=7)
    # 00:55 -> 01:00 (5 min), 01:58 -> 02:00; 02:30 is 30 min early: unmatched; 02:57 -> 03:00.
    assert letters(out["peak_class"]) == [None, "C", "M", "C", None]
    wide = peak_matched(t, events, tolerance_min=30)
    assert letters(wide["peak_class"]) == [None, "C", "M", "X", None]  # largest flare wins


def test_label_frames_counts_match_table():
    g = series(np.r_[np.full(300, 2e-7), np.full(300, 4e-6)])
    t = pd.date_range("2012-01-01", periods=30, freq="h", tz="UTC")
    table, counts = label_frames(t, g, None)
    assert list(table.columns[:3]) == ["t_obs", "goes_flux", "goes_class"]
    for col, info in counts.items():
        recount = table[col].value_counts(dropna=False)
        assert sum(info["counts"].values()) == len(table)
        assert info["counts"].get("missing", 0) == int(table[col].isna().sum())
        for letter, n in info["counts"].items():
            if letter != "missing":
                assert int(recount.get(letter, 0)) == n, (col, letter)


@pytest.mark.shared_data
@pytest.mark.parametrize("peak,letter", [("2012-03-07T00:24", "X5.4"), ("2012-01-27T18:37", "X1.7"),
                                         ("2012-10-23T03:17", "X1.8")])
def test_real_x_flares_found_and_labelled(shared_data, peak, letter):
    goes = read_goes(shared_data / "goes" / "goes_xrs_5min_2011_2012.csv")
    events = read_flares(shared_data / "flares" / "hek_goes_flares_2003_2023.csv")
    peak = pd.Timestamp(peak, tz="UTC")
    near = events[(events["peak"] - peak).abs() <= pd.Timedelta("20min")]
    assert letter in near["goes_class"].tolist()
    window = goes.loc[peak - pd.Timedelta("30min"): peak + pd.Timedelta("30min"), "xrsb"]
    assert window.max() >= 1e-4                                    # X class in the flux series
    frames = pd.date_range(peak - pd.Timedelta("23h"), peak - pd.Timedelta("1h"), freq="h")
    labels, _ = label_frames(frames, goes, events)
    assert (labels["max_class_24h"] == "X").all()


def test_folds_yaml_valid_and_leak_free():
    folds = load_folds(FOLDS)
    assert len(folds) >= 3
    times = pd.date_range("2012-01-01", "2012-12-31 23:00", freq="h", tz="UTC")
    for fold in folds:
        parts = fold_indices(times, fold)
        assert all(len(v) for v in parts.values())
        for horizon in (24, 48, 72):
            check_no_leakage(times, parts, horizon)
        # Independent brute-force check: no test frame within 72 h of any training frame.
        tr = times[parts["train"]].as_unit("ns").asi8[:, None]
        te = times[parts["test"]].as_unit("ns").asi8[None, :]
        assert np.abs(tr - te).min() >= 72 * 3.6e12
        assert times[parts["train"]].max() < times[parts["val"]].min() < times[parts["test"]].min()


def test_fold_with_short_gap_is_rejected():
    spec = {"gap_hours": 24, "folds": [{"name": "bad", "train": ["2012-01-01", "2012-01-31"],
                                        "test": ["2012-02-01", "2012-02-10"]}]}
    with pytest.raises(SplitError, match="less than the 24 h horizon"):
        parse_folds(spec)
    ok = {"gap_hours": 24, "folds": [{"name": "ok", "train": ["2012-01-01", "2012-01-31"],
                                      "test": ["2012-02-02", "2012-02-10"]}]}
    folds = parse_folds(ok)
    with pytest.raises(SplitError, match="shorter than the forecast horizon"):
        folds.check(72)


def test_check_no_leakage_catches_adjacent_frames():
    times = pd.date_range("2012-01-01", periods=100, freq="h", tz="UTC")
    parts = {"train": np.arange(0, 50), "test": np.arange(60, 100)}
    check_no_leakage(times, parts, 10)
    with pytest.raises(SplitError, match="from a training frame"):
        check_no_leakage(times, parts, 24)
