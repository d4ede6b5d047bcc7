"""From class probabilities to a forecast: decision thresholds and collapse detection.

A forecaster outputs probabilities (N, K) over ordered classes. Its forecast is the largest class
k whose cumulative probability P(class >= k) reaches the threshold t_k (class 0 when none does):
for binary tasks one threshold on p(>= M); for O/C/M/X one threshold per event level >= C, >= M,
>= X. Each t_k is the TSS-optimal threshold for the event "class >= k" on the data it is chosen
on (the validation window for trained models): the point of the ROC curve (sklearn `roc_curve`)
with the largest hit rate minus false-alarm rate, placed halfway to the next lower score (the
same forecasts on the choosing data, and a margin for new data). Since GMGS with the evaluated set's own
climatology equals the mean of those threshold TSS values (metrics.md), the same rule serves
4-class tasks. A level with no event, or no non-event, in the choosing data gets t_k = 0.5.

A forecast is `collapsed` when every sample gets the same class: a constant forecast, whatever
its scores say.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_curve

UNDECIDABLE_THRESHOLD = 0.5


def event_probabilities(probs: np.ndarray) -> np.ndarray:
    """P(class >= k) for k = 1..K-1: (N, K-1)."""
    p = np.asarray(probs, dtype=float)
    return np.cumsum(p[:, ::-1], axis=1)[:, ::-1][:, 1:]


def tss_optimal_threshold(event: np.ndarray, score: np.ndarray) -> float:
    """The threshold t maximising TSS of the forecast `score >= t` for the 0/1 `event`."""
    event = np.asarray(event, dtype=int)
    if event.min(initial=1) == event.max(initial=0):
        return UNDECIDABLE_THRESHOLD
    fpr, tpr, thresholds = roc_curve(event, score, drop_intermediate=False)
    best = int(np.argmax(tpr - fpr))
    if best == 0 or best + 1 == len(thresholds):
        return float(thresholds[best])
    return float((thresholds[best] + thresholds[best + 1]) / 2)


def choose_thresholds(probs: np.ndarray, targets: np.ndarray) -> list[float]:
    """One TSS-optimal threshold per event level k = 1..K-1 (see the module doc)."""
    cum = event_probabilities(probs)
    targets = np.asarray(targets, dtype=int)
    return [tss_optimal_threshold(targets >= k + 1, cum[:, k]) for k in range(cum.shape[1])]


def climatology_thresholds(climatology: np.ndarray) -> list[float]:
    """P(>= level k) >= the training frequency of >= k: for calibrated probabilities the TSS-optimal
    rule (a forecast beats climatology exactly where its likelihood ratio exceeds 1), and one that
    needs no events in the validation window."""
    return [float(t) for t in event_probabilities(np.asarray(climatology, dtype=float)[None, :])[0]]


def decide(probs: np.ndarray, thresholds: list[float]) -> np.ndarray:
    """The forecast class of each sample: the largest k with P(>= k) >= t_k, else 0."""
    passed = event_probabilities(probs) >= np.asarray(thresholds, dtype=float)[None, :]
    levels = np.arange(1, passed.shape[1] + 1)
    return np.max(np.where(passed, levels[None, :], 0), axis=1, initial=0)


def is_collapsed(forecast: np.ndarray) -> bool:
    """True when every forecast is the same class."""
    return len(np.unique(np.asarray(forecast))) <= 1
