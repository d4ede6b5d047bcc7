"""The forecaster's config: one dataclass, loaded by solargen.config from configs/forecast/*.yaml
plus `key=value` overrides (printed by --dry-run, stored in forecast.json)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from forecasting.losses import LossConfig
from solargen import config as config_loader
from solargen.errors import SolargenError

SAMPLINGS = ("natural", "balanced")
CALIBRATIONS = ("none", "temperature")
DECISIONS = ("val-tss", "climatology")
MODEL_FLOORS = ("", "flux-history")
AUGMENTS = ("none", "flips-rotate")


class CheckpointError(SolargenError):
    """A checkpoint directory that is missing, too old, or does not fit the data or fold."""


@dataclass
class ForecastConfig:
    """Everything a forecaster's training run depends on (printed by --dry-run, stored in
    forecast.json); loaded by solargen.config.load_config from configs/forecast/*.yaml + overrides."""

    data: str = ""
    out: str = ""
    model: str = "deit"
    size: str = "cpu"
    task: str = "binary-24h"
    folds: str = "configs/folds/2012-rolling.yaml"
    fold: str = ""                      # empty: the first fold of the file
    history: int = 0                    # frames per sample; 0: the model's default
    cadence_hours: float = 1.0
    loss: LossConfig = field(default_factory=LossConfig)
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-4
    ssm_lr_factor: float = 0.1          # S5 Lambda, B, log Delta: lower LR, no weight decay
    weight_decay: float = 0.05
    warmup_steps: int = 0
    patience: int = 5                   # epochs without validation improvement before stopping
    crt_epochs: int = 0                 # > 0: classifier re-training stage (reference: 15)
    crt_lr: float = 1e-5
    min_epochs: int = 0                 # early stopping never ends a run before this epoch
    max_batches: int = 0                # per epoch, 0 = all (quick looks only)
    sampling: str = "natural"           # natural | balanced (every class drawn equally often)
    epoch_samples: int = 0              # draws per epoch; 0: the training set size
    augment: str = "none"               # none | flips-rotate
    cache: bool = True                  # one-frame models: read frames into memory once
    teacher: str = ""                   # deit distillation: CNN checkpoint dir ("{fold}" = fold)
    distill_weight: float = 0.5
    encoder: str = ""                   # sequence models: frame-model checkpoint dir ("{fold}")
    flux_input: bool = False            # one-frame models: + GOES flux known at issue time (2 planes)
    floor: str = ""                     # "flux-history": the model's logit = that floor's (fitted on
                                        # the training split, frozen) + an image term starting at 0
    calibration: str = "none"           # temperature: scaling fitted on validation, saved, applied
    decision: str = "val-tss"           # val-tss: TSS-optimal thresholds on validation; climatology:
                                        # P(>= level) >= its training frequency (calibrated models)
    seed: int = 0
    num_workers: int = 0
    mixed_precision: str = "auto"       # auto: accelerate launch's flag, else bf16 on a GPU, else no
    gradient_accumulation_steps: int = 1
    model_overrides: dict[str, Any] = field(default_factory=dict)  # floors: {"C": ...} (logistic)


def load_forecast_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> ForecastConfig:
    """configs/forecast/*.yaml (or any YAML of ForecastConfig fields) plus `key=value` overrides."""
    return config_loader.load_config(ForecastConfig, path, overrides)
