"""Augmentation ablation: grid bookkeeping, caching, resume after a kill, leakage, the report.

A 16 x 16 dataset of 144 hourly frames (written with write_dataset), a one-fold folds file, a
tiny DeiT and an XS generator trained for a few steps: the whole file runs in well under a minute
on one thread.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import experiments.ablation as ablation
import solargen.diffusion.train as diffusion_train
from experiments.ablation import (AblationError, LeakageError, assert_no_leakage, check_generator_fold,
                                  load_ablation_config, plan_cells)
from experiments.ablation_runner import run_ablation
from experiments.ablation_report import SECTIONS
from forecasting.augment import (STRATEGIES, SyntheticSamples, Transformed, classical_transform,
                                 count_origin, minority_picks, oversample_weights, seeded)
from forecasting.floors import FLOORS
from forecasting.tasks import get_task, make_dataset, part_samples
from application.cli import main as cli_main
from solargen.config import ConfigError
from solargen.data.dataset import load_dataset, write_dataset
from solargen.data.splits import Fold, load_folds

SIZE = 16
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PATTERN = np.array(list("BCBCMBCBCX"), dtype=object)
FLUX = {"B": 3e-7, "C": 3e-6, "M": 3e-5, "X": 2e-4}
STRATEGY_LIST = ["none", "classical-gentle", "classical-copies", "oversample", "class-weight",
                 "synthetic", "synthetic+classical"]


def write_tiny_dataset(root: Path) -> Path:
    """Hourly frames 2012-01-01..06; class pattern B C B C M B C B C X; a brighter blob for
    bigger classes; every third frame lacks a peak-matched label; one stale frame."""
    rng = np.random.default_rng(0)
    times = pd.date_range("2012-01-01", "2012-01-06 23:00", freq="h", tz="UTC")
    letters = np.resize(PATTERN, len(times))
    yy, xx = np.mgrid[:SIZE, :SIZE]
    disk = ((yy - 7.5) ** 2 + (xx - 7.5) ** 2 < 36).astype(np.float32)
    level = {"B": 0.1, "C": 0.3, "M": 0.6, "X": 0.9}
    frames = []
    for c in letters:
        cy, cx = rng.integers(4, 12, size=2)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 4.0) * level[c]
        frames.append((disk * 0.8 + blob - 1 + 0.05 * rng.standard_normal((SIZE, SIZE)))[None])
    frames = np.clip(np.stack(frames), -1, 1).astype(np.float32)
    peak = letters.copy()
    peak[::3] = None
    stale = np.zeros(len(times), bool)
    stale[30] = True
    labels = pd.DataFrame({"t_obs": times, "goes_class": letters,
                           "goes_flux": [FLUX[c] for c in letters], "max_class_24h": letters,
                           "max_flux_24h": [FLUX[c] for c in letters], "peak_class": peak,
                           "stale": stale})
    meta = {"source": "test", "channels": ["171"], "size": SIZE, "synthetic": True,
            "normalisation": {"scaling": "linear", "lo": [0.0], "hi": [255.0]}}
    write_dataset(root, frames, labels, meta, "tiny ablation test dataset\n")
    return root


def write_folds(path: Path) -> Path:
    path.write_text(yaml.safe_dump({"gap_hours": 24, "folds": [
        {"name": "t1", "train": ["2012-01-01", "2012-01-02"], "val": ["2012-01-04", "2012-01-04"],
         "test": ["2012-01-06", "2012-01-06"]}]}))
    return path


def write_config(tmp: Path, name: str = "tiny", **changes) -> Path:
    config = {
        "name": name, "description": "tiny test grid",
        "data": str(tmp / "ds"), "folds": str(tmp / "folds.yaml"),
        "tasks": ["binary-24h"], "models": ["deit"], "strategies": STRATEGY_LIST,
        "n_synthetic": [2, 4], "synthetic_sets": 2, "seeds": [0],
        "minority_classes": ["M", "X"], "metrics": ["tss", "hss"],
        "train": {"epochs": 1, "batch_size": 16, "lr": 1e-3, "patience": 1,
                  "model_overrides": {"patch_size": 8, "embed_dim": 16, "depth": 1,
                                      "num_heads": 2}},
        # min_class_frames 0: the tiny test split has a handful of M and X frames
        "generator": {"config": str(CONFIGS / "ddpm-tiny.yaml"), "steps": 2, "batch_size": 8,
                      "min_class_frames": 0, "overrides": ["model.attention_max_resolution=4", "train.max_steps=4",
                                    "train.batch_size=4", "train.warmup_steps=1",
                                    "train.checkpoint_every=2"]},
        "cache_dir": str(tmp / "cache"),
    }
    config.update(changes)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("ablation")
    write_tiny_dataset(tmp / "ds")
    write_folds(tmp / "folds.yaml")
    return tmp


class Counter:
    """Wrap a function, counting calls; raise KeyboardInterrupt (a kill) after `kill_after`."""

    def __init__(self, fn, kill_after: int | None = None):
        self.fn, self.calls, self.kill_after = fn, 0, kill_after

    def __call__(self, *args, **kwargs):
        if self.kill_after is not None and self.calls >= self.kill_after:
            raise KeyboardInterrupt("simulated kill")
        self.calls += 1
        return self.fn(*args, **kwargs)


@pytest.fixture(scope="module")
def first_run(workdir):
    config = load_ablation_config(write_config(workdir))
    mp = pytest.MonkeyPatch()
    fits = Counter(ablation.fit)
    gens = Counter(diffusion_train.train)
    mp.setattr(ablation, "fit", fits)
    mp.setattr(diffusion_train, "train", gens)
    try:
        result = run_ablation(config, workdir / "run", progress=False)
    finally:
        mp.undo()
    return config, result, fits.calls, gens.calls


def test_cells_listed_equal_cells_run(first_run, workdir):
    config, result, fits, gens = first_run
    planned = [c.id for c in plan_cells(config)]
    # the floors + 4 strategies without N + 3 with N x 2 N values x 2 synthetic sets
    assert len(planned) == len(FLOORS) + 4 + 3 * 2 * 2 == len(set(planned))
    assert result["cells"] == planned and result["ran"] == planned and result["skipped"] == 0
    written = sorted(p.stem for p in (workdir / "run" / "cells").glob("*.json"))
    assert written == sorted(planned)
    assert fits == len(planned)
    assert gens == 1                                  # one fold -> one generator, trained once
    assert len(list((workdir / "cache" / "synthetic").rglob("*.npz"))) == 2   # one per set index
    assert len(list((workdir / "run" / "models").glob("*/model"))) == len(planned)


def test_second_run_trains_nothing(first_run, workdir, monkeypatch):
    config = first_run[0]
    cells = sorted((workdir / "run" / "cells").glob("*.json"))
    mtimes = [p.stat().st_mtime_ns for p in cells]
    fits = Counter(ablation.fit)
    gens = Counter(diffusion_train.train)
    import solargen.diffusion.sample as sample
    samples = Counter(sample.sample_set)
    monkeypatch.setattr(ablation, "fit", fits)
    monkeypatch.setattr(diffusion_train, "train", gens)
    monkeypatch.setattr(sample, "sample_set", samples)
    result = run_ablation(config, workdir / "run", progress=False)
    assert (fits.calls, gens.calls, samples.calls) == (0, 0, 0)
    assert result["ran"] == [] and result["skipped"] == len(cells)
    assert [p.stat().st_mtime_ns for p in cells] == mtimes


def test_resume_after_kill_redoes_nothing_finished(first_run, workdir, monkeypatch):
    config = load_ablation_config(write_config(workdir, name="killed",
                                               strategies=["none", "oversample", "synthetic"],
                                               n_synthetic=[2], synthetic_sets=1))
    out = workdir / "killed-run"
    total = len(plan_cells(config))
    monkeypatch.setattr(ablation, "fit", Counter(ablation.fit, kill_after=2))
    with pytest.raises(KeyboardInterrupt):
        run_ablation(config, out, progress=False)
    done = {p: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")}
    assert len(done) == 2
    fits = Counter(ablation.fit.fn)
    monkeypatch.setattr(ablation, "fit", fits)
    result = run_ablation(config, out, progress=False)
    assert fits.calls == total - 2 and result["skipped"] == 2
    assert all(p.stat().st_mtime_ns == t for p, t in done.items())
    assert len(list((out / "cells").glob("*.json"))) == total


def test_changed_settings_refuse_the_old_output(first_run, workdir):
    config = load_ablation_config(write_config(workdir, name="changed",
                                               train={"epochs": 2, "batch_size": 16}))
    with pytest.raises(AblationError, match="different settings"):
        run_ablation(config, workdir / "run", progress=False)


def test_synthetic_frames_only_in_training(first_run, workdir):
    results = [json.loads(p.read_text()) for p in (workdir / "run" / "cells").glob("*.json")]
    for r in results:
        s, c = r["samples"], r["cell"]
        assert s["synthetic_val"] == s["synthetic_test"] == 0
        assert s["classical-copy_val"] == s["classical-copy_test"] == 0
        expected = c["n"] * 2 if c["strategy"].startswith("synthetic") else 0
        assert s["synthetic_train"] == expected
        copies = c["n"] * 2 if c["strategy"] == "classical-copies" else 0
        assert s["classical-copy_train"] == copies
        assert s["train_total"] == s["train_real"] + expected + copies
    # val/test sizes are those of the real windows, identical in every cell
    assert len({(r["samples"]["val"], r["samples"]["test"]) for r in results}) == 1
    report = (workdir / "run" / "report.md").read_text()
    total = sum(r["samples"]["synthetic_train"] for r in results)
    assert f"Synthetic frames in training sets: {total} " in report
    assert "in validation sets: 0; in test sets: 0" in report
    # every synthetic set went through the copy filter, and the report counts what it rejected
    filters = [r["sampling"]["copy_filter"] for r in results if r.get("sampling")]
    assert filters and all(f["copy_rate_after"] == 0.0 and f["drawn"] >= f["rejected"] for f in filters)
    assert "Copy filter: over" in report


def test_generator_trained_on_the_fold_training_split_only(first_run, workdir):
    fold = load_folds(workdir / "folds.yaml").get("t1")
    start, end = fold.window("train")
    records = list((workdir / "cache" / "generators").glob("*/generator.json"))
    assert len(records) == 1 and records[0].parent.name.startswith("t1-")
    training = json.loads(records[0].read_text())["training"]
    assert training["fold"] == "t1"
    assert start <= pd.Timestamp(training["first_frame"]) <= pd.Timestamp(training["last_frame"]) < end
    # a record reaching past the training window is refused
    late = dict(training, last_frame=str(fold.window("val")[0]))
    with pytest.raises(LeakageError):
        check_generator_fold(late, fold, "test")
    with pytest.raises(LeakageError):
        check_generator_fold(dict(training, fold="f9"), fold, "test")


def test_pretrained_generator_is_reused_only_for_its_own_fold(first_run, workdir):
    record = json.loads(next((workdir / "cache" / "generators").glob("*/generator.json")).read_text())
    ds = load_dataset(workdir / "ds")
    fold = load_folds(workdir / "folds.yaml").get("t1")
    config = load_ablation_config(write_config(workdir, name="pre", generator={
        "pretrained": {"t1": record["pipeline"]}}))
    reused = ablation.ensure_generator(config, ds, fold, "max_class_24h", workdir / "pre-cache")
    assert reused["pipeline"] == record["pipeline"] and reused["training"] == record["training"]
    # a whole run on a copy kept elsewhere (as a user's own training run would be): nothing
    # trained, the report names the pipeline and counts its sampling
    elsewhere = workdir / "my-ddpm" / "pipeline"
    shutil.copytree(record["pipeline"], elsewhere)
    config = load_ablation_config(write_config(workdir, name="pre-run", strategies=["none", "synthetic"],
                                               n_synthetic=[2], synthetic_sets=1, generator={
        "pretrained": {"t1": str(elsewhere)}, "steps": 2, "batch_size": 8, "min_class_frames": 0},
        cache_dir=str(workdir / "pre-cache")))
    mp = pytest.MonkeyPatch()
    mp.setattr(diffusion_train, "train", Counter(diffusion_train.train, kill_after=0))
    try:
        run_ablation(config, workdir / "pre-run", progress=False)
    finally:
        mp.undo()
    report = (workdir / "pre-run" / "report.md").read_text()
    assert f"pretrained pipelines (t1: `{elsewhere}`)" in report
    costs = json.loads((workdir / "pre-run" / "results.json").read_text())["costs"]["generators"]
    assert [len(c["sampling"]) for c in costs] == [1]
    assert costs[0]["sampling"][0]["images"] == 2 * len(costs[0]["sampling"][0]["file"].split("-")[1])
    # the same pipeline offered for a fold whose training window it was not trained in: refused
    other = Fold("t2", {"train": (pd.Timestamp("2012-01-04", tz="UTC"), pd.Timestamp("2012-01-05", tz="UTC"))})
    config = load_ablation_config(write_config(workdir, name="pre2", generator={
        "pretrained": {"t2": record["pipeline"]}}))
    with pytest.raises(LeakageError):
        ablation.ensure_generator(config, ds, other, "max_class_24h", workdir / "pre-cache")


def test_assert_no_leakage_catches_synthetic_in_test(workdir):
    ds = load_dataset(workdir / "ds")
    fold = load_folds(workdir / "folds.yaml").get("t1")
    task = get_task("binary-24h")
    real = {p: make_dataset(ds, part_samples(ds, task, fold, p, 1), 1) for p in ("train", "val", "test")}
    fake = SyntheticSamples(np.zeros((3, 1, SIZE, SIZE), np.float32), np.ones(3, int))
    counts = assert_no_leakage(torch.utils.data.ConcatDataset([real["train"], fake]),
                               real["val"], real["test"])
    assert counts["synthetic_train"] == 3 and counts["synthetic_test"] == 0
    with pytest.raises(LeakageError, match="synthetic_test"):
        assert_no_leakage(real["train"], real["val"],
                          Transformed(torch.utils.data.ConcatDataset([real["test"], fake]),
                                      classical_transform("gentle")))


def test_report_has_required_sections(first_run, workdir):
    out = workdir / "run"
    report = (out / "report.md").read_text()
    for section in SECTIONS:
        assert section in report
    assert "synthetic embedded default dataset, not from solar data" in report
    results = json.loads((out / "results.json").read_text())
    assert {r["strategy"] for r in results["aggregates"]} == set(STRATEGY_LIST)
    comparisons = results["comparisons"]
    assert {c["strategy"] for c in comparisons} == set(STRATEGY_LIST) - {"none"}
    assert all(c["n_pairs"] + c["collapsed_pairs"] == 1 and c["p_value"] is None for c in comparisons)
    assert results["verdicts"][0].startswith("Not testable")
    assert all("deit on binary-24h" in v for v in results["verdicts"][1:])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["units"] == 1 and summary["verdict"] == results["verdicts"][0]
    assert all(v["p_holm"] is None for v in summary["strategies"].values())
    assert "floor: persistence" in report and "floor: logistic" in report
    assert "collapsed" in report.lower()
    assert results["costs"]["generation"]["CPU"] > 0
    for fig in results["figures"]:
        assert (out / fig).stat().st_size > 1000
    none = next(r for r in results["aggregates"] if (r["strategy"], r["model"]) == ("none", "deit"))
    cell = json.loads((out / "cells" / "binary-24h__t1__deit__seed0__none__n0__set0.json").read_text())
    assert none["tss"]["mean"] == pytest.approx(cell["metrics"]["tss"])
    assert (out / "command.txt").read_text().strip()


def test_dry_run_lists_cells_and_cost(workdir, capsys):
    path = write_config(workdir, name="dry")
    assert cli_main(["ablate", "--config", str(path), "--out", str(workdir / "dry"),
                     "--dry-run"]) == 0
    text = capsys.readouterr().out
    config = load_ablation_config(path)
    assert all(c.id in text for c in plan_cells(config))
    assert "estimated cost on cpu" in text and "binary-24h/t1/deit: real samples" in text
    assert not (workdir / "dry" / "cells").exists()


def test_config_errors_name_the_file(workdir):
    bad = write_config(workdir, name="bad", strategies=["none", "smote"])
    with pytest.raises(Exception, match="smote"):
        load_ablation_config(bad)
    no_base = write_config(workdir, name="nobase", strategies=["synthetic"])
    with pytest.raises(AblationError, match="'none'"):
        load_ablation_config(no_base)
    typo = workdir / "typo.yaml"
    typo.write_text(yaml.safe_dump({"name": "x", "seedz": [0]}))
    with pytest.raises(ConfigError, match="typo.yaml.*seedz"):
        load_ablation_config(typo)
    assert cli_main(["ablate", "--config", str(typo), "--out", str(workdir / "x")]) == 2


def test_shipped_configs_load():
    for path in sorted((CONFIGS / "ablation").glob("*.yaml")):
        config = load_ablation_config(path)
        assert config.strategies[0] == "none", path


def test_classical_transforms_and_rebalancing():
    x = torch.linspace(-1, 1, 2 * SIZE * SIZE).reshape(2, 1, SIZE, SIZE)   # a 2-frame history
    for variant in ("gentle", "broad"):
        t = classical_transform(variant)
        a, b = seeded(t, x, 5), seeded(t, x, 5)
        assert a.shape == x.shape and torch.equal(a, b)
        assert a.min() >= -1 and a.max() <= 1
    flips = [seeded(classical_transform("gentle"), x, s) for s in range(8)]
    assert any(not torch.allclose(f, x, atol=0.2) for f in flips)     # it does transform
    letters = np.array(list("BBBBCCMX"), dtype=object)
    picks = minority_picks(letters, ["M", "X", "A"], 5, seed=0)
    assert list(letters[picks]) == ["M"] * 5 + ["X"] * 5
    w = oversample_weights(np.array([0, 0, 0, 1]))
    assert w[:3].sum() == pytest.approx(w[3])
    assert set(STRATEGIES) >= set(STRATEGY_LIST) | {"classical-broad"}


def test_synthetic_histories(workdir):
    ds = load_dataset(workdir / "ds")
    fold = load_folds(workdir / "folds.yaml").get("t1")
    task = get_task("4class-24h")
    real = make_dataset(ds, part_samples(ds, task, fold, "train", 3), 3)
    frames = np.full((4, 1, SIZE, SIZE), 0.5, np.float32)
    targets = np.array([2, 2, 3, 3])
    latest = SyntheticSamples(frames, targets, history=3, mode="latest", real=real)
    seq, y = latest[0]
    assert seq.shape == (3, 1, SIZE, SIZE) and int(y) == 2
    assert torch.all(seq[-1] == 0.5) and not torch.all(seq[0] == 0.5)
    host = int(latest.hosts[2])
    assert int(real.targets[host]) == 3                # hosted by a real history of its class
    repeat = SyntheticSamples(frames, targets, history=3, mode="repeat")
    assert torch.all(repeat[1][0] == 0.5)
    assert count_origin(torch.utils.data.ConcatDataset([real, latest, repeat]), "synthetic") == 8


@pytest.mark.parametrize("model", ["ssm", "vit-lstm"])
def test_sequence_models_run_through_the_grid(first_run, workdir, model):
    """Experiments 3 and 4 in miniature: histories of 3 frames, synthetic frames as the latest
    frame of a real history of their class, the fold's cached generator reused."""
    config = load_ablation_config(write_config(
        workdir, name=f"seq-{model}", tasks=["4class-24h"], models=[model],
        strategies=["none", "synthetic"], n_synthetic=[2], synthetic_sets=1, metrics=["gmgs", "tss"],
        floors=[], train={"epochs": 1, "batch_size": 16, "lr": 1e-3, "patience": 1, "history": 3}))
    mp = pytest.MonkeyPatch()
    mp.setattr(diffusion_train, "train", Counter(diffusion_train.train, kill_after=0))
    try:
        result = run_ablation(config, workdir / f"seq-{model}", progress=False)
    finally:
        mp.undo()
    cells = [json.loads(p.read_text()) for p in (workdir / f"seq-{model}" / "cells").glob("*.json")]
    assert len(cells) == 2 and {c["history"] for c in cells} == {3}
    synthetic = next(c for c in cells if c["cell"]["strategy"] == "synthetic")
    assert synthetic["samples"]["synthetic_train"] > 0
    assert synthetic["samples"]["synthetic_val"] == synthetic["samples"]["synthetic_test"] == 0
    assert all(np.isfinite(c["metrics"]["tss"]) for c in cells)
    assert (workdir / f"seq-{model}" / "report.md").is_file() and result


def _fake(strategy: str, n: int, seed: int, fold: str, tss: float) -> dict:
    return {"cell": {"task": "binary-24h", "model": "deit", "strategy": strategy, "n": n,
                     "seed": seed, "fold": fold, "set_index": 0}, "metrics": {"tss": tss}}


def test_statistics_and_verdicts_follow_the_numbers():
    from experiments.ablation_report import _overall, aggregate, summary_json
    from experiments.ablation_stats import compare, units_table
    units = [(s, f) for s in range(3) for f in ("f1", "f2", "f3", "f4")]   # 12 (fold, seed) pairs
    rng = np.random.default_rng(0)
    base = {u: 0.2 + 0.05 * rng.standard_normal() for u in units}
    results = [_fake("none", 0, s, f, base[(s, f)]) for s, f in units]
    results += [_fake("synthetic", 100, s, f, base[(s, f)] + 0.1 + 0.05 * i / 11)
                for i, (s, f) in enumerate(units)]
    results += [_fake("classical-gentle", 0, s, f, base[(s, f)] - 0.02 * (i % 2))
                for i, (s, f) in enumerate(units)]
    comparisons = compare(units_table(results, ["tss"]), ["tss"])
    syn = next(c for c in comparisons if c.strategy == "synthetic")
    assert syn.n_pairs == 12 and syn.mean_diff == pytest.approx(0.125) and syn.significant
    overall = _overall(comparisons, ["synthetic"])
    assert overall.startswith("Synthetic minority frames help in 1 of 1 tested comparisons")
    summary = summary_json(comparisons, "tss", overall, aggregate(results, ["tss"]))["strategies"]
    assert summary["synthetic N=100"]["significant"] and summary["synthetic N=100"]["collapsed_cells"] == 0
    # the same data with the synthetic gain removed: no detectable effect
    flat = [r if r["cell"]["strategy"] != "synthetic" else
            _fake("synthetic", 100, r["cell"]["seed"], r["cell"]["fold"],
                  base[(r["cell"]["seed"], r["cell"]["fold"])] + (0.01 if r["cell"]["seed"] else -0.01))
            for r in results]
    comparisons = compare(units_table(flat, ["tss"]), ["tss"])
    assert _overall(comparisons, ["synthetic"]).startswith("No detectable effect")


def test_ablation_cells_and_forecast_cv_score_identically(workdir):
    """One trainer: a 'none' cell and `forecast cv` with the same seed, data and settings give
    the same test scores, for a deep model and for a floor."""
    train_settings = {"epochs": 2, "batch_size": 16, "lr": 1e-3, "patience": 2,
                      "sampling": "balanced", "augment": "flips-rotate",
                      "model_overrides": {"patch_size": 8, "embed_dim": 16, "depth": 1,
                                          "num_heads": 2}}
    config = load_ablation_config(write_config(workdir, name="same", strategies=["none"],
                                               floors=["logistic"], seeds=[3],
                                               train=train_settings))
    run_ablation(config, workdir / "same", progress=False)
    for model in ("deit", "logistic"):
        cell = json.loads((workdir / "same" / "cells" /
                           f"binary-24h__t1__{model}__seed3__none__n0__set0.json").read_text())
        cfg = ablation.cell_config(config, ablation.Cell("binary-24h", "t1", model, 3, "none"),
                                   workdir / f"cv-{model}")
        from forecasting.evaluate import cross_validate
        cv = cross_validate(cfg, ["t1"])
        report = json.loads((workdir / f"cv-{model}" / "t1" / "test" / "metrics.json").read_text())
        assert report["scores"]["confusion_matrix"] == cell["scores"]["confusion_matrix"]
        assert report["scores"]["brier_ge_m"] == pytest.approx(cell["scores"]["brier_ge_m"], rel=1e-6)
        assert cv["folds"]["t1"]["tss_ge_m"] == pytest.approx(cell["metrics"]["tss"], nan_ok=True)


def test_synthetic_history_of_a_class_without_real_hosts_is_an_error():
    from forecasting.augment import AugmentError

    class Real(torch.utils.data.Dataset):
        targets = np.array([0, 0, 0])

        def __len__(self):
            return 3

        def __getitem__(self, k):
            return torch.zeros(4, 1, 8, 8), torch.tensor(0)

    frames = np.zeros((2, 1, 8, 8), np.float32)
    SyntheticSamples(frames, np.array([0, 0]), history=4, mode="latest", real=Real())
    with pytest.raises(AugmentError, match="target class 1 have no real training history"):
        SyntheticSamples(frames, np.array([1, 1]), history=4, mode="latest", real=Real())


def test_summary_counts_a_strategys_own_collapsed_cells_and_each_left_out_pair_once():
    from experiments.ablation_report import _overall, aggregate, summary_json
    from experiments.ablation_stats import compare, units_table
    results = []
    for i, (s, f) in enumerate((s, f) for s in range(2) for f in ("f1", "f2", "f3")):
        for strategy, n, tss in (("none", 0, 0.1 * i), ("synthetic", 100, 0.1 * i + 0.05)):
            r = _fake(strategy, n, s, f, tss)
            r["metrics"]["hss"] = tss / 2
            r["metrics"]["collapsed"] = int(strategy == "none" and i == 0)   # one baseline cell
            results.append(r)
    comparisons = compare(units_table(results, ["tss", "hss"]), ["tss", "hss"])
    entry = summary_json(comparisons, "tss", "", aggregate(results, ["tss", "hss"]))["strategies"]["synthetic N=100"]
    assert entry["collapsed_cells"] == 0 and entry["collapsed_pairs"] == 1 and entry["pairs"] == 5
    assert "1 (fold, seed) pairs with a collapsed cell left out over the 1 strategy/N rows" in _overall(
        comparisons, ["synthetic"])


def test_a_class_from_too_few_training_frames_is_not_synthesised(tmp_path):
    """The minority classes a generator synthesises are those it saw at least
    generator.min_class_frames times; none left is one clear error naming the counts."""
    config = ablation.AblationConfig(minority_classes=["M", "X"])
    generator = {"key": "g", "pipeline": str(tmp_path), "fold": "f1", "known_classes": ["B", "C", "M", "X"],
                 "class_counts": {"B": 900, "C": 500, "M": 24, "X": 2}}
    assert ablation.synthesis_classes(config, generator) == (["M"], {"X": 2})
    config.generator.min_class_frames = 30
    with pytest.raises(AblationError, match="min_class_frames = 30.*too few: {'M': 24, 'X': 2}"):
        ablation.ensure_synthetic_set(config, generator, 0, tmp_path / "cache")


def test_the_copy_filter_rejects_copies_and_keeps_held_out_frames():
    """An exact training frame and a lightly noised one are rejected; fresh frames from the same
    distribution pass at about 1 - quantile."""
    rng = np.random.default_rng(0)
    train = rng.normal(0, 0.3, (200, 1, 8, 8)).clip(-1, 1)
    heldout = rng.normal(0, 0.3, (300, 1, 8, 8)).clip(-1, 1)
    fresh = rng.normal(0, 0.3, (300, 1, 8, 8)).clip(-1, 1)
    copies = np.stack([train[3], train[7] + rng.normal(0, 0.01, train[7].shape)])
    keep, threshold = ablation.copy_filter(np.concatenate([copies, fresh]), train, heldout, 0.01)
    assert threshold > 0 and not keep[:2].any()
    assert keep[2:].mean() >= 0.95
