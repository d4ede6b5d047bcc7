"""Every shipped config resolves exactly as it did before configs could inherit (`defaults:`):
the resolved form of each was committed once (tests/resolved_configs/), before the YAML was cut
to its differences. Regenerate only on purpose: `python tests/test_configs.py --write`."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from solargen.config import ConfigError, load_config, shipped_configs, to_yaml

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOTS = Path(__file__).resolve().parent / "resolved_configs"
# configs/accelerate/*.yaml are accelerate's own launcher files, read by `accelerate launch`,
# never by solargen's loader: not ours to resolve.
OWN = sorted(p.relative_to(shipped_configs()).as_posix() for p in shipped_configs().rglob("*.yaml")
             if p.parent.name != "accelerate")


def resolved(name: str) -> str:
    """The resolved form of shipped config `name` (a path under configs/), through the loader
    its command uses."""
    from experiments.ablation import load_ablation_config
    from forecasting.config import load_forecast_config
    from solargen.data.splits import load_folds
    from solargen.diffusion.run_config import RunConfig
    folder = name.split("/")[0] if "/" in name else ""
    if folder == "folds":
        folds = load_folds(f"configs/{name}")
        return json.dumps({"gap_hours": folds.gap_hours, "folds": [
            {"name": f.name, **{p: [str(a), str(b)] for p, (a, b) in f.ranges.items()}}
            for f in folds]}, indent=1) + "\n"
    if folder == "ablation":
        return to_yaml(load_ablation_config(f"configs/{name}"))
    if folder == "forecast":
        return to_yaml(load_forecast_config(f"configs/{name}"))
    assert folder == "", f"{name}: no loader known for configs/{folder}/"
    return to_yaml(load_config(RunConfig, f"configs/{name}"))


def snapshot(name: str) -> Path:
    return SNAPSHOTS / (name.replace("/", "__") + ".txt")


@pytest.mark.parametrize("name", OWN)
def test_shipped_config_resolves_as_before(name):
    assert snapshot(name).is_file(), f"{name}: no committed resolved form (a new config? write it)"
    assert resolved(name) == snapshot(name).read_text(), f"{name} resolves differently than before"


def test_defaults_merge_bases_in_order_under_the_file(tmp_path):
    """Bases merge in list order, recursively, beneath the file; names are found beside the file
    first, then among the shipped configs; a variant holds only its differences."""
    from solargen.diffusion.run_config import RunConfig
    (tmp_path / "a.yaml").write_text("defaults: [ddpm-tiny]\nseed: 3\ntrain: {max_steps: 7}\n")
    (tmp_path / "b.yaml").write_text("train: {max_steps: 9, batch_size: 5}\n")
    (tmp_path / "c.yaml").write_text("defaults: [a, b.yaml]\noutput_dir: runs/c\n")
    cfg = load_config(RunConfig, tmp_path / "c.yaml", ["train.batch_size=6"])
    tiny = load_config(RunConfig, "configs/ddpm-tiny.yaml")
    assert (cfg.seed, cfg.output_dir, cfg.train.max_steps, cfg.train.batch_size) == (3, "runs/c", 9, 6)
    assert cfg.train.learning_rate == tiny.train.learning_rate and cfg.model == tiny.model


@pytest.mark.parametrize("text, message", [
    ("defaults: ddpm-tiny\n", "expected a list of config names"),
    ("defaults: [nowhere-config]\n", "no such config file"),
    ("defaults: [loop]\n", "runs in a circle"),
    ("defaults: [ddpm-tiny]\ntrain: {max_steps: many}\n", "max_steps"),
])
def test_defaults_errors_name_the_file(tmp_path, text, message):
    from solargen.diffusion.run_config import RunConfig
    (tmp_path / "loop.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(RunConfig, tmp_path / "loop.yaml")
    assert "loop.yaml" in str(err.value) or "nowhere-config" in str(err.value)


def test_a_grid_owned_setting_in_an_ablation_base_is_refused(tmp_path):
    from experiments.ablation import AblationError, load_ablation_config
    (tmp_path / "base.yaml").write_text("defaults: [ablation/quickstart]\ntrain: {fold: f2}\n")
    (tmp_path / "child.yaml").write_text("defaults: [base]\nname: child\n")
    with pytest.raises(AblationError, match="fold set by the ablation grid"):
        load_ablation_config(tmp_path / "child.yaml")


def test_the_folds_file_reads_yaml_1_2(tmp_path):
    """The folds file goes through the configs' YAML 1.2 loader: `no` is a string, not false."""
    from solargen.data.splits import SplitError, load_folds
    (tmp_path / "folds.yaml").write_text(
        "gap_hours: 72\nfolds:\n  - name: no\n    train: [2012-01-01, 2012-02-01]\n")
    assert load_folds(tmp_path / "folds.yaml").folds[0].name == "no"
    (tmp_path / "bad.yaml").write_text("gap_hours: [\n")
    with pytest.raises(SplitError, match="bad.yaml"):
        load_folds(tmp_path / "bad.yaml")


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    SNAPSHOTS.mkdir(exist_ok=True)
    for config in OWN:
        snapshot(config).write_text(resolved(config))
        print("wrote", snapshot(config).relative_to(ROOT))
