"""The diffusion objective as one component: noise schedule, prediction target, loss weighting.

    objective = DiffusionObjective(ObjectiveConfig(prediction_type="v_prediction",
                                                   beta_schedule="squaredcos_cap_v2",
                                                   loss_weighting="min_snr", snr_gamma=5))
    noisy = objective.add_noise(x0, noise, t)
    loss = objective.loss(model(noisy, t), x0, noise, t)

The schedule lives in a diffusers `DDPMScheduler` whose config (betas, T, prediction type) is
saved with the pipeline, so every sampler built from it by `from_config` reads the model's output
the way it was trained. Min-SNR-gamma weighting (Hang et al. 2023) weights each timestep's MSE by
min(SNR, gamma) divided by what the chosen target's MSE is in units of the x0 error: SNR for
epsilon, SNR + 1 for v, 1 for the sample itself.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from solargen.errors import SolargenError

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
LOSS_WEIGHTINGS = ("uniform", "min_snr")


class ObjectiveError(SolargenError):
    """An objective setting the trainer cannot use."""


@dataclass
class ObjectiveConfig:
    """What the denoiser learns to predict, under which noise schedule, with which weighting."""

    prediction_type: str = "v_prediction"     # epsilon | v_prediction | sample
    beta_schedule: str = "squaredcos_cap_v2"  # linear (Ho et al.) | scaled_linear | squaredcos_cap_v2
    rescale_zero_terminal_snr: bool = False   # Lin et al. 2024: alpha_bar at t = T - 1 is exactly 0
    loss_weighting: str = "min_snr"           # uniform | min_snr
    snr_gamma: float = 5.0
    num_train_timesteps: int = 1000

    def check(self) -> None:
        for key, allowed in (("prediction_type", PREDICTION_TYPES), ("beta_schedule", BETA_SCHEDULES),
                             ("loss_weighting", LOSS_WEIGHTINGS)):
            if getattr(self, key) not in allowed:
                raise ObjectiveError(f"objective.{key} must be one of {allowed}, got {getattr(self, key)!r}")
        if self.num_train_timesteps < 2:
            raise ObjectiveError(f"objective.num_train_timesteps must be >= 2, got {self.num_train_timesteps}")
        if not self.snr_gamma > 0:
            raise ObjectiveError(f"objective.snr_gamma must be > 0, got {self.snr_gamma}")
        if self.rescale_zero_terminal_snr and self.prediction_type == "epsilon":
            raise ObjectiveError("objective.rescale_zero_terminal_snr needs v_prediction or sample: at "
                                 "zero terminal SNR an epsilon model cannot recover x0 from pure noise")


def noise_scheduler(cfg: ObjectiveConfig):
    """The training (and default ancestral sampling) scheduler of this objective."""
    from diffusers import DDPMScheduler
    cfg.check()
    return DDPMScheduler(num_train_timesteps=cfg.num_train_timesteps, beta_schedule=cfg.beta_schedule,
                         prediction_type=cfg.prediction_type,
                         rescale_betas_zero_snr=cfg.rescale_zero_terminal_snr,
                         timestep_spacing="trailing" if cfg.rescale_zero_terminal_snr else "leading")


class DiffusionObjective:
    """Forward noising and the weighted regression loss of one `ObjectiveConfig`."""

    def __init__(self, cfg: ObjectiveConfig):
        self.cfg = cfg
        self.scheduler = noise_scheduler(cfg)
        alphas = self.scheduler.alphas_cumprod.double()
        self.snr = (alphas / (1.0 - alphas)).float()      # SNR(t); inf never occurs (alpha_bar < 1)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.scheduler.add_noise(x0, noise, t)

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        kind = self.cfg.prediction_type
        if kind == "epsilon":
            return noise
        if kind == "sample":
            return x0
        return self.scheduler.get_velocity(x0, noise, t)

    def weights(self, t: torch.Tensor) -> torch.Tensor:
        """Per-sample loss weight at timesteps t (all ones for uniform weighting)."""
        if self.cfg.loss_weighting == "uniform":
            return torch.ones(t.shape, dtype=torch.float32, device=t.device)
        snr = self.snr.to(t.device)[t]
        clipped = torch.clamp(snr, max=self.cfg.snr_gamma)
        kind = self.cfg.prediction_type
        if kind == "sample":
            return clipped
        if kind == "v_prediction":
            return clipped / (snr + 1.0)
        # epsilon: min(SNR, gamma) / SNR; at SNR = 0 (only with a rescaled schedule) weight 1
        return torch.where(snr > 0, clipped / snr.clamp_min(1e-20), torch.ones_like(snr))

    def loss(self, model_output: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor,
             t: torch.Tensor) -> torch.Tensor:
        """Weighted mean squared error between the model output and this objective's target."""
        target = self.target(x0, noise, t).float()
        per_sample = F.mse_loss(model_output.float(), target, reduction="none").flatten(1).mean(1)
        return (per_sample * self.weights(t)).mean()
