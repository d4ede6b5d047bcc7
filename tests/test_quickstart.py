"""`solargen quickstart --tiny`: every artefact of the full run, reuse on a second run, settings
guard, derived folds without leakage.

`tiny_quickstart` runs the quickstart once per test session; tests/test_app.py serves its model.
"""
from __future__ import annotations

import contextlib
import io as io_module
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from solargen import io
from application.cli import main as cli_main
from solargen.data.dataset import load_dataset
from solargen.data.splits import check_no_leakage, fold_indices, load_folds
from solargen.diffusion.sample import load_npz

_RUNS: dict[str, tuple[Path, str]] = {}


def tiny_quickstart(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(output dir, printed stdout) of one `solargen quickstart --tiny` per test session."""
    if "run" not in _RUNS:
        out = tmp_path_factory.mktemp("quickstart") / "qs"
        printed, errors = io_module.StringIO(), io_module.StringIO()
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
            rc = cli_main(["quickstart", "--tiny", "--out", str(out)])
        assert rc == 0, f"solargen quickstart --tiny failed (rc {rc}): {errors.getvalue()[-2000:]}"
        _RUNS["run"] = (out, printed.getvalue())
    return _RUNS["run"]


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory) -> Path:
    return tiny_quickstart(tmp_path_factory)[0]


def test_tiny_quickstart_writes_every_artefact(tmp_path_factory):
    out, printed = tiny_quickstart(tmp_path_factory)
    ds = load_dataset(out / "data")
    assert ds.synthetic and ds.size == 16
    model = out / "model" / "pipeline"
    index = io.read_json(model / "model_index.json")["metadata"]
    assert index["synthetic_training_data"] is True
    fold = load_folds(out / "folds.yaml").get("f1")
    train_end = fold.window("train")[1]
    assert pd.Timestamp(index["training"]["last_frame"]) < train_end  # first fold's training split only

    samples = load_npz(out / "samples" / "samples.npz")
    known = index["known_classes"]
    assert samples["images"].shape == (2 * len(known), 1, 16, 16)
    assert sorted(set(samples["flare_class"])) == sorted(known)              # every class sampled
    assert len(list((out / "samples" / "png").glob("*.png"))) == len(samples["images"])
    assert len(list((out / "samples" / "fits").glob("*.fits"))) == len(samples["images"])
    assert (out / "samples" / "grid.png").stat().st_size > 0

    metrics = io.read_json(out / "eval" / "metrics.json")
    assert metrics["data"]["synthetic_real"] is True and "domain" in metrics["fid"]
    assert (out / "eval" / "models" / "classifier" / "config.json").is_file()
    assert (out / "ablation" / "report.md").is_file() and (out / "ablation" / "results.json").is_file()

    report = (out / "report.md").read_text()
    assert "SYNTHETIC" in report.split("\n## ")[0]                           # said plainly, up front
    assert f"solargen app --model {model}" in report
    assert "## Evaluation" in report and "## Ablation" in report
    assert f"solargen app --model {model}" in printed and str(out / "report.md") in printed
    assert "SYNTHETIC" in printed
    studio = io.read_json(out / "studio.json")
    assert studio["model"] == str(model) and Path(studio["classifier"]).is_dir()
    timings = io.read_json(out / "timings.json")
    assert set(timings) == {"data", "folds", "model", "samples", "eval", "ablation"}
    assert not any(t["reused"] for t in timings.values())


def test_second_run_reuses_every_stage(quickstart_run):
    out = quickstart_run
    weights = sorted((out / "model" / "pipeline" / "unet").glob("*"))
    before = {p: p.stat().st_mtime_ns for p in weights}
    eval_before = (out / "eval" / "metrics.json").stat().st_mtime_ns
    assert cli_main(["quickstart", "--tiny", "--out", str(out)]) == 0
    timings = io.read_json(out / "timings.json")
    assert all(t["reused"] for t in timings.values())
    assert all(t["seconds"] is not None for t in timings.values())   # first run's times are kept
    assert {p: p.stat().st_mtime_ns for p in weights} == before
    assert (out / "eval" / "metrics.json").stat().st_mtime_ns == eval_before
    assert "reused from an earlier run" in (out / "report.md").read_text()


def test_other_settings_into_the_same_directory_are_refused(quickstart_run, capsys):
    assert cli_main(["quickstart", "--tiny", "--out", str(quickstart_run), "--seed", "3"]) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "seed" in err


def test_derived_fold_has_no_leakage(quickstart_run):
    ds = load_dataset(quickstart_run / "data")
    folds = load_folds(quickstart_run / "folds.yaml")
    folds.check(72)
    parts = fold_indices(ds.times, folds.get("f1"))
    assert all(len(parts[p]) > 0 for p in ("train", "val", "test"))
    check_no_leakage(ds.times, parts, 72)


def test_exports_of_the_samples_stage_carry_conditions(quickstart_run):
    from astropy.io import fits
    samples = load_npz(quickstart_run / "samples" / "samples.npz")
    meta = json.loads(samples["meta"])
    assert meta["sampling"]["steps"] == 2 and meta["synthetic_training_data"] is True
    first = sorted((quickstart_run / "samples" / "fits").glob("*.fits"))[0]
    header = fits.getheader(first)
    assert header["FLARECLS"] in samples["flare_class"] and header["TRAINSYN"] is True
    assert np.isfinite(samples["images"]).all() and np.abs(samples["images"]).max() <= 1


def test_dry_run_prints_the_resolved_settings(capsys, tmp_path):
    assert cli_main(["quickstart", "--dry-run", "--out", str(tmp_path / "q")]) == 0
    text = capsys.readouterr().out
    assert "synthetic_frames: 4368" in text and "eval_features:" in text
    assert not (tmp_path / "q").exists()
    assert cli_main(["quickstart", "--dry-run", "--data", str(tmp_path), "--train-steps", "50"]) == 0
    text = capsys.readouterr().out
    assert "2012-rolling.yaml" in text and "train.max_steps=50" in text
