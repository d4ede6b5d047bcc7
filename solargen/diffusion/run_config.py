"""The diffusion training config: one dataclass per component (data, model, objective, train),
loaded by solargen.config from configs/ddpm-*.yaml plus `section.key=value` overrides."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence


from solargen import config
from solargen.config import resolve_mixed_precision
from solargen.diffusion.conditioning import KINDS
from solargen.diffusion.loss import ObjectiveConfig
from solargen.diffusion.pipeline import SAMPLERS, UNetConfig, build_unet
from solargen.errors import SolargenError

CLASS_COLUMNS = ("goes_class", "peak_class", "max_class_24h", "max_class_48h", "max_class_72h")


class TrainError(SolargenError):
    """A training configuration or state that cannot be used."""


@dataclass
class DataConfig:
    """Which frames train the model: one fold's training split of a dataset directory."""

    dataset: str = "data/aia171-2012-64"
    folds: str = "configs/folds/2012-rolling.yaml"
    fold: str = "f1"
    label_column: str = "goes_class"   # or peak_class, max_class_24h, ...; flux = matching *_flux
    drop_stale: bool = True            # frames repeating the previous hour are not new images
    stream: bool = False               # read each step's frames from the dataset (its chunked store
                                       # or frames.npy) in loader workers instead of holding the split
    loader_workers: int = 2            # stream: reader processes (0: read in the training process)


@dataclass
class DiffusionTrainConfig:
    """Optimisation, conditioning, logging and checkpointing."""

    conditioning: str = "class"        # class | flux | both
    p_uncond: float = 0.1              # label dropout for classifier-free guidance
    max_steps: int = 20000
    batch_size: int = 16               # per process and micro-batch
    gradient_accumulation_steps: int = 1   # micro-batches per optimiser step
    learning_rate: float = 3e-4
    weight_decay: float = 1e-2
    warmup_steps: int = 500
    grad_clip: float = 1.0
    ema_decay: float = 0.9999
    ema_power: float = 0.75            # EMA warm-up (diffusers EMAModel): decay grows with steps
    mixed_precision: str = "auto"      # auto (bf16 on a GPU that has it) | no | bf16 | fp16
    balanced_sampling: bool = False    # draw every class equally often
    latent_dim: int = 32               # class_latent: width of the domain-autoencoder latent
    latent_epochs: int = 10            # class_latent: autoencoder training epochs
    channels_last: bool = False        # NHWC memory format (faster convolutions on GPUs)
    compile: bool = False              # torch.compile the UNet (worth it for long GPU runs)
    data_on_device: bool = False       # keep the training frames on the accelerator
    log_every: int = 1                 # log.csv / NaN check every k steps (each is a device sync)
    sample_every: int = 1000           # per-class grids; 0 = never
    samples_per_class: int = 4
    sample_sampler: str = "dpm"
    sample_steps: int = 20
    sample_guidance: float = 1.0
    checkpoint_every: int = 500
    keep_checkpoints: int = 3


@dataclass
class RunConfig:
    output_dir: str = "runs/ddpm"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: UNetConfig = field(default_factory=UNetConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: DiffusionTrainConfig = field(default_factory=DiffusionTrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return config.to_dict(self)


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> RunConfig:
    """YAML file (sections data/model/objective/train) plus `section.key=value` overrides."""
    return config.load_config(RunConfig, path, overrides)


def check_config(cfg: RunConfig) -> None:
    t = cfg.train
    if t.conditioning not in KINDS:
        raise TrainError(f"train.conditioning must be one of {KINDS}, got {t.conditioning!r}")
    if cfg.data.label_column not in CLASS_COLUMNS:
        raise TrainError(f"data.label_column must be one of {CLASS_COLUMNS}, got {cfg.data.label_column!r}")
    if not 0.0 <= t.p_uncond < 1.0:
        raise TrainError(f"train.p_uncond must be in [0, 1), got {t.p_uncond}")
    cfg.objective.check()
    for name in ("max_steps", "batch_size", "keep_checkpoints", "sample_steps", "log_every",
                 "gradient_accumulation_steps"):
        if int(getattr(t, name)) < 1:
            raise TrainError(f"train.{name} must be >= 1, got {getattr(t, name)}")
    if cfg.data.loader_workers < 0:
        raise TrainError(f"data.loader_workers must be >= 0, got {cfg.data.loader_workers}")
    if cfg.data.stream and t.data_on_device:
        raise TrainError("data.stream and train.data_on_device exclude each other: streamed frames "
                         "are read per step, resident ones once")
    if t.sample_sampler not in SAMPLERS:
        raise TrainError(f"train.sample_sampler must be one of {list(SAMPLERS)}")
    if t.mixed_precision not in ("auto", "no", "bf16", "fp16"):
        raise TrainError(f"train.mixed_precision must be auto/no/bf16/fp16, got {t.mixed_precision!r}")


def flux_column(label_column: str) -> str:
    return label_column.replace("class", "flux")



def dry_run(cfg: RunConfig) -> str:
    check_config(cfg)
    text = config.to_yaml(cfg)
    unet = build_unet(cfg.model)
    n_params = sum(p.numel() for p in unet.parameters())
    return (text + f"# UNet {cfg.model.size}: {n_params / 1e6:.2f} M parameters, blocks "
            f"{list(unet.config.down_block_types)}; mixed precision here: "
            f"{resolve_mixed_precision(cfg.train.mixed_precision)}\n")
