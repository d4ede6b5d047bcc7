"""bench/conditioning.py: train one model per conditioning kind, read the samples back with networks
trained on real frames, and write conditioning.json, figures and a README that quotes the JSON."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> None:
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_conditioning_models_and_score_on_synthetic_frames(tmp_path):
    data, bundle, work, results = (tmp_path / p for p in ("synthetic", "bundle", "work", "results"))
    _run("-m", "application", "data", "synthetic", "--n", "160", "--size", "16", "--out", str(data))
    _run("bench/gpu_run.py", "bundle", "--dataset", str(data), "--out", str(bundle))
    _run("bench/conditioning.py", "models", "--bundle", str(bundle), "--work", str(work),
         "--config", "configs/ddpm-tiny.yaml", "--kinds", "flux", "class_latent", "--steps", "3",
         "--per-class", "2", "--sample-steps", "2", "--batch", "8",
         "--set", "model.resolution=16", "model.attention_max_resolution=4", "train.batch_size=8",
         "train.warmup_steps=1", "train.latent_epochs=1", "train.checkpoint_every=0")
    trained = json.loads((work / "models.json").read_text())
    assert set(trained["models"]) == {"flux", "class_latent"}
    models = [f"{kind}={work / 'scratch' / kind / 'pipeline'}" for kind in ("flux", "class_latent")]
    _run("bench/conditioning.py", "score", "--bundle", str(bundle), "--results", str(results),
         "--model", *models, "--per-class", "2", "--sample-steps", "2", "--epochs", "1",
         "--work", str(work))
    c = json.loads((results / "conditioning.json").read_text())
    assert set(c["models"]) == {"flux", "class_latent"}
    assert "spearman_flux" in c["models"]["flux"] and "spearman_flux" not in c["models"]["class_latent"]
    for kind, m in c["models"].items():
        assert m["n"] == 2 * len(m["agreement_per_class"]) and 0.0 <= m["agreement"] <= 1.0
        assert (results / c["figures"][f"{kind}-171"]).stat().st_size > 0
    readme = (results / "README.md").read_text()
    assert f"| class + latent | {c['models']['class_latent']['n']} | {c['models']['class_latent']['agreement']:.2f} |" in readme
    assert f"flux only {c['models']['flux']['spearman_flux']:.2f}" in readme
    assert "3 steps of 8" in readme and (results / "models.json").is_file()
