"""Temperature scaling (Guo et al. 2017), fitted on the validation window only.

A forecaster's probabilities p become softmax(log p / T): T > 1 softens over-confident forecasts,
T < 1 sharpens timid ones, T = 1 is the identity. T minimises the negative log-likelihood of the
validation targets; the trainer saves it in forecast.json and every later prediction applies it
to the probabilities it reports (Brier, BSS, reliability); the forecast classes are decided on the
probabilities before scaling, where the decision thresholds were set.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

T_RANGE = (0.05, 20.0)


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """(N, K) probabilities scaled by `temperature` (1: returned unchanged)."""
    probs = np.asarray(probs, dtype=float)
    if temperature == 1.0:
        return probs
    z = np.log(np.clip(probs, 1e-12, 1.0)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(probs: np.ndarray, targets: np.ndarray) -> float:
    """Mean negative log-likelihood of integer `targets` under (N, K) `probs`."""
    picked = np.asarray(probs)[np.arange(len(targets)), np.asarray(targets, dtype=int)]
    return float(-np.mean(np.log(np.clip(picked, 1e-12, 1.0))))


def fit_temperature(probs: np.ndarray, targets: np.ndarray) -> float:
    """The T in T_RANGE minimising the NLL of `targets` (validation samples only)."""
    if len(targets) == 0:
        return 1.0
    result = minimize_scalar(lambda log_t: nll(apply_temperature(probs, float(np.exp(log_t))), targets),
                             bounds=tuple(np.log(T_RANGE)), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(result.x))
