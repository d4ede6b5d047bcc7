"""The diffusion objective (solargen/diffusion/loss.py) and the samplers built from its scheduler."""
from __future__ import annotations

import math

import pytest
import torch

from solargen.diffusion.loss import (PREDICTION_TYPES, DiffusionObjective, ObjectiveConfig,
                                     ObjectiveError)
from solargen.diffusion.pipeline import SAMPLERS, make_scheduler
from solargen.diffusion.run_config import load_config


def _x0_and_noise(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand((3, 1, 8, 8), generator=g) * 1.8 - 0.9          # inside [-1, 1]
    return x0, torch.randn((3, 1, 8, 8), generator=g)


def _x0_seen_by(name: str, scheduler, target: torch.Tensor, t: torch.Tensor,
                noisy: torch.Tensor) -> torch.Tensor:
    """The data prediction a sampler forms from a model output at timestep t."""
    out = scheduler.step(target, t, noisy, generator=torch.Generator().manual_seed(0)) \
        if name == "ddpm" else scheduler.step(target, t, noisy)
    if name in ("ddpm", "ddim"):
        return out.pred_original_sample
    return scheduler.model_outputs[-1]          # multistep solvers keep the converted x0 prediction


def name_has_own_sigmas(sampler: str) -> bool:
    return sampler not in ("ddpm", "ddim")


@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_exact_target_gives_exact_x0_in_every_sampler(prediction_type, sampler):
    objective = DiffusionObjective(ObjectiveConfig(prediction_type=prediction_type))
    scheduler = make_scheduler(sampler, objective.scheduler.config)
    assert scheduler.config.prediction_type == prediction_type
    scheduler.set_timesteps(20)
    index = len(scheduler.timesteps) // 2
    t = scheduler.timesteps[index]
    x0, noise = _x0_and_noise()
    if name_has_own_sigmas(sampler):
        # multistep solvers run on their own noise levels (Karras sigmas lie between the
        # training grid's): noise x0 to exactly the level the solver assumes at this step
        sigma = scheduler.sigmas[index]
        alpha_t, sigma_t = 1 / (sigma ** 2 + 1) ** 0.5, sigma / (sigma ** 2 + 1) ** 0.5
        noisy = alpha_t * x0 + sigma_t * noise
        target = {"epsilon": noise, "sample": x0,
                  "v_prediction": alpha_t * noise - sigma_t * x0}[prediction_type]
    else:
        tt = torch.full((len(x0),), int(t))
        noisy = objective.add_noise(x0, noise, tt)
        target = objective.target(x0, noise, tt)
    torch.testing.assert_close(_x0_seen_by(sampler, scheduler, target, t, noisy), x0,
                               atol=1e-4, rtol=0)


@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
def test_min_snr_weights_equal_the_closed_form(prediction_type):
    """Cosine schedule (Nichol & Dhariwal): alpha_bar(t) = f((t + 1) / T) / f(0),
    f(u) = cos^2((u + s) / (1 + s) * pi / 2), s = 0.008, away from the beta cap near t = T."""
    gamma = 5.0
    objective = DiffusionObjective(ObjectiveConfig(prediction_type=prediction_type,
                                                   beta_schedule="squaredcos_cap_v2",
                                                   loss_weighting="min_snr", snr_gamma=gamma))
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
    t = torch.tensor([0, 50, 250, 500, 800])
    got = objective.weights(t)
    for ti, w in zip(t.tolist(), got.tolist()):
        a = f((ti + 1) / 1000) / f(0)
        snr = a / (1 - a)
        expected = {"epsilon": min(snr, gamma) / snr, "v_prediction": min(snr, gamma) / (snr + 1),
                    "sample": min(snr, gamma)}[prediction_type]
        assert w == pytest.approx(expected, rel=1e-3), (ti, snr)
    # uniform weighting is plain MSE on the target
    uniform = DiffusionObjective(ObjectiveConfig(prediction_type=prediction_type, loss_weighting="uniform"))
    x0, noise = _x0_and_noise()
    tt = torch.tensor([10, 500, 990])
    out = torch.zeros_like(x0)
    assert uniform.loss(out, x0, noise, tt).item() == pytest.approx(
        uniform.target(x0, noise, tt).square().mean().item(), rel=1e-6)


def test_zero_terminal_snr_rescaling_ends_at_pure_noise():
    objective = DiffusionObjective(ObjectiveConfig(prediction_type="v_prediction",
                                                   beta_schedule="linear", rescale_zero_terminal_snr=True))
    alphas = objective.scheduler.alphas_cumprod
    assert alphas[-1].item() == 0.0 and alphas[-2].item() > 0.0
    x0, noise = _x0_and_noise()
    last = torch.full((len(x0),), 999)
    torch.testing.assert_close(objective.add_noise(x0, noise, last), noise)
    assert torch.isfinite(objective.weights(torch.arange(1000))).all()
    with pytest.raises(ObjectiveError, match="rescale_zero_terminal_snr"):
        ObjectiveConfig(prediction_type="epsilon", rescale_zero_terminal_snr=True).check()


def test_bad_objective_settings_name_the_key():
    for key, value in (("prediction_type", "noise"), ("beta_schedule", "cosine"),
                       ("loss_weighting", "p2")):
        with pytest.raises(ObjectiveError, match=f"objective.{key}"):
            DiffusionObjective(ObjectiveConfig(**{key: value}))
    cfg = load_config(None, ["objective.prediction_type=epsilon", "objective.snr_gamma=3"])
    assert cfg.objective.prediction_type == "epsilon" and cfg.objective.snr_gamma == 3
