"""Shared test fixtures: one torch thread (2-core machines), and the real-data locator."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - torch is a hard dependency; keep conftest importable
    pass

SHARED_DATA = Path(os.environ.get("SOLARGEN_SHARED_DATA",
                                  Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip with the reason when it is absent."""
    if not (SHARED_DATA / "sdo-aia-2012" / "sdo_aia_2012.npz").is_file():
        pytest.skip(f"real 2012 data not found at {SHARED_DATA} (set SOLARGEN_SHARED_DATA); "
                    "CI has it beside the checkout as ../shared/data")
    return SHARED_DATA
