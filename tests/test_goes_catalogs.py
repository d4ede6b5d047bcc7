"""GOES flux <-> class, XRS readers, flare and CME catalogues."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from solargen.data.catalogs import CatalogError, mark_eruptive, read_cdaw, read_flares
from solargen.data.goes import (GoesError, class_to_flux, flux_to_class, flux_to_letter,
                                letters_from_flux, read_goes)


@pytest.mark.parametrize("text,flux", [("M2.5", 2.5e-5), ("X1.0", 1e-4), ("C9.9", 9.9e-6),
                                       ("B1", 1e-7), ("A3.2", 3.2e-8), ("X28", 2.8e-3),
                                       ("X17.", 1.7e-3), ("X18+", 1.8e-3), ("C0.9", 9e-7)])
def test_class_to_flux(text, flux):
    assert math.isclose(class_to_flux(text), flux, rel_tol=1e-12)


@pytest.mark.parametrize("flux,text", [(2.5e-5, "M2.5"), (1e-4, "X1.0"), (9.99e-6, "C9.9"),
                                       (1.0e-6, "C1.0"), (5.13e-4, "X5.1"), (3.2e-8, "A3.2")])
def test_flux_to_class(flux, text):
    assert flux_to_class(flux) == text


def test_round_trip_over_decades():
    for flux in np.logspace(-7.9, -2.5, 200):
        text = flux_to_class(flux)
        assert flux_to_letter(flux) == text[0]
        assert class_to_flux(text) <= flux < class_to_flux(text) + 0.1 * class_to_flux(text[0] + "1") + 1e-20


@pytest.mark.parametrize("bad", ["Z3", "M", "", "M-1", "M0", "C10", None, 3.0])
def test_bad_class_strings(bad):
    with pytest.raises(GoesError, match="GOES class"):
        class_to_flux(bad)


@pytest.mark.parametrize("bad", [-1e-5, float("nan"), 0.0, 1.0, "abc"])
def test_impossible_flux(bad):
    with pytest.raises(GoesError):
        flux_to_class(bad)


def test_letters_missing_is_none_not_a():
    out = letters_from_flux(np.array([np.nan, 5e-8, 2e-6, 0.0]))
    assert list(out) == [None, "A", "C", None]


def test_goes_csv_floor_and_fill_are_missing(tmp_path):
    path = tmp_path / "g.csv"
    path.write_text("time,xrsa,xrsb\n2012-01-01T00:00:00,1e-9,1.0e-09\n"
                    "2012-01-01T00:05:00,2e-8,-9999\n2012-01-01T00:10:00,3e-8,4e-6\n")
    g = read_goes(path)
    assert g["xrsb"].isna().tolist() == [True, True, False]
    assert np.isnan(g["xrsa"].iloc[0])
    assert str(g.index.tz) == "UTC"


def test_goes_csv_duplicate_timestamp(tmp_path):
    path = tmp_path / "g.csv"
    path.write_text("time,xrsa,xrsb\n2012-01-01T00:00:00,1e-8,1e-6\n2012-01-01T00:00:00,1e-8,1e-6\n")
    with pytest.raises(GoesError, match="g.csv.*duplicated"):
        read_goes(path)


def test_goes_netcdf_and_fits_from_sunpy():
    test_dir = pytest.importorskip("sunpy.data.test").__path__[0]
    nc = read_goes(f"{test_dir}/sci_xrsf-l2-flx1s_g17_d20201016_truncated.nc")
    assert len(nc) > 10 and nc["xrsb"].notna().any()
    assert nc.index[0].year == 2020 and nc["xrsb"].dropna().between(1e-9, 1e-2).all()
    old = read_goes(f"{test_dir}/sci_gxrs-l2-irrad_g15_d20131028_truncated.nc")
    assert old.index[0].year == 2013 and old["xrsb"].notna().sum() > 10
    fits = read_goes(f"{test_dir}/go1520110607.fits")
    assert fits.index[len(fits) // 2].strftime("%Y-%m-%d") == "2011-06-07"
    # The 2011-06-07 M2.5 flare peaks near 06:41 UTC.
    peak = fits["xrsb"].idxmax()
    assert peak.hour == 6 and 2e-5 < fits["xrsb"].max() < 3e-5


def test_unknown_goes_file_type(tmp_path):
    (tmp_path / "x.dat").write_text("1")
    with pytest.raises(GoesError, match="unknown GOES file type"):
        read_goes(tmp_path / "x.dat")


HEK = ('GEV_START,GEV_PEAK,GEV_END,GOES_CLASS,AIA_LOC,AIA_XCEN,AIA_YCEN\n'
       '"2012-03-07T00:02:00","2012-03-07T00:24:00","2012-03-07T00:40:00","X5.4","N17E27",0,0\n'
       '"2012-03-07T01:05:00","2012-03-07T01:14:00","2012-03-07T01:23:00","X1.3","N22E12",0,0\n'
       '"2012-03-07T05:00:00","2012-03-07T06:00:00","2012-03-07T05:30:00","C1.0","N00E00",0,0\n')


def test_hek_reader_skips_and_reports_inconsistent_times(tmp_path):
    path = tmp_path / "hek.csv"
    path.write_text(HEK)
    ev = read_flares(path)
    assert list(ev["goes_class"]) == ["X5.4", "X1.3"]
    assert ev["peak_flux"].iloc[0] == pytest.approx(5.4e-4)
    assert ev.attrs["skipped"] == [(4, "times not ordered start <= peak <= end")]
    assert ev["location"].iloc[0] == "N17E27" and (ev["source"] == "HEK").all()


def test_swpc_reader_wraps_midnight(tmp_path):
    path = tmp_path / "swpc.csv"
    path.write_text("date,event_no,start_time,max_time,end_time,goes_class,noaa_ar\n"
                    "20120307,1,2345,0005,0020,M1.0,11429\n")
    ev = read_flares(path)
    assert ev["peak"].iloc[0] == pd.Timestamp("2012-03-08T00:05", tz="UTC")
    assert ev["end"].iloc[0] == pd.Timestamp("2012-03-08T00:20", tz="UTC")
    assert ev["noaa_ar"].iloc[0] == 11429


def test_catalogue_errors(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(CatalogError, match="empty.csv.*empty"):
        read_flares(empty)
    header_only = tmp_path / "hdr.csv"
    header_only.write_text("GEV_START,GEV_PEAK,GEV_END,GOES_CLASS\n")
    with pytest.raises(CatalogError, match="no flare events"):
        read_flares(header_only)
    bad = tmp_path / "bad.csv"
    bad.write_text(HEK.replace("X1.3", "Q1.3"))
    with pytest.raises(CatalogError, match=r"bad.csv: row 3: .*'Q1.3'"):
        read_flares(bad)
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(CatalogError, match="neither a HEK"):
        read_flares(other)


def test_cme_association(tmp_path):
    path = tmp_path / "hek.csv"
    path.write_text(HEK)
    ev = read_flares(path)
    cme = tmp_path / "cme.csv"
    cme.write_text("date,time,width,linear_speed\n2012/03/07,00:24:06,360,2684\n")
    flags = mark_eruptive(ev, read_cdaw(cme))
    assert flags.tolist() == [True, False]  # the 01:05 flare starts > 30 min after the CME
    cme.write_text("date,time,width,linear_speed\n2012/03/07,04:00:00,50,300\n")
    assert mark_eruptive(ev, read_cdaw(cme)).tolist() == [False, False]
