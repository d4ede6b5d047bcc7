"""Tasks, leakage, and the train / resume / evaluate / cross-validate path on a tiny dataset."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import yaml
import torch

from forecasting import train as train_mod
from forecasting.augment import augment_batch
from forecasting.losses import LossConfig, NonFiniteLossError
from forecasting.tasks import get_task, make_dataset, part_samples, select_samples, used_frames
from forecasting.config import ForecastConfig
from forecasting.train import train
from application.cli import main as solargen_main
from solargen.data.dataset import write_dataset
from solargen.data.splits import SplitError, check_no_leakage, load_folds
from solargen.errors import SolargenError

FOLDS_YAML = """gap_hours: 72
folds:
  - name: f1
    train: [2012-01-01, 2012-01-14]
    val:   [2012-01-18, 2012-01-22]
    test:  [2012-01-26, 2012-01-31]
  - name: f2
    train: [2012-01-01, 2012-01-31]
    val:   [2012-02-04, 2012-02-09]
    test:  [2012-02-13, 2012-02-20]
"""
TINY_DEIT = {"patch_size": 8, "embed_dim": 16, "depth": 1, "num_heads": 2}
TINY_SSM = {"conv_channels": [4, 8], "d_model": 16, "state_size": 8, "depth": 1}


def _letters(flux: np.ndarray) -> np.ndarray:
    return np.array(["ABCMX"[int(np.clip(np.floor(np.log10(f)) + 8, 0, 4))] for f in flux])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Hourly 16x16 frames over Jan-Feb 2012 whose brightness tracks the coming flux, with a few
    missing targets and stale frames."""
    root = tmp_path_factory.mktemp("forecast")
    rng = np.random.default_rng(0)
    t = pd.date_range("2012-01-01", "2012-02-21 23:00", freq="h", tz="UTC")
    n = len(t)
    log_flux = -6.0 + np.convolve(rng.normal(0, 1.2, n + 96), np.ones(12) / 4, "same")[:n + 96]
    flux = 10.0 ** log_flux
    max24 = np.array([flux[i + 1:i + 25].max() for i in range(n)])
    max72 = np.array([flux[i + 1:i + 73].max() for i in range(n)])
    frames = rng.normal(0, 0.1, (n, 1, 16, 16))
    frames[:, 0, 4:12, 4:12] += ((np.log10(max24) + 6) / 3)[:, None, None]
    labels = pd.DataFrame({"t_obs": t, "goes_flux": flux[:n], "goes_class": _letters(flux[:n]),
                           "max_flux_24h": max24, "max_class_24h": _letters(max24).astype(object),
                           "max_flux_72h": max72, "max_class_72h": _letters(max72).astype(object),
                           "stale": np.zeros(n, bool)})
    labels.loc[[30, 31], "max_class_24h"] = None
    labels.loc[[40, 500], "stale"] = True
    meta = {"source": "test", "channels": ["171"], "size": 16,
            "normalisation": {"scaling": "linear", "lo": [0.0], "hi": [1.0]}}
    ds = write_dataset(root / "ds", np.clip(frames, -1, 1), labels, meta, "test dataset\n")
    folds = root / "folds.yaml"
    folds.write_text(FOLDS_YAML)
    return ds, folds, root


def _config(tiny, out, **kw) -> ForecastConfig:
    ds, folds, _ = tiny
    base = dict(data=str(ds.root), out=str(out), folds=str(folds), model="deit", task="binary-24h",
                epochs=2, batch_size=32, lr=2e-3, patience=5, model_overrides=dict(TINY_DEIT))
    base.update(kw)
    return ForecastConfig(**base)


def test_task_selection_counts_exclusions(tiny):
    ds, _, _ = tiny
    hourly = select_samples(ds, get_task("binary-24h"))
    assert hourly.excluded == {"target missing": 2, "stale frame": 2}
    assert len(hourly.targets) == len(ds) - 4
    expected = ds.labels["max_class_24h"].isin(["M", "X"]).to_numpy()[hourly.indices]
    assert np.array_equal(hourly.targets, expected.astype(int))
    daily = select_samples(ds, get_task("binary-24h-daily"))
    assert (ds.times[daily.indices].hour == 0).all() and len(daily.indices) == 52
    four = select_samples(ds, get_task("4class-72h"))
    letters = ds.labels["max_class_72h"].to_numpy()[four.indices]
    assert np.array_equal(four.targets, pd.Series(letters).map(
        {"A": 0, "B": 0, "C": 1, "M": 2, "X": 3}).to_numpy())


def test_histories_stay_inside_windows_and_no_leakage(tiny):
    ds, folds_path, _ = tiny
    task, fold = get_task("4class-72h"), load_folds(folds_path).get("f1")
    parts = {}
    for part in ("train", "val", "test"):
        samples = part_samples(ds, task, fold, part, history=12)
        assert samples.excluded["history starts before the window"] == 11
        parts[part] = used_frames(make_dataset(ds, samples, history=12))
    check_no_leakage(ds.times, parts, task.horizon_hours)
    # control: a history reaching 30 h back from the first val frame lands within 72 h of training
    val_start = np.flatnonzero(ds.times >= pd.Timestamp("2012-01-18", tz="UTC"))[0]
    leaky = dict(parts, val=np.arange(val_start - 30, val_start + 5))
    with pytest.raises(SplitError):
        check_no_leakage(ds.times, leaky, task.horizon_hours)


def test_resume_after_kill_continues_identically(tiny, tmp_path, monkeypatch):
    straight = train(_config(tiny, tmp_path / "a", epochs=3))
    real_save = train_mod._Stage.save

    def save_then_die(self, accelerator, model, optimizer, scheduler, progress):
        real_save(self, accelerator, model, optimizer, scheduler, progress)
        if progress["epoch"] == 1:
            raise KeyboardInterrupt("simulated kill after epoch 1")

    monkeypatch.setattr(train_mod._Stage, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(_config(tiny, tmp_path / "b", epochs=3))
    monkeypatch.setattr(train_mod._Stage, "save", real_save)
    resumed = train(_config(tiny, tmp_path / "b", epochs=3))
    a = torch.load(tmp_path / "a/state/main.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "b/state/main.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["best_val_score"] == straight["best_val_score"]
    log = json.loads((tmp_path / "b/log.json").read_text())
    assert [e["epoch"] for e in log] == [0, 1, 2]
    meta = json.loads((tmp_path / "b/forecast.json").read_text())
    counts = np.array(meta["train_counts"])
    assert np.allclose(meta["train_climatology"], counts / counts.sum())


def test_nan_loss_stops_training(tiny, tmp_path, monkeypatch):
    real_build = train_mod.build_model

    def poisoned(*args, **kw):
        model = real_build(*args, **kw)
        torch.nn.init.constant_(model.head.bias, float("nan"))
        return model

    monkeypatch.setattr(train_mod, "build_model", poisoned)
    with pytest.raises(NonFiniteLossError):
        train(_config(tiny, tmp_path / "nan"))
    assert not (tmp_path / "nan/model").exists()


def test_crt_stage_and_evaluate_cli(tiny, tmp_path, capsys):
    ds, _, root = tiny
    out = tmp_path / "crt"
    train(_config(tiny, out, epochs=1, crt_epochs=1, loss=LossConfig(name="focal")))
    assert (out / "model-stage1").is_dir() and (out / "model").is_dir()
    log = json.loads((out / "log.json").read_text())
    assert [e["stage"] for e in log] == ["main", "crt"]
    rc = solargen_main(["forecast", "evaluate", "--checkpoint", str(out), "--data", str(ds.root),
                        "--out", str(tmp_path / "ev"), "--heatmaps", "2"])
    assert rc == 0
    for name in ("metrics.json", "probabilities.csv", "confusion.png", "reliability.png",
                 "attention.png"):
        assert (tmp_path / "ev" / name).is_file(), name
    report = json.loads((tmp_path / "ev/metrics.json").read_text())
    probs = pd.read_csv(tmp_path / "ev/probabilities.csv")
    assert len(probs) == report["scores"]["n"] == len(ds) - 4
    assert np.allclose(probs[["p_<M", "p_>=M"]].sum(axis=1), 1.0, atol=1e-5)
    meta = json.loads((out / "forecast.json").read_text())
    assert report["scores"]["train_rate_ge_m"] == pytest.approx(meta["train_climatology"][1])
    assert "TSS >=M" in capsys.readouterr().out
    # unseen data normalised differently is mapped back to the training normalisation
    other_meta = dict(ds.meta, normalisation={"scaling": "linear", "lo": [-1.0], "hi": [1.0]})
    frames = np.asarray(ds.frames[:300], np.float32) / 2 + 0.5   # same raw brightness
    other = write_dataset(tmp_path / "other", frames, ds.labels.iloc[:300], other_meta, "other\n")
    from forecasting.evaluate import evaluate_checkpoint
    again = evaluate_checkpoint(out, other.root, tmp_path / "ev2", heatmaps=0)
    assert again["renormalised"] and again["scores"]["n"] == 300 - 3
    p2 = pd.read_csv(tmp_path / "ev2/probabilities.csv")
    assert np.allclose(p2["p_>=M"], probs["p_>=M"].iloc[:len(p2)], atol=2e-3)


def test_cv_cli_ssm_over_all_folds(tiny, tmp_path):
    ds, folds, _ = tiny
    cfg = tmp_path / "ssm.yaml"
    cfg.write_text(f"model: ssm\ntask: 4class-24h\nhistory: 6\nepochs: 1\nbatch_size: 32\n"
                   f"lr: 0.002\nmodel_overrides: {json.dumps(TINY_SSM)}\nloss:\n  name: flare\n"
                   f"  ib_start_epoch: 0\n")
    out = tmp_path / "cv"
    rc = solargen_main(["forecast", "cv", "--config", str(cfg), "--data", str(ds.root),
                        "--folds", str(folds), "--out", str(out)])
    assert rc == 0
    summary = json.loads((out / "cv.json").read_text())
    assert set(summary["folds"]) == {"f1", "f2"}
    assert np.isfinite(summary["mean"]["gmgs"])
    table = (out / "cv.md").read_text()
    assert "mean ± std" in table and "| f2 |" in table
    assert (out / "f2/test/metrics.json").is_file()
    # the classical floors stand beside the model, scored on the same folds
    assert set(summary["floors"]) == {"climatology", "persistence", "flux-history", "logistic"}
    assert "| floor: persistence |" in table
    assert summary["floors"]["climatology"]["collapsed_folds"] == ["f1", "f2"]


def test_dry_run_prints_resolved_config(capsys):
    assert solargen_main(["forecast", "train", "--model", "ssm", "--loss", "flare",
                          "--history", "48", "--dry-run"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"] == "ssm" and printed["history"] == 48
    assert printed["loss"]["name"] == "flare"
    # one loader: --set and a config file, typed; a wrong type names the key
    assert solargen_main(["forecast", "train", "--config", "configs/forecast/deit-binary-daily.yaml",
                          "--set", "lr=3e-4", "--dry-run"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["lr"] == pytest.approx(3e-4)
    assert solargen_main(["forecast", "train", "--set", "epochs=many", "--dry-run"]) == 2
    assert "'epochs'" in capsys.readouterr().err


def test_a_new_forecaster_is_one_registered_class(tiny, tmp_path):
    """A toy forecaster defined here, registered by name (no other file touched), trains, saves,
    loads and is evaluated through the same paths as the shipped ones."""
    from diffusers.configuration_utils import ConfigMixin, register_to_config
    from diffusers.models.modeling_utils import ModelMixin

    from forecasting.evaluate import evaluate_checkpoint
    from forecasting.models import MODELS, ForecastOutput, register_forecaster
    from forecasting.checkpoint import load_checkpoint

    @register_forecaster("toy-pool", {"cpu": {"width": 4}})
    class ToyPool(ModelMixin, ConfigMixin):
        sequence = False

        @register_to_config
        def __init__(self, in_channels: int = 1, image_size: int = 16, num_classes: int = 2, width: int = 4):
            super().__init__()
            self.embed = torch.nn.Linear(2 * in_channels, width)
            self.head = torch.nn.Linear(width, num_classes)

        def forward(self, x):
            features = torch.relu(self.embed(torch.cat([x.mean((2, 3)), x.amax((2, 3))], 1)))
            return ForecastOutput(logits=self.head(features), features=features)

    try:
        with pytest.raises(SolargenError, match="registered twice"):
            register_forecaster("toy-pool", {})(ToyPool)
        out = tmp_path / "toy"
        train(_config(tiny, out, model="toy-pool", model_overrides={}, epochs=2))
        meta, model = load_checkpoint(out)
        assert meta["model"] == "toy-pool" and isinstance(model, ToyPool)
        report = evaluate_checkpoint(out, tiny[0].root, tmp_path / "ev", heatmaps=0)
        assert report["scores"]["n"] > 0 and np.isfinite(report["scores"]["bss_ge_m"])
    finally:
        MODELS.pop("toy-pool", None)


def test_flux_history_window_ends_at_the_issue_time():
    """A flare after a frame never reaches that frame's flux history; one before it does, for 24 h."""
    from types import SimpleNamespace

    from forecasting.floors import flux_history
    t = pd.date_range("2012-03-01", periods=60, freq="h", tz="UTC")
    flux = np.full(60, 1e-6)
    flux[30] = 1e-4                                  # an X1 flare at frame 30 only
    ds = SimpleNamespace(times=pd.DatetimeIndex(t), labels=pd.DataFrame({"goes_flux": flux}), root="x")
    planes = flux_history(ds)
    assert (planes[:30] == -0.0).all()               # B1 at issue and over the past day: (−6+6)/2
    assert planes[30, 0] == 1.0 and planes[31, 0] == 0.0
    assert (planes[30:54, 1] == 1.0).all() and (planes[54:, 1] == 0.0).all()


def test_a_floor_containing_model_starts_as_its_floor_and_calibrates_on_validation(tiny, tmp_path, monkeypatch):
    """Image term at zero: the model's probabilities are the flux-history floor's, exactly; the
    temperature is fitted on validation samples only, and T = 1 is the identity."""
    from forecasting import calibration, floors
    from forecasting.fold_data import prepare_data
    from forecasting.models import build_model

    config = _config(tiny, tmp_path / "floor", model="resnet", model_overrides={"channels": [4, 4, 4, 4]},
                     flux_input=True, floor="flux-history", calibration="temperature", sampling="natural")
    prep = prepare_data(config)
    model, record = train_mod.contain_floor(build_model("resnet", "cpu", 3, 16, 2, channels=[4, 4, 4, 4]),
                                            config, prep)
    loader = torch.utils.data.DataLoader(prep.datasets["test"], batch_size=64)
    probs, _ = train_mod.predict(model.eval(), loader)
    estimator = floors.build_floor("flux-history", {})
    estimator.fit(floors.features("flux-history", prep.ds, prep.samples["train"].indices),
                  prep.samples["train"].targets)
    expected = floors.predict_proba(estimator, floors.features("flux-history", prep.ds,
                                                               prep.samples["test"].indices), 2)
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    assert record["fitted_on"] == "train"
    x = next(iter(loader))[0]                        # the trainer's flips and rotations keep the floor
    torch.manual_seed(0)
    np.testing.assert_allclose(model.floor_logits(augment_batch(x, "flips-rotate")),
                               model.floor_logits(x), atol=1e-5)

    seen = []
    fit = calibration.fit_temperature
    monkeypatch.setattr(train_mod, "fit_temperature", lambda p, t: seen.append(len(t)) or fit(p, t))
    meta = train(config)
    assert seen == [len(prep.datasets["val"])]       # validation samples, nothing else
    assert meta["calibration"]["temperature"] > 0 and meta["calibration"]["fitted_on"] == "val"
    assert meta["calibration"]["val_nll_after"] <= meta["calibration"]["val_nll_before"] + 1e-9
    p = np.array([[0.2, 0.8], [0.9, 0.1]])
    assert calibration.apply_temperature(p, 1.0) is not None
    np.testing.assert_array_equal(calibration.apply_temperature(p, 1.0), p)
    with pytest.raises(SolargenError, match="flux_input=true"):
        train(_config(tiny, tmp_path / "bad", model="resnet", floor="flux-history", model_overrides={}))
    # nothing learnt (lr 0): early stopping keeps the contained floor, decided at the base rates
    kept = train(dataclasses.replace(config, out=str(tmp_path / "kept"), lr=0.0, calibration="none",
                                     decision="climatology"))
    assert kept["kept"].startswith("the contained floor") and kept["best_epoch"] == -1
    from forecasting.decision import climatology_thresholds
    assert kept["decision"]["thresholds"] == pytest.approx(climatology_thresholds(prep.climatology))
    assert climatology_thresholds(np.array([0.5, 0.3, 0.15, 0.05])) == pytest.approx([0.5, 0.2, 0.05])


@pytest.mark.slow
def test_the_image_term_learns_a_planted_frame_signal_beyond_the_floor(tiny, tmp_path):
    """The tiny frames carry the coming 24 h maximum (beyond the flux history): over 2 folds x 3
    seeds the floor-containing ResNet beats its own floor on test TSS, the increment's bootstrap
    CI excluding 0."""
    from experiments.ablation_stats import bootstrap_ci
    from forecasting.evaluate import evaluate_checkpoint

    def test_tss(out):
        return evaluate_checkpoint(out, tiny[0].root, out / "test", part="test", heatmaps=0)["scores"]["ge_m"]["tss"]

    increments = []
    for fold in ("f1", "f2"):
        floor = tmp_path / f"floor-{fold}"
        train(_config(tiny, floor, model="flux-history", fold=fold, model_overrides={}))
        for seed in (0, 1, 2):
            out = tmp_path / f"model-{fold}-{seed}"
            train(_config(tiny, out, model="resnet", fold=fold, seed=seed, epochs=4, lr=3e-3,
                          model_overrides={"channels": [8, 8, 8, 8]}, flux_input=True,
                          floor="flux-history", calibration="temperature", sampling="natural"))
            increments.append(test_tss(out) - test_tss(floor))
    low, high = bootstrap_ci(np.array(increments))
    assert low > 0, (increments, low, high)
