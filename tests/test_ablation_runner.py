"""The ablation runner: claims, Ray and local executors giving the same cells, a Ray worker killed
mid-cell, two runners on one output directory, and one process only under a launcher."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from experiments.ablation import AblationError, load_ablation_config, plan_cells
from experiments.ablation_runner import Claim, run_ablation
from test_ablation import write_config, write_folds, write_tiny_dataset

pytestmark = pytest.mark.slow
STABLE = ("metrics", "scores", "samples", "classes", "train_class_counts_total", "floor")


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("runner")
    write_tiny_dataset(tmp / "ds")
    write_folds(tmp / "folds.yaml")
    config = write_config(tmp, name="small", strategies=["none", "synthetic"], n_synthetic=[2],
                          synthetic_sets=1, seeds=[0], floors=["climatology"])
    return tmp, config


def cell_results(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))}


def stable(result: dict) -> dict:
    return {k: result[k] for k in STABLE if k in result}


def test_claims_are_exclusive_and_a_dead_holder_is_taken_over(tmp_path):
    first, second = Claim(tmp_path / "x.lock"), Claim(tmp_path / "x.lock")
    assert first.acquire() and not second.acquire()
    first.release()
    assert second.acquire()
    second.release()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "y.lock").write_text(json.dumps({"host": os.uname().nodename, "pid": dead.pid,
                                                 "time": time.time()}))
    assert Claim(tmp_path / "y.lock").acquire()           # its holder is gone


def test_under_a_launcher_the_runner_refuses(grid, monkeypatch):
    tmp, config_file = grid
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(AblationError, match="runs as one process"):
        run_ablation(load_ablation_config(config_file), tmp / "launched", progress=False)


@pytest.fixture(scope="module")
def local_run(grid) -> Path:
    tmp, config_file = grid
    run_ablation(load_ablation_config(config_file), tmp / "local", progress=False)
    return tmp / "local"


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="the Ray executor needs solargen[ray]")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    yield ray
    ray.shutdown()


def test_ray_and_local_executors_give_the_same_cells(grid, local_run, ray_cluster):
    tmp, config_file = grid
    config = load_ablation_config(config_file)
    result = run_ablation(config, tmp / "ray", progress=False, executor="ray")
    assert len(result["ran"]) == len(plan_cells(config))
    local, remote = cell_results(local_run), cell_results(tmp / "ray")
    assert set(local) == set(remote) == {c.id for c in plan_cells(config)}
    for cell_id in local:
        assert stable(remote[cell_id]) == stable(local[cell_id]), cell_id
    assert {r["computed_by"]["pid"] for r in remote.values()} != {os.getpid()}   # ran in workers
    assert (tmp / "ray" / "results.json").is_file() and (tmp / "ray" / "report.md").is_file()


def test_a_worker_killed_mid_cell_is_retried_and_nothing_finished_is_redone(grid, local_run, ray_cluster):
    tmp, config_file = grid
    config = load_ablation_config(config_file)
    out = tmp / "ray-killed"
    victim: dict = {}

    def kill_a_worker():
        deadline = time.time() + 300
        while time.time() < deadline and not victim:
            for lock in (out / "locks").glob("*deit*.lock"):
                try:
                    holder = json.loads(lock.read_text())
                except (OSError, ValueError):
                    continue
                victim.update(cell=lock.stem, pid=holder["pid"],
                              finished={p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")})
                os.kill(holder["pid"], signal.SIGKILL)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_worker)
    killer.start()
    run_ablation(config, out, progress=False, executor="ray")
    killer.join()
    assert victim, "no cell was seen running"
    results = cell_results(out)
    assert set(results) == {c.id for c in plan_cells(config)}
    assert results[victim["cell"]]["computed_by"]["pid"] != victim["pid"]
    assert stable(results[victim["cell"]]) == stable(cell_results(local_run)[victim["cell"]])
    for name, mtime in victim["finished"].items():          # finished before the kill: untouched
        assert (out / "cells" / name).stat().st_mtime_ns == mtime


def test_two_runners_on_one_directory_compute_every_cell_once(grid, local_run):
    tmp, config_file = grid
    out = tmp / "shared"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    procs = [subprocess.Popen([sys.executable, "-m", "application", "ablate", "--config", str(config_file),
                               "--out", str(out)], cwd=tmp, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=900) for p in procs]
    for p, (stdout, stderr) in zip(procs, outputs):
        assert p.returncode == 0, stderr[-3000:]
    ran = [int(re.search(r"cells: (\d+) run now", stdout).group(1)) for stdout, _ in outputs]
    results = cell_results(out)
    config = yaml.safe_load(config_file.read_text())
    assert set(results) == {c.id for c in plan_cells(load_ablation_config(config_file))}
    by_pid = {p.pid: sum(r["computed_by"]["pid"] == p.pid for r in results.values()) for p in procs}
    assert sorted(by_pid.values()) == sorted(ran) and sum(ran) == len(results)   # none twice
    for cell_id, r in results.items():
        assert stable(r) == stable(cell_results(local_run)[cell_id]), (cell_id, config["name"])
