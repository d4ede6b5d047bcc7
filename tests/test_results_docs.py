"""Committed ablation results: summary.json and the README's verdicts are what the report code
generates from each folder's results.json (text and numbers cannot disagree)."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = sorted(p.parent for p in (ROOT / "docs" / "results").glob("*-ablation-*/summary.json"))


def _bench():
    from experiments import ablation_report
    return ablation_report


@pytest.mark.parametrize("folder", FOLDERS, ids=[f.name for f in FOLDERS])
def test_committed_ablation_summary_and_verdicts_match_results_json(folder):
    assert _bench().problems(folder) == []


def test_a_tampered_summary_is_reported(tmp_path):
    import shutil

    from solargen import io
    bench = _bench()
    copy = tmp_path / FOLDERS[-1].name
    shutil.copytree(FOLDERS[-1], copy, ignore=shutil.ignore_patterns("figures"))
    summary = io.read_json(copy / "summary.json")
    first = next(iter(summary["strategies"].values()))
    first["mean_diff"] += 0.1
    io.write_json(copy / "summary.json", summary)
    (copy / "README.md").write_text((copy / "README.md").read_text().replace("no detectable effect", "helps"))
    found = bench.problems(copy)
    assert any("summary.json" in p for p in found) and any("README.md lacks" in p for p in found)


SCALE = sorted(p.parent for p in (ROOT / "docs" / "results").glob("*-data-scale/summary.json"))


@pytest.mark.parametrize("folder", SCALE, ids=[f.name for f in SCALE])
def test_data_scale_readme_is_generated_from_its_summary(folder, tmp_path):
    import shutil
    import subprocess
    import sys
    script = [sys.executable, str(ROOT / "bench" / "data_scale.py"), "report", "--check"]
    assert subprocess.run([*script, str(folder)], capture_output=True).returncode == 0
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    text = (copy / "README.md").read_text()
    first = next(w for w in text.split() if w.replace(",", "").replace(".", "").isdigit() and len(w) > 2)
    (copy / "README.md").write_text(text.replace(first, first + "1", 1))
    checked = subprocess.run([*script, str(copy)], capture_output=True, text=True)
    assert checked.returncode != 0 and "disagrees" in checked.stderr


FLOOR_CV = sorted(p.parent for p in (ROOT / "docs" / "results").glob("*-forecast-cv-cpu-3/summary.json"))


@pytest.mark.parametrize("folder", FLOOR_CV, ids=[f.name for f in FLOOR_CV])
def test_forecast_cv_readme_table_and_increments_follow_from_the_units(folder):
    """README.md is rendered from summary.json, and summary.json's table, increments and targets
    are recomputed from its per-unit rows (a number changed anywhere is caught)."""
    import numpy as np
    import pandas as pd

    from experiments import forecast_cv
    from solargen import io
    summary = io.read_json(folder / "summary.json")
    assert (folder / "README.md").read_text() == forecast_cv.render(summary)
    table = forecast_cv.mean_table(summary["rows"] + summary["ensembles"]).to_dict(orient="records")
    assert pd.DataFrame(table).round(9).equals(pd.DataFrame(summary["table"]).round(9))
    again = [r for task in summary["config"]["tasks"]
             for r in forecast_cv.increments(pd.DataFrame(summary["rows"]), task)]
    for mine, theirs in zip(again, summary["increments"], strict=True):
        assert mine.keys() == theirs.keys()
        for key in mine:
            if isinstance(mine[key], float):
                assert np.isclose(mine[key], theirs[key], equal_nan=True), (key, mine, theirs)
            else:
                assert mine[key] == theirs[key]
    assert forecast_cv.targets({**summary, "table": table}) == summary["targets"]


def test_a_changed_cell_score_or_table_number_is_reported(tmp_path):
    """The checker recomputes from the per-cell scores: one changed cell score, or one changed
    number in a README table row, is found."""
    import shutil

    from solargen import io
    bench = _bench()
    copy = tmp_path / FOLDERS[-1].name
    shutil.copytree(FOLDERS[-1], copy, ignore=shutil.ignore_patterns("figures"))
    results = io.read_json(copy / "results.json")
    cell = next(c for c in results["cells"] if c["cell"]["strategy"] != "none")
    metric = results["config"]["metrics"][0]
    cell["metrics"][metric] += 0.05
    io.write_json(copy / "results.json", results)
    found = bench.problems(copy)
    assert any("recomputed from its cells" in p for p in found), found

    shutil.copy(FOLDERS[-1] / "results.json", copy / "results.json")
    assert bench.problems(copy) == []
    lines = (copy / "README.md").read_text().splitlines()
    k = next(i for i, line in enumerate(lines) if line.startswith("| oversample |"))
    lines[k] = lines[k].replace("0.", "0.9", 1)
    (copy / "README.md").write_text("\n".join(lines) + "\n")
    assert any("table row" in p for p in bench.problems(copy))
