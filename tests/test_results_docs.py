"""Committed ablation results: summary.json and the README's verdicts are what the report code
generates from each folder's results.json (text and numbers cannot disagree)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = sorted(p.parent for p in (ROOT / "docs" / "results").glob("*-ablation-*/summary.json"))


def _bench():
    spec = importlib.util.spec_from_file_location("ablation_summary", ROOT / "bench" / "ablation_summary.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
