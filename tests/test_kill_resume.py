"""kill -9 at a random point of a long command, then the same command again: the finished result is
the one an uninterrupted run gives, and nothing half-written is taken for a result."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.slow

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONHASHSEED": "0"}


def solargen(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "application", *args], cwd=cwd, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def run_to_end(args: list[str], cwd: Path) -> float:
    tic = time.perf_counter()
    proc = solargen(args, cwd)
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    return time.perf_counter() - tic


def kill_at(args: list[str], cwd: Path, after: float) -> None:
    proc = solargen(args, cwd)
    try:
        proc.wait(timeout=after)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def stable(obj: Any) -> Any:
    """A result without what legitimately differs between runs (wall times, provenance, paths)."""
    if isinstance(obj, dict):
        return {k: stable(v) for k, v in obj.items()
                if k not in ("provenance", "command", "git_commit", "out", "real_dir", "costs", "computed_by",
                              "pipeline")
                and "seconds" not in k}
    if isinstance(obj, list):
        return [stable(v) for v in obj]
    return obj


def assert_kill_anywhere_resumes(tmp_path: Path, make_args, result: str, tries: int = 3) -> None:
    """Reference run into ref/, then `tries` runs each killed at a random moment of the reference's
    duration and rerun to the end; every result file equals the reference's."""
    duration = run_to_end(make_args(tmp_path / "ref"), tmp_path)
    reference = stable(json.loads((tmp_path / "ref" / result).read_text()))
    rng = np.random.default_rng(0)
    for k, fraction in enumerate(rng.uniform(0.15, 0.9, tries)):
        out = tmp_path / f"killed-{k}"
        kill_at(make_args(out), tmp_path, fraction * duration)
        run_to_end(make_args(out), tmp_path)
        again = stable(json.loads((out / result).read_text()))
        assert again == reference, f"try {k} (killed at {fraction:.0%} of the run) differs"


def test_eval_killed_anywhere_resumes_to_the_same_metrics(tmp_path):
    from test_eval import write_eval_inputs
    write_eval_inputs(tmp_path)

    def args(out: Path) -> list[str]:
        return ["eval", "--real", str(tmp_path / "real"), "--generated", str(tmp_path / "gen.npz"),
                "--out", str(out), "--features", "domain", "--set-size", "30", "--n-sets", "3",
                "--epochs", "2", "--latent-dim", "8", "--device", "cpu"]

    assert_kill_anywhere_resumes(tmp_path, args, "metrics.json")


@pytest.fixture(scope="module")
def forecast_data(tmp_path_factory):
    from test_forecast_train import TINY_DEIT
    from test_forecast_train import tiny as tiny_fixture
    ds, folds, root = tiny_fixture.__wrapped__(tmp_path_factory)
    cfg = {"data": str(ds.root), "folds": str(folds), "fold": "f1", "model": "deit", "task": "binary-24h",
           "epochs": 4, "batch_size": 32, "lr": 2e-3, "patience": 5, "augment": "flips-rotate",
           "sampling": "balanced", "model_overrides": dict(TINY_DEIT)}
    (root / "f.yaml").write_text(json.dumps(cfg))
    return root / "f.yaml"


def test_forecast_train_killed_anywhere_resumes_to_the_same_checkpoint(tmp_path, forecast_data):
    assert_kill_anywhere_resumes(
        tmp_path, lambda out: ["forecast", "train", "--config", str(forecast_data), "--out", str(out)],
        "forecast.json")


def test_forecast_cv_killed_anywhere_resumes_to_the_same_table(tmp_path, forecast_data):
    assert_kill_anywhere_resumes(
        tmp_path, lambda out: ["forecast", "cv", "--config", str(forecast_data), "--set", "epochs=2",
                               "--out", str(out)], "cv.json", tries=2)


def test_ablate_killed_anywhere_resumes_to_the_same_results(tmp_path):
    from test_ablation import write_config, write_folds, write_tiny_dataset
    write_tiny_dataset(tmp_path / "ds")
    write_folds(tmp_path / "folds.yaml")
    config = write_config(tmp_path, name="kill", strategies=["none", "synthetic"], n_synthetic=[2],
                          synthetic_sets=1, seeds=[0], floors=["climatology"], cache_dir="")
    assert_kill_anywhere_resumes(
        tmp_path, lambda out: ["ablate", "--config", str(config), "--out", str(out)], "results.json",
        tries=2)
