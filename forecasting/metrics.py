"""Forecast verification scores, exactly as defined in ../shared/spec/metrics.md.

Contingency tables have rows = observed class and columns = forecast class. Flare classes are
ordered O < C < M < X for 4-class tasks and (<M, >=M) for binary ones.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm

from solargen.errors import SolargenError

from forecasting.decision import is_collapsed


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts (K, K), rows = observed, columns = forecast."""
    return skm.confusion_matrix(np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int),
                                labels=np.arange(num_classes)).astype(np.int64)


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def binary_scores(cm: np.ndarray) -> dict[str, float]:
    """TSS, HSS, recall, precision, accuracy, F1 from a 2x2 table (row/col 1 = event)."""
    tn, fp, fn, tp = (float(v) for v in np.asarray(cm).ravel())
    recall = _ratio(tp, tp + fn)
    far = _ratio(fp, fp + tn)
    precision = _ratio(tp, tp + fp)
    hss_den = (tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)
    return {
        "tss": recall - far,
        "hss": _ratio(2.0 * (tp * tn - fn * fp), hss_den),
        "recall": recall,
        "precision": precision,
        "accuracy": _ratio(tp + tn, tp + tn + fp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
    }


def threshold_table(cm: np.ndarray, k: int) -> np.ndarray:
    """Collapse a K x K table to the binary event 'class >= k'."""
    cm = np.asarray(cm)
    neg, pos = slice(0, k), slice(k, None)
    return np.array([[cm[neg, neg].sum(), cm[neg, pos].sum()],
                     [cm[pos, neg].sum(), cm[pos, pos].sum()]])


def multiclass_skill(cm: np.ndarray) -> dict[str, float]:
    """HSS_K and Peirce (TSS_K) of a K x K table."""
    p = np.asarray(cm, dtype=float)
    p = p / p.sum()
    hit = np.trace(p)
    f, o = p.sum(axis=0), p.sum(axis=1)
    chance = float(f @ o)
    return {"hss": _ratio(hit - chance, 1.0 - chance),
            "peirce": _ratio(hit - chance, 1.0 - float(o @ o))}


def gmgs_matrix(climatology: np.ndarray) -> np.ndarray:
    """Gandin-Murphy-Gerrity scoring matrix S (K x K) from ordered class frequencies p_1..p_K."""
    p = np.asarray(climatology, dtype=float)
    if p.ndim != 1 or len(p) < 2 or (p <= 0).any():
        raise SolargenError(f"GMGS needs >= 2 strictly positive class frequencies, got {p.tolist()}")
    p = p / p.sum()
    k = len(p)
    cum = np.cumsum(p)[:-1]
    a = (1.0 - cum) / cum                      # a_r, r = 1..K-1 (index r-1)
    s = np.zeros((k, k))
    for i in range(k):                          # i, j are 0-based class indices
        for j in range(i, k):
            val = np.sum(1.0 / a[:i]) - (j - i) + np.sum(a[j:])
            s[i, j] = s[j, i] = val / (k - 1)
    return s


def gmgs(cm: np.ndarray, climatology: np.ndarray) -> float:
    """GMGS = sum_ij P_ij s_ij with S from `climatology`."""
    p = np.asarray(cm, dtype=float)
    return float((p / p.sum() * gmgs_matrix(climatology)).sum())


def climatology(targets: np.ndarray, num_classes: int) -> tuple[np.ndarray, bool]:
    """Class frequencies of `targets`; add-one smoothed (flag True) when a class is absent, so that
    the GMGS matrix stays finite on small training sets."""
    counts = np.bincount(np.asarray(targets, dtype=int), minlength=num_classes).astype(float)
    if (counts == 0).any():
        return (counts + 1.0) / (counts.sum() + num_classes), True
    return counts / counts.sum(), False


def brier(prob_event: np.ndarray, event: np.ndarray) -> float:
    f, o = np.asarray(prob_event, float), np.asarray(event, float)
    return float(np.mean((f - o) ** 2))


def brier_skill(prob_event: np.ndarray, event: np.ndarray, train_rate: float) -> float:
    """BSS against the climatological forecast c = training-set event frequency."""
    bs_clim = train_rate * (1.0 - train_rate)
    return _ratio(bs_clim - brier(prob_event, event), bs_clim)


def reliability(prob_event: np.ndarray, event: np.ndarray, bins: int = 10) -> dict[str, list]:
    """Reliability diagram data: per probability bin the mean forecast, observed frequency, count."""
    f, o = np.asarray(prob_event, float), np.asarray(event, float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(f, edges[1:-1]), 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_f = np.bincount(which, weights=f, minlength=bins) / count
        obs = np.bincount(which, weights=o, minlength=bins) / count
    return {"edges": edges.tolist(), "mean_forecast": mean_f.tolist(),
            "observed_frequency": obs.tolist(), "count": count.tolist()}


def score_forecasts(probs: np.ndarray, targets: np.ndarray, train_climatology: np.ndarray,
                    event_class: int, forecast: np.ndarray | None = None) -> dict[str, Any]:
    """Every score for class probabilities `probs` (N, K) and observed classes `targets` (N,).

    The categorical scores use `forecast` (N,) (forecasting.decision; default: the most probable
    class); Brier, BSS and reliability use the probabilities. `collapsed` is True when the
    forecast is one class for every sample.

    `event_class` is the first class counted as >= M (1 for binary tasks, 2 for O/C/M/X).
    BSS and the primary GMGS use the TRAINING climatology; `gmgs_eval_climatology` uses the
    evaluated set's own observed frequencies (the form for which GMGS = mean of the threshold
    TSS scores) and is NaN when a class is absent from the evaluated set. `per_class` holds each
    class's precision, recall and F1 of the argmax forecast (0 where undefined) and its support.
    """
    probs = np.asarray(probs, dtype=float)
    targets = np.asarray(targets, dtype=int)
    k = probs.shape[1]
    pred = probs.argmax(axis=1) if forecast is None else np.asarray(forecast, dtype=int)
    cm = confusion_matrix(targets, pred, k)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        targets, pred, labels=np.arange(k), zero_division=0)
    event_prob = probs[:, event_class:].sum(axis=1)
    event = (targets >= event_class).astype(float)
    train_rate = float(np.asarray(train_climatology)[event_class:].sum())
    out: dict[str, Any] = {
        "n": int(len(targets)),
        "collapsed": is_collapsed(pred),
        "confusion_matrix": cm.tolist(),
        "per_class": {"precision": precision.tolist(), "recall": recall.tolist(), "f1": f1.tolist(),
                      "support": support.tolist()},
        "ge_m": binary_scores(threshold_table(cm, event_class)),
        "bss_ge_m": brier_skill(event_prob, event, train_rate),
        "brier_ge_m": brier(event_prob, event),
        "train_rate_ge_m": train_rate,
        "reliability_ge_m": reliability(event_prob, event),
    }
    if k > 2:
        observed = np.bincount(targets, minlength=k) / len(targets)
        out.update(multiclass_skill(cm))
        out["gmgs"] = gmgs(cm, train_climatology)
        out["gmgs_eval_climatology"] = (gmgs(cm, observed) if (observed > 0).all()
                                        else float("nan"))
        names = list("OCMX") if k == 4 else [f"class {i}" for i in range(k)]
        out["tss_thresholds"] = {f">={names[i]}": binary_scores(threshold_table(cm, i))["tss"]
                                 for i in range(1, k)}
        out["accuracy"] = float(np.trace(cm) / cm.sum())
    return out


def headline(scores: dict[str, Any]) -> float:
    """The early-stopping score: GMGS for multi-class tasks, TSS (>= M) for binary ones."""
    value = scores["gmgs"] if "gmgs" in scores else scores["ge_m"]["tss"]
    return float(value)
