"""Diffusion training on two real processes (gloo on the CPU, through torchrun) equals one process
with the same global batch, with or without gradient accumulation."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
import torch

from solargen import config, io
from solargen.diffusion.pipeline import SolarDiffusionPipeline
from test_diffusion import make_dataset, tiny_config

pytestmark = pytest.mark.slow


def _train(cfg_file: Path, overrides: list[str], processes: int, cwd: Path) -> subprocess.CompletedProcess:
    head = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
             str(processes)] if processes > 1 else [sys.executable])
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [*head, "-m", "solargen.train", "--config", str(cfg_file)]
    for item in overrides:
        cmd += ["--set", item]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("ddp")
    cfg = tiny_config(tmp, make_dataset(tmp / "ds", n_train=40), out="unused", max_steps=6,
                      checkpoint_every=3, keep_checkpoints=1, warmup_steps=2, learning_rate=2e-3)
    cfg_file = tmp / "tiny.yaml"
    cfg_file.write_text(config.to_yaml(cfg))
    layouts = {"one": (1, ["train.batch_size=8"]),
               "accumulated": (1, ["train.batch_size=4", "train.gradient_accumulation_steps=2"]),
               "two": (2, ["train.batch_size=4"])}
    out = {}
    for name, (processes, overrides) in layouts.items():
        run = _train(cfg_file, [f"output_dir={tmp / name}", *overrides], processes, tmp)
        assert run.returncode == 0, f"{name}:\n{run.stderr[-4000:]}"
        out[name] = tmp / name
    return out


def test_two_ranks_really_ran(runs):
    assert io.read_json(runs["two"] / "data_summary.json")["processes"] == 2
    assert io.read_json(runs["one"] / "data_summary.json")["processes"] == 1
    for name in runs:
        assert io.read_json(runs[name] / "data_summary.json")["global_batch"] == 8


def test_lr_curve_and_losses_match_one_process(runs):
    logs = {name: pd.read_csv(path / "log.csv") for name, path in runs.items()}
    one = logs["one"]
    assert one["lr"].iloc[-1] < 1e-4 * one["lr"].max()          # the cosine ends where it should
    for name in ("accumulated", "two"):
        np.testing.assert_allclose(logs[name]["lr"], one["lr"], rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(logs[name]["loss"], one["loss"], rtol=1e-4, err_msg=name)


def test_final_weights_agree_and_artefacts_are_written_once(runs):
    weights = {name: SolarDiffusionPipeline.from_pretrained(path / "pipeline").unet.state_dict()
               for name, path in runs.items()}
    for name in ("accumulated", "two"):
        for key, value in weights["one"].items():
            torch.testing.assert_close(weights[name][key], value, atol=2e-5, rtol=1e-4, msg=f"{name} {key}")
    checkpoints = sorted(p.name for p in (runs["two"] / "checkpoints").iterdir())
    assert checkpoints == ["step-0000006"]                      # keep_checkpoints=1, no leftovers
    assert len(list(runs["two"].glob("config.yaml"))) == 1
    assert len(pd.read_csv(runs["two"] / "log.csv")) == 6         # one row per step, not per rank


# ----------------------------------------------------------------------------- forecasters

def _forecast(args: list[str], processes: int, cwd: Path) -> subprocess.CompletedProcess:
    head = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
             str(processes)] if processes > 1 else [sys.executable])
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([*head, "-m", "application", "forecast", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def forecasts(tmp_path_factory) -> dict[str, Path]:
    from test_forecast_train import TINY_DEIT
    from test_forecast_train import tiny as tiny_fixture
    tmp = tmp_path_factory.mktemp("ddp-forecast")
    ds, folds, _ = tiny_fixture.__wrapped__(tmp_path_factory)
    cfg = {"data": str(ds.root), "folds": str(folds), "fold": "f1", "model": "deit", "task": "binary-24h",
           "epochs": 2, "lr": 2e-3, "warmup_steps": 2, "patience": 5, "augment": "none",
           "sampling": "balanced", "epoch_samples": 256, "model_overrides": dict(TINY_DEIT)}
    (tmp / "f.yaml").write_text(yaml.safe_dump(cfg))
    out = {}
    for name, processes, batch, extra in (("one", 1, 32, []), ("two", 2, 16, []),
                                          ("crt", 2, 16, ["--set", "crt_epochs=1"])):
        run = _forecast(["train", "--config", str(tmp / "f.yaml"), "--batch-size", str(batch),
                         "--out", str(tmp / name), *extra], processes, tmp)
        assert run.returncode == 0, f"{name}:\n{run.stderr[-4000:]}"
        out[name] = tmp / name
    cv = _forecast(["cv", "--config", str(tmp / "f.yaml"), "--batch-size", "16", "--fold-names", "f1",
                    "--no-floors", "--out", str(tmp / "cv")], 2, tmp)
    assert cv.returncode == 0, cv.stderr[-4000:]
    out["cv"] = tmp / "cv"
    return out


def test_forecaster_on_two_ranks_matches_one(forecasts):
    one = io.read_json(forecasts["one"] / "log.json")
    two = io.read_json(forecasts["two"] / "log.json")
    np.testing.assert_allclose([e["lr"] for e in two], [e["lr"] for e in one], rtol=1e-6)
    np.testing.assert_allclose([e["train_loss"] for e in two], [e["train_loss"] for e in one], rtol=1e-3)
    from forecasting.checkpoint import load_checkpoint
    w1 = load_checkpoint(forecasts["one"])[1].state_dict()
    w2 = load_checkpoint(forecasts["two"])[1].state_dict()
    for key, value in w1.items():
        torch.testing.assert_close(w2[key], value, atol=1e-4, rtol=1e-3, msg=key)


def test_crt_runs_under_ddp_and_each_artefact_is_written_once(forecasts):
    crt = io.read_json(forecasts["crt"] / "forecast.json")
    assert "crt" in crt and any(e["stage"] == "crt" for e in io.read_json(forecasts["crt"] / "log.json"))
    assert sorted(p.name for p in forecasts["cv"].glob("cv.*")) == ["cv.json", "cv.md"]
    assert sorted(p.name for p in forecasts["cv"].iterdir() if p.name.startswith(".")) == []
    assert (forecasts["cv"] / "f1" / "forecast.json").is_file()
