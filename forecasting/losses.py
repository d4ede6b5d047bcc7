"""Forecaster losses (../shared/spec/metrics.md). Every loss takes LOGITS (N, K), applies the
softmax exactly once (as log_softmax, exponentiated where probabilities are needed), and raises
`NonFiniteLossError` instead of returning a NaN or infinite value.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from forecasting.metrics import gmgs_matrix
from solargen.errors import SolargenError

LOSSES = ("ce", "wce", "focal", "gmgs-bs", "ib", "flare")
CLASS_WEIGHTINGS = ("reference", "inverse", "effective", "none")


class NonFiniteLossError(SolargenError):
    """A loss evaluated to NaN or infinity: training stops instead of skipping the batch."""


def class_weights(counts: np.ndarray, scheme: str, beta: float = 0.999) -> np.ndarray:
    """Per-class weights from training counts n_k.

    reference: 0.1 below M / 0.9 for >= M (binary tasks only, the reference DeiT experiment);
    inverse: w_k = (1/n_k) / sum_j (1/n_j) * K; effective: w_k ∝ (1-beta)/(1-beta^n_k), scaled to
    sum K; none: all ones. Classes with no training frame count as n_k = 1.
    """
    n = np.maximum(np.asarray(counts, dtype=float), 1.0)
    k = len(n)
    if scheme == "reference":
        if k != 2:
            raise SolargenError("the 0.1/0.9 reference weights are defined for binary tasks only")
        return np.array([0.1, 0.9])
    if scheme == "inverse":
        inv = 1.0 / n
        return inv / inv.sum() * k
    if scheme == "effective":
        w = (1.0 - beta) / (1.0 - beta ** n)
        return w / w.sum() * k
    if scheme == "none":
        return np.ones(k)
    raise SolargenError(f"unknown class weighting {scheme!r}; choose one of {CLASS_WEIGHTINGS}")


def _check(value: torch.Tensor, name: str) -> torch.Tensor:
    if not torch.isfinite(value).all():
        raise NonFiniteLossError(f"{name} loss is {value.detach().cpu().numpy()} (non-finite); "
                                 "training stopped instead of skipping the batch")
    return value


@dataclass
class LossConfig:
    """Loss choice and its parameters (defaults are the reference settings in metrics.md)."""

    name: str = "wce"
    class_weighting: str = "auto"      # auto: reference for binary tasks, inverse for 4-class
    focal_alpha: float = 0.4
    focal_gamma: float = 2.0
    effective_beta: float = 0.999
    ib_start_epoch: int = -1           # -1: halfway through training


class ForecastLoss(torch.nn.Module):
    """One loss from LOSSES, built from training-set class counts.

    Call as loss(logits, targets, features); `features` (N, F) are the penultimate features, used
    by the influence-balanced term only. `set_epoch` switches IB on after its CE warm-up.
    """

    def __init__(self, config: LossConfig, train_counts: np.ndarray, total_epochs: int):
        super().__init__()
        self.config = config
        if config.name not in LOSSES:
            raise SolargenError(f"unknown loss {config.name!r}; choose one of {LOSSES}")
        k = len(train_counts)
        scheme = config.class_weighting
        if scheme == "auto":
            scheme = "reference" if k == 2 else "inverse"
        weights = class_weights(train_counts, scheme, config.effective_beta)
        inverse = class_weights(train_counts, "inverse")
        counts = np.asarray(train_counts, dtype=float)
        clim = np.maximum(counts, 1.0) / np.maximum(counts, 1.0).sum()
        self.register_buffer("weights", torch.tensor(weights, dtype=torch.float32))
        self.register_buffer("inverse_weights", torch.tensor(inverse, dtype=torch.float32))
        self.register_buffer("gmgs_diag",
                             torch.tensor(np.diag(gmgs_matrix(clim)), dtype=torch.float32))
        self.ib_start_epoch = (config.ib_start_epoch if config.ib_start_epoch >= 0
                               else total_epochs // 2)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def prior_weights(self) -> np.ndarray:
        """Per-class loss weights that tilt the learned class prior (weighted CE; else ones)."""
        if self.config.name == "wce":
            return self.weights.cpu().numpy().astype(float)
        return np.ones(len(self.weights))

    @property
    def ib_active(self) -> bool:
        return self.epoch >= self.ib_start_epoch

    def forward(self, logits: torch.Tensor, targets: torch.Tensor,
                features: torch.Tensor | None = None) -> torch.Tensor:
        logp = F.log_softmax(logits.float(), dim=-1)      # the one softmax
        name = self.config.name
        if name == "ce":
            loss = F.nll_loss(logp, targets)
        elif name == "wce":
            loss = weighted_ce(logp, targets, self.weights)
        elif name == "focal":
            loss = focal(logp, targets, self.config.focal_alpha, self.config.focal_gamma,
                         None if logits.shape[-1] == 2 else self.weights)
        elif name == "gmgs-bs":
            loss = (F.nll_loss(logp, targets) + gmgs_ce(logp, targets, self.gmgs_diag)
                    + 2.0 * brier(logp, targets))
        elif name == "ib":
            loss = (influence_balanced(logp, targets, features, self.weights) if self.ib_active
                    else F.nll_loss(logp, targets))
        else:  # flare
            ib = (influence_balanced(logp, targets, features, self.inverse_weights)
                  if self.ib_active else F.nll_loss(logp, targets))
            loss = (1.5 * ib + 1.5 * gmgs_ce(logp, targets, self.gmgs_diag)
                    + 2.5 * brier(logp, targets, self.inverse_weights))
        return _check(loss, name)


def weighted_ce(logp: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """mean_n w_{y_n} (-log p_{n,y_n}) (a plain mean over samples, not normalised by sum w)."""
    nll = -logp.gather(1, targets[:, None]).squeeze(1)
    return (weights[targets] * nll).mean()


def focal(logp: torch.Tensor, targets: torch.Tensor, alpha: float, gamma: float,
          class_alpha: torch.Tensor | None = None) -> torch.Tensor:
    """FL = -alpha_t (1 - p_t)^gamma log p_t; binary alpha_t = alpha for positives, 1 - alpha for
    negatives; multi-class alpha_t = class_alpha[y] (or 1)."""
    logp_t = logp.gather(1, targets[:, None]).squeeze(1)
    p_t = logp_t.exp()
    if class_alpha is None:
        alpha_t = torch.where(targets == 1, alpha, 1.0 - alpha).to(logp.dtype)
    else:
        alpha_t = class_alpha[targets]
    return (-alpha_t * (1.0 - p_t).pow(gamma) * logp_t).mean()


def brier(logp: torch.Tensor, targets: torch.Tensor,
          weights: torch.Tensor | None = None) -> torch.Tensor:
    """mean_n [w_{y_n}] sum_k (p_nk - y_nk)^2, on probabilities."""
    onehot = F.one_hot(targets, logp.shape[-1]).to(logp.dtype)
    per = ((logp.exp() - onehot) ** 2).sum(dim=1)
    return (per if weights is None else weights[targets] * per).mean()


def gmgs_ce(logp: torch.Tensor, targets: torch.Tensor, diag: torch.Tensor) -> torch.Tensor:
    """-mean_n s_{y_n y_n} log p_{n,y_n}, S from the training climatology."""
    return weighted_ce(logp, targets, diag)


def influence_balanced(logp: torch.Tensor, targets: torch.Tensor, features: torch.Tensor | None,
                       weights: torch.Tensor) -> torch.Tensor:
    """mean_n w_y CE_n / (||softmax(z_n) - onehot(y_n)||_1 * ||h_n||_1 + 1e-3)."""
    if features is None:
        raise SolargenError("the influence-balanced loss needs the model's penultimate features")
    onehot = F.one_hot(targets, logp.shape[-1]).to(logp.dtype)
    grad_norm = (logp.exp() - onehot).abs().sum(dim=1)
    feat_norm = features.float().abs().sum(dim=1)
    nll = -logp.gather(1, targets[:, None]).squeeze(1)
    return (weights[targets] * nll / (grad_norm * feat_norm + 1e-3)).mean()


class Distillation(torch.nn.Module):
    """DeiT hard distillation (Touvron et al. 2021): the class head learns the task loss, the
    distillation head learns the teacher's forecasts,

        L = (1 - weight) * task(logits, y) + weight * CE(distill_logits, teacher_forecast(x)),

    where teacher_forecast applies the teacher's saved decision thresholds to its probabilities.
    The teacher is frozen (no gradients, eval mode, never updated); weight 0 is the task loss.
    """

    def __init__(self, task_loss: ForecastLoss, teacher: torch.nn.Module, weight: float,
                 teacher_forecast):
        super().__init__()
        if not 0.0 <= weight <= 1.0:
            raise SolargenError(f"distillation weight must lie in [0, 1], got {weight}")
        self.task_loss, self.weight, self.teacher_forecast = task_loss, weight, teacher_forecast
        self.teacher = teacher.eval().requires_grad_(False)

    def set_epoch(self, epoch: int) -> None:
        self.task_loss.set_epoch(epoch)

    def train(self, mode: bool = True) -> "Distillation":
        super().train(mode)
        self.teacher.eval()                 # batch norm statistics and dropout stay frozen
        return self

    def forward(self, out, targets: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        task = self.task_loss(out.logits, targets, out.features)
        if self.weight == 0.0:
            return task
        if out.distill_logits is None:
            raise SolargenError("distillation needs a model with a distillation head in training "
                                "mode (deit with distilled=True)")
        with torch.no_grad():
            labels = self.teacher_forecast(self.teacher(inputs).logits)
        distill = F.cross_entropy(out.distill_logits.float(), labels)
        return _check((1.0 - self.weight) * task + self.weight * distill, "distillation")
