"""solargen: generative augmentation studio for solar-flare forecasting."""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["SolarDiffusionPipeline", "__version__"]


def __getattr__(name: str) -> Any:
    """`from solargen import SolarDiffusionPipeline` without importing diffusers on `import solargen`."""
    if name == "SolarDiffusionPipeline":
        from solargen.diffusion.pipeline import SolarDiffusionPipeline
        return SolarDiffusionPipeline
    raise AttributeError(f"module 'solargen' has no attribute {name!r}")
