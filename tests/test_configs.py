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


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    SNAPSHOTS.mkdir(exist_ok=True)
    for config in OWN:
        snapshot(config).write_text(resolved(config))
        print("wrote", snapshot(config).relative_to(ROOT))
