"""SolarDiffusionPipeline: a diffusers pipeline of UNet + flare conditioning + noise scheduler.

    pipe = SolarDiffusionPipeline.from_pretrained("runs/ddpm-64-class/pipeline")
    out = pipe(flare_class=["M", "X"], guidance_scale=3, num_inference_steps=20, sampler="dpm",
               generator=torch.Generator().manual_seed(0))
    out.images       # (2, C, H, W) float32 in the data's brightness units (denormalised)
    out.normalised   # (2, C, H, W) float32 in [-1, 1], like dataset frames

The pipeline's config (model_index.json) carries `metadata`: conditioning kind, label columns,
known classes, training fold and dates, and the dataset meta.json the model was trained on (its
normalisation turns outputs back into brightness; its `synthetic` flag says whether the model
learned from synthetic data).
"""
from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from diffusers import (DDIMScheduler, DDPMScheduler, DiffusionPipeline, DPMSolverMultistepScheduler,
                       UNet2DModel, UniPCMultistepScheduler)
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from solargen import io
from solargen.data.dataset import Normalisation, to_uint8
from solargen.data.goes import flux_to_letter
from solargen.diffusion.autoencoder import SolarAutoencoder
from solargen.diffusion.conditioning import ConditioningError, FlareConditioning, encode_labels
from solargen.errors import SolargenError

PIPELINE_FORMAT = "solargen-pipeline"
# Sampler name -> (scheduler class, options over the training scheduler's config). Every sampler is
# built with `from_config` from the model's own scheduler, so it keeps the betas, T and the
# prediction type the model was trained with. The ODE solvers threshold their x0 prediction to the
# [-1, 1] pixel range (as DDPM's clip_sample does).
_THRESHOLD = {"thresholding": True, "sample_max_value": 1.0}
SAMPLERS: dict[str, tuple[type[SchedulerMixin], dict[str, Any]]] = {
    "ddpm": (DDPMScheduler, {}),
    "ddim": (DDIMScheduler, {}),
    "dpm": (DPMSolverMultistepScheduler,                 # DPM-Solver++ 2M
            {"algorithm_type": "dpmsolver++", "solver_order": 2, **_THRESHOLD}),
    "dpm-karras": (DPMSolverMultistepScheduler,          # the same on Karras et al.'s sigmas
                   {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True,
                    **_THRESHOLD}),
    "unipc": (UniPCMultistepScheduler, {"solver_order": 2, **_THRESHOLD}),
}
DEFAULT_STEPS = {"ddpm": 1000, "ddim": 50, "dpm": 20, "dpm-karras": 20, "unipc": 20}

# Named UNet sizes for 64 x 64 (channels per resolution level); 128 x 128 adds one level in front.
UNET_SIZES: dict[str, dict[str, Any]] = {
    "XS": {"block_out_channels": (16, 32, 32, 64), "layers_per_block": 1, "norm_num_groups": 8},
    "S": {"block_out_channels": (32, 64, 128, 128), "layers_per_block": 1, "norm_num_groups": 16},
    "M": {"block_out_channels": (64, 128, 256, 256), "layers_per_block": 2, "norm_num_groups": 32},
    "L": {"block_out_channels": (128, 256, 384, 512), "layers_per_block": 2, "norm_num_groups": 32},
}


class PipelineError(SolargenError):
    """A directory that is not a solargen pipeline, or a sampling request it cannot serve."""


@dataclass
class UNetConfig:
    """The denoiser: a named size, resolution and channel count; attention where the feature map is
    at most `attention_max_resolution` pixels wide (the low-resolution levels)."""

    size: str = "S"
    resolution: int = 64
    channels: int = 1
    attention_max_resolution: int = 16
    dropout: float = 0.0


def build_unet(cfg: UNetConfig) -> UNet2DModel:
    if cfg.size not in UNET_SIZES:
        raise PipelineError(f"unknown UNet size {cfg.size!r}; choose one of {list(UNET_SIZES)}")
    if cfg.resolution < 8 or cfg.resolution & (cfg.resolution - 1):
        raise PipelineError(f"resolution must be a power of two >= 8, got {cfg.resolution}")
    preset = UNET_SIZES[cfg.size]
    channels = tuple(preset["block_out_channels"])
    if cfg.resolution >= 128:
        channels = (channels[0],) + channels
    down, up, res = [], [], cfg.resolution
    for _ in channels:
        attn = res <= cfg.attention_max_resolution
        down.append("AttnDownBlock2D" if attn else "DownBlock2D")
        up.insert(0, "AttnUpBlock2D" if attn else "UpBlock2D")
        res //= 2
    return UNet2DModel(
        sample_size=cfg.resolution, in_channels=cfg.channels, out_channels=cfg.channels,
        block_out_channels=channels, down_block_types=tuple(down), up_block_types=tuple(up),
        layers_per_block=preset["layers_per_block"], norm_num_groups=preset["norm_num_groups"],
        attention_head_dim=8, dropout=cfg.dropout, class_embed_type="identity")


def time_embed_dim(unet: UNet2DModel) -> int:
    return unet.config.time_embedding_dim or unet.config.block_out_channels[0] * 4


def make_scheduler(name: str, config: Any) -> SchedulerMixin:
    """A sampler by name from the training scheduler's config (same betas, same T)."""
    if name not in SAMPLERS:
        raise PipelineError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    cls, options = SAMPLERS[name]
    return cls.from_config(config, **options)


@dataclass
class SolarPipelineOutput(BaseOutput):
    """images: brightness units (or PIL images); normalised: [-1, 1]; conditions per image."""

    images: Any
    normalised: np.ndarray
    flare_class: list[str] = field(default_factory=list)
    goes_flux: list[float] = field(default_factory=list)


class SolarDiffusionPipeline(DiffusionPipeline):
    """Class- and/or flux-conditioned DDPM on full-disk solar images, with classifier-free guidance."""

    model_cpu_offload_seq = "conditioning->unet"
    _optional_components = ["latent_encoder"]

    def __init__(self, unet: UNet2DModel, conditioning: FlareConditioning, scheduler: SchedulerMixin,
                 latent_encoder: SolarAutoencoder | None = None, metadata: dict | None = None):
        super().__init__()
        self.register_modules(unet=unet, conditioning=conditioning, scheduler=scheduler,
                              latent_encoder=latent_encoder)
        self.register_to_config(metadata=metadata or {})

    # ------------------------------------------------------------------ metadata
    @property
    def metadata(self) -> dict:
        return dict(self.config.metadata)

    @property
    def known_classes(self) -> list[str]:
        return list(self.conditioning.config.known_classes)

    @property
    def kind(self) -> str:
        return self.conditioning.config.kind

    @property
    def normalisation(self) -> Normalisation | None:
        norm = self.metadata.get("dataset_meta", {}).get("normalisation")
        return Normalisation.from_dict(norm) if norm else None

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs) -> "SolarDiffusionPipeline":
        """Load a pipeline directory; anything that is not a solargen pipeline is a clear error."""
        check_pipeline_dir(pretrained_model_name_or_path)
        kwargs.setdefault("local_files_only", True)
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    # ------------------------------------------------------------------ denoising
    def guided_output(self, sample: torch.Tensor, t: torch.Tensor, cond: torch.Tensor,
                      null: torch.Tensor | None, guidance_scale: float) -> torch.Tensor:
        """Classifier-free guidance on the model output (epsilon, v or x0 alike: all are affine in
        the conditional score): out_u + s (out_c - out_u), both passes in one doubled batch;
        without a null embedding it is the plain conditional pass."""
        if null is None:
            return self.unet(sample, t, class_labels=cond).sample
        both = self.unet(torch.cat([sample, sample]), t, class_labels=torch.cat([null, cond])).sample
        out_u, out_c = both.chunk(2)
        return out_u + guidance_scale * (out_c - out_u)

    @torch.no_grad()
    def __call__(self, flare_class: Sequence[str] | None = None,
                 goes_flux: Sequence[float] | None = None, batch_size: int | None = None,
                 guidance_scale: float = 1.0, num_inference_steps: int | None = None,
                 sampler: str | None = None,
                 generator: torch.Generator | list[torch.Generator] | None = None,
                 output_type: str = "np", return_dict: bool = True,
                 latent: np.ndarray | torch.Tensor | None = None,
                 reference_frames: np.ndarray | torch.Tensor | None = None) -> SolarPipelineOutput | tuple:
        """Sample one image per condition (or `batch_size` unconditional images when no condition
        is given). `sampler` (a name in SAMPLERS) swaps the scheduler for this call; default is the
        pipeline's own. Guidance scale 1 is the plain conditional model.

        A class+latent model also takes `latent` (N, latent_dim), or `reference_frames`
        (N, C, H, W) in [-1, 1] whose latents its autoencoder computes; with neither, each image's
        latent is drawn from its class's training distribution (with that image's generator)."""
        flare_class = _as_list(flare_class, "flare_class")
        goes_flux = _as_list(goes_flux, "goes_flux")
        scheduler = make_scheduler(sampler, self.scheduler.config) if sampler else self.scheduler
        steps = DEFAULT_STEPS[sampler or "ddpm"] if num_inference_steps is None else num_inference_steps
        check_steps(steps, self.scheduler.config.num_train_timesteps)
        if not np.isfinite(guidance_scale) or guidance_scale < 0:
            raise PipelineError(f"guidance_scale must be a finite number >= 0, got {guidance_scale!r}")
        if output_type not in ("np", "pt", "pil"):
            raise PipelineError(f"output_type must be 'np', 'pt' or 'pil', got {output_type!r}")

        unconditional = flare_class is None and goes_flux is None
        if unconditional:
            n = batch_size or 1
            cond = self.conditioning.null_embedding(n)
            null = None
        else:
            class_index, log_flux = encode_labels(self.conditioning, flare_class, goes_flux)
            n = len(class_index if class_index is not None else log_flux)
            if batch_size is not None and batch_size != n:
                raise PipelineError(f"batch_size {batch_size} but {n} conditions were given")
            latents = self._latents(class_index, latent, reference_frames, generator)
            cond = self.conditioning(class_index, log_flux, latent=latents)
            null = self.conditioning.null_embedding(n) if guidance_scale != 1.0 else None
        if isinstance(generator, list) and len(generator) != n:
            raise PipelineError(f"{len(generator)} generators for {n} images")

        unet_dtype = self.unet.dtype
        cond = cond.to(unet_dtype)
        null = null.to(unet_dtype) if null is not None else None
        shape = (n, self.unet.config.in_channels, self.unet.config.sample_size,
                 self.unet.config.sample_size)
        x = randn_tensor(shape, generator=generator, device=self._execution_device, dtype=unet_dtype)
        scheduler.set_timesteps(steps, device=self._execution_device)
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(0)   # repeated timesteps (Karras sigmas) must not shift the start
        x = x * scheduler.init_noise_sigma
        step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
        for t in self.progress_bar(scheduler.timesteps):
            model_input = scheduler.scale_model_input(x, t)
            output = self.guided_output(model_input, t, cond, null, guidance_scale)
            x = scheduler.step(output, t, x, **step_kwargs).prev_sample

        normalised = x.clamp(-1, 1).float()
        labels = list(flare_class) if flare_class is not None else (
            [flux_to_letter(f) for f in goes_flux] if goes_flux is not None and self.kind == "both" else [""] * n)
        fluxes = [float(f) for f in goes_flux] if goes_flux is not None else [float("nan")] * n
        if output_type == "pt":
            images: Any = normalised
        else:
            arr = normalised.cpu().numpy()
            images = self.to_brightness(arr) if output_type == "np" else to_pil(arr)
        out = SolarPipelineOutput(images=images, normalised=normalised.cpu().numpy(),
                                  flare_class=labels, goes_flux=fluxes)
        return out if return_dict else (images,)

    def _latents(self, class_index: torch.Tensor, latent: Any, reference_frames: Any,
                 generator: torch.Generator | list[torch.Generator] | None) -> torch.Tensor | None:
        if not self.conditioning.uses_latent:
            if latent is not None or reference_frames is not None:
                raise PipelineError(f"this {self.kind} model takes no latent or reference frames")
            return None
        if latent is not None and reference_frames is not None:
            raise PipelineError("give latent or reference_frames, not both")
        dim, n = self.conditioning.config.latent_dim, len(class_index)
        if reference_frames is not None:
            if self.latent_encoder is None:
                raise PipelineError("this pipeline has no latent encoder to read reference frames")
            frames = torch.as_tensor(np.asarray(reference_frames, dtype=np.float32))
            if frames.ndim != 4 or len(frames) != n or not torch.isfinite(frames).all():
                raise PipelineError(f"reference_frames must be {n} finite (C, H, W) frames, got shape "
                                    f"{tuple(frames.shape)}")
            latent = self.latent_encoder.encode(frames.to(self.latent_encoder.device))
        if latent is not None:
            latent = torch.as_tensor(latent, dtype=torch.float32)
            if latent.shape != (n, dim) or not torch.isfinite(latent).all():
                raise PipelineError(f"latent must be {n} x {dim} finite values, got shape {tuple(latent.shape)}")
            return latent.to(self._execution_device)
        eps = randn_tensor((n, dim), generator=generator, device=self._execution_device, dtype=torch.float32)
        return self.conditioning.draw_latents(class_index, eps)

    def to_brightness(self, normalised: np.ndarray) -> np.ndarray:
        """[-1, 1] -> the training data's brightness units (its meta.json normalisation)."""
        norm = self.normalisation
        if norm is None:
            raise PipelineError("this pipeline's metadata has no dataset normalisation; use "
                                "output_type='pt' or the `normalised` field")
        return norm.denormalise(normalised)


def to_pil(normalised: np.ndarray) -> list:
    """(N, C, H, W) in [-1, 1] -> PIL images (grey for one channel, RGB for three)."""
    from PIL import Image
    if normalised.shape[1] not in (1, 3):
        raise PipelineError(f"PIL output needs 1 or 3 channels, these images have {normalised.shape[1]}")
    return [Image.fromarray(im[0] if im.shape[0] == 1 else im.transpose(1, 2, 0))
            for im in to_uint8(normalised)]


def check_steps(steps: int, num_train_timesteps: int) -> None:
    if not isinstance(steps, (int, np.integer)) or steps < 1 or steps > num_train_timesteps:
        raise PipelineError(f"number of sampling steps must be an integer in 1..{num_train_timesteps}, "
                            f"got {steps!r}")


def check_pipeline_dir(path: str | Path) -> Path:
    """Raise PipelineError unless `path` holds a saved SolarDiffusionPipeline (first undoing a
    replacement of it that a kill interrupted)."""
    path = io.recover_dir(path)
    index = path / "model_index.json"
    if not path.is_dir():
        raise PipelineError(f"{path}: no such model directory")
    if not index.is_file():
        raise PipelineError(f"{path}: not a solargen pipeline (no model_index.json; train one with "
                            "`solargen train`)")
    try:
        config = json.loads(index.read_text())
    except json.JSONDecodeError as exc:
        raise PipelineError(f"{index}: unreadable pipeline index ({exc})") from None
    if config.get("_class_name") != SolarDiffusionPipeline.__name__ or \
            config.get("metadata", {}).get("format") != PIPELINE_FORMAT:
        raise PipelineError(f"{path}: not a solargen pipeline (model_index.json describes "
                            f"{config.get('_class_name')!r})")
    for part in ("unet", "conditioning", "scheduler"):
        if not (path / part).is_dir():
            raise PipelineError(f"{path}: incomplete solargen pipeline ({part}/ is missing)")
    return path


def _as_list(values: Any, name: str) -> list | None:
    if values is None:
        return None
    if isinstance(values, (str, float, int)):
        values = [values]
    values = list(values)
    if not values:
        raise ConditioningError(f"{name} is empty")
    return values
