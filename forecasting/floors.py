"""Classical floors: forecasters every deep model must beat, trained and scored like the others.

    climatology  the training class frequencies for every sample (sklearn DummyClassifier, prior):
                 a constant forecast, `collapsed` by construction, BSS about 0
    persistence  the GOES 1-8 A flux at the frame time (known at issue time; gaps filled with the
                 latest earlier sample): a logistic regression on log10 flux gives the
                 probabilities; the decision thresholds (a flux threshold, per event level) are
                 chosen on the TRAINING data
    flux-history logistic regression on the GOES 1-8 A flux known at issue time: at the frame time
                 and its maximum over the preceding 24 h (`flux_history`, the planes the
                 flux_input models see); thresholds chosen on the TRAINING data. The floor
                 that floor-containing models (ForecastConfig.floor) hold inside them
    logistic     regularised logistic regression (L2, C from `model_overrides`, default 1) on
                 standardised per-channel statistics of the (latest) frame (models.frame_statistics:
                 mean, 99th percentile, bright-pixel fraction); thresholds chosen on
                 the validation window like the deep models

and, for the eruptive tasks only, an upper-bound REFERENCE that is not a forecaster:

    flare-oracle logistic regression on log10 GOES peak flux and log10 duration of the flare the
                 label is about, which nobody knows at issue time (big, long flares are more often
                 eruptive); thresholds chosen on the training data

Each is an sklearn estimator saved with joblib (`model/floor.joblib`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import joblib
import numpy as np
import pandas as pd
import torch
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from forecasting.models import frame_statistics
from solargen import io
from solargen.data.dataset import SolarDataset
from solargen.errors import SolargenError

FLOORS = ("climatology", "persistence", "flux-history", "logistic")
REFERENCES = ("flare-oracle",)
SKLEARN_MODELS = FLOORS + REFERENCES       # fitted, saved and scored by the floor path
FLOOR_FILE = "floor.joblib"
# where each floor's decision thresholds are chosen
THRESHOLDS_CHOSEN_ON = {"climatology": "train", "persistence": "train", "flux-history": "train",
                        "logistic": "val", "flare-oracle": "train"}


def goes_flux_at_issue(ds: SolarDataset) -> np.ndarray:
    """GOES 1-8 A flux at every frame time, gaps filled with the latest earlier value (then the
    earliest later one at the very start)."""
    if "goes_flux" not in ds.labels:
        raise SolargenError(f"{ds.root}: labels table has no goes_flux column (persistence needs "
                            "the GOES flux at the frame time); rebuild with `solargen data build`")
    flux = ds.labels["goes_flux"].astype(float).ffill().bfill().to_numpy()
    if not np.isfinite(flux).all():
        raise SolargenError(f"{ds.root}: goes_flux has no valid value at all")
    return flux


def flux_history(ds: SolarDataset) -> np.ndarray:
    """(N, 2) per frame: the GOES 1-8 A flux at the frame time and its maximum over the frames of
    the preceding 24 h, window ending at the frame (no later value enters; gaps filled with the
    latest earlier value, as for persistence), each as (log10 flux + 6) / 2 clipped to [-1, 1]
    (B -0.5, C 0, M 0.5, X 1)."""
    flux = pd.Series(goes_flux_at_issue(ds), index=ds.times)
    both = np.stack([flux.to_numpy(), flux.rolling("24h").max().to_numpy()], axis=1)
    return np.clip((np.log10(np.maximum(both, 1e-9)) + 6.0) / 2.0, -1.0, 1.0).astype(np.float32)


def features(name: str, ds: SolarDataset, indices: np.ndarray,
             frame_map: Callable[[np.ndarray], np.ndarray] | None = None,
             label_column: str = "") -> np.ndarray:
    """The inputs of floor `name` for the samples ending at frames `indices` (`label_column`: the
    task's target column, which the flare-oracle reference reads its flare from)."""
    indices = np.asarray(indices, dtype=int)
    if name == "flare-oracle":
        needed = [f"{label_column}_peak_flux", f"{label_column}_duration_min"]
        if not label_column.startswith("eruptive") or not set(needed) <= set(ds.labels):
            raise SolargenError(f"flare-oracle is a reference for the eruptive tasks only (needs "
                                f"labels columns {needed}; rebuild with --flares and --cmes)")
        values = ds.labels[needed].to_numpy(float)[indices]
        return np.log10(np.maximum(values, [1e-9, 1.0]))
    if name == "climatology":
        return np.zeros((len(indices), 1))
    if name == "persistence":
        return np.log10(np.maximum(goes_flux_at_issue(ds)[indices], 1e-9))[:, None]
    if name == "flux-history":
        return flux_history(ds)[indices].astype(float)
    if name == "logistic":
        frames = np.asarray(ds.frames[indices], dtype=np.float32)
        frames = frame_map(frames) if frame_map else frames
        return np.concatenate([frame_statistics(torch.from_numpy(np.ascontiguousarray(chunk))).numpy()
                               for chunk in np.array_split(frames, max(1, len(frames) // 512))])
    raise SolargenError(f"unknown floor {name!r}; choose one of {SKLEARN_MODELS}")


def build_floor(name: str, overrides: dict[str, Any]) -> Any:
    if name == "climatology":
        return DummyClassifier(strategy="prior")
    if name in ("persistence", "flux-history"):
        return LogisticRegression(max_iter=1000)
    if name == "flare-oracle":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    if name == "logistic":
        c = float(overrides.get("C", 1.0))
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
    raise SolargenError(f"unknown floor {name!r}; choose one of {SKLEARN_MODELS}")


def predict_proba(estimator: Any, x: np.ndarray, num_classes: int) -> np.ndarray:
    """(N, K) probabilities; classes absent from the training targets get probability 0."""
    probs = np.zeros((len(x), num_classes))
    probs[:, estimator.classes_.astype(int)] = estimator.predict_proba(x)
    return probs


def linear_logits(estimator: LogisticRegression, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """A fitted logistic regression as (K, F) weights and (K,) biases whose softmax over
    x @ W.T + b equals its predict_proba (binary: class 0's logit 0); a class absent from the
    training targets gets a bias of -30 (probability ~0)."""
    classes = estimator.classes_.astype(int)
    n_features = estimator.coef_.shape[1]
    weight, bias = np.zeros((num_classes, n_features)), np.full(num_classes, -30.0)
    if len(classes) == 2:
        bias[classes[0]] = 0.0
        weight[classes[1]], bias[classes[1]] = estimator.coef_[0], estimator.intercept_[0]
    else:
        weight[classes], bias[classes] = estimator.coef_, estimator.intercept_
    return weight, bias


def save(estimator: Any, model_dir: Path) -> None:
    with io.atomic_path(model_dir / FLOOR_FILE) as tmp:
        joblib.dump(estimator, tmp)


def load(model_dir: Path) -> Any:
    return joblib.load(model_dir / FLOOR_FILE)
