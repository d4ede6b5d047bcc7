"""Classifier fidelity: a small CNN trained on real training frames only, scored on held-out real
frames and on a class-balanced generated set.

Scores (scikit-learn's): per class precision, recall and F1 = 2PR / (P + R) (0 where undefined),
with the confusion matrix (rows = true class, columns = predicted); macro = the unweighted mean over
the classes present in the evaluated set. The headline is macro-F1(generated) / macro-F1(real),
both over the classes the two sets share.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from torch import nn

from solargen.diffusion.autoencoder import FitConfig, train_model
from solargen.errors import SolargenError


class SmallCNN(ModelMixin, ConfigMixin):
    """Four stride-2 conv blocks, global average pooling, a linear head (logits or a regression).

    `features` returns the pooled penultimate vector. A regression head predicts the target
    standardised by (target_mean, target_std), which the config keeps."""

    @register_to_config
    def __init__(self, in_channels: int = 1, num_outputs: int = 5, sample_size: int = 64,
                 width: int = 32, class_names: Sequence[str] = (), target_mean: float = 0.0,
                 target_std: float = 1.0):
        super().__init__()
        layers, prev = [], in_channels
        for w in (width, width * 2, width * 4, width * 4):
            layers += [nn.Conv2d(prev, w, 3, stride=2, padding=1), nn.BatchNorm2d(w), nn.SiLU()]
            prev = w
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(prev, num_outputs)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        size = self.config.sample_size
        x = x.to(self.device, self.dtype)
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x, (size, size), mode="area")
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @torch.no_grad()
    def predict(self, frames: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Raw outputs (N, num_outputs) for frames (N, C, H, W) in [-1, 1]."""
        self.eval()
        out = [self(torch.from_numpy(np.asarray(frames[i:i + batch_size], dtype=np.float32))).cpu().numpy()
               for i in range(0, len(frames), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.config.num_outputs))


def train_classifier(frames: np.ndarray, flare_class: Sequence[str], class_names: Sequence[str],
                     config: FitConfig) -> tuple[SmallCNN, list[float]]:
    """Fit a SmallCNN to real frames with inverse-frequency class weights (rare classes count)."""
    class_names = list(class_names)
    y = np.array([class_names.index(c) for c in flare_class], dtype=np.int64)
    counts = np.bincount(y, minlength=len(class_names)).astype(float)
    if (counts == 0).any():
        missing = [c for c, n in zip(class_names, counts) if n == 0]
        raise SolargenError(f"classifier: no training frames of class {missing}")
    weights = torch.tensor((1 / counts) / np.sum(1 / counts) * len(counts), dtype=torch.float32)
    torch.manual_seed(config.seed)
    model = SmallCNN(in_channels=frames.shape[1], num_outputs=len(class_names),
                     sample_size=min(64, frames.shape[-1]), class_names=tuple(class_names))

    def loss_fn(m: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(m(x), target.to(m.device), weight=weights.to(m.device))

    losses = train_model(model, frames, y, loss_fn, config, "fidelity classifier")
    return model, losses


def classify(model: SmallCNN, frames: np.ndarray) -> list[str]:
    names = list(model.config.class_names)
    return [names[i] for i in model.predict(frames).argmax(axis=1)]


def class_scores(true: Sequence[str], pred: Sequence[str], class_names: Sequence[str],
                 macro_over: Sequence[str] | None = None) -> dict:
    """Per-class precision/recall/F1/support and their macro means (over `macro_over`, default
    the classes with support > 0), with the confusion matrix."""
    names = list(class_names)
    unknown = sorted(set(true) - set(names))     # sklearn would leave them out silently
    if unknown:
        raise SolargenError(f"true classes {unknown} are not among the classes {names}")
    precision, recall, f1, support = precision_recall_fscore_support(true, pred, labels=names,
                                                                     zero_division=0)
    per_class = {c: {"precision": float(precision[i]), "recall": float(recall[i]),
                     "f1": float(f1[i]), "support": int(support[i])} for i, c in enumerate(names)}
    macro_over = [c for c in names if per_class[c]["support"] > 0] if macro_over is None else list(macro_over)
    if not macro_over:
        raise SolargenError("macro scores need at least one class with support")
    macro = {k: float(np.mean([per_class[c][k] for c in macro_over])) for k in ("precision", "recall", "f1")}
    return {"per_class": per_class, "macro": macro, "macro_over": macro_over,
            "confusion": confusion_matrix(true, pred, labels=names).tolist(), "class_names": names}


def fidelity_summary(model: SmallCNN, real_frames: np.ndarray, real_class: Sequence[str],
                     gen_frames: np.ndarray, gen_class: Sequence[str]) -> dict:
    """Scores on held-out real and generated frames, and the macro-F1 ratio over shared classes."""
    names = list(model.config.class_names)
    shared = [c for c in names if c in set(real_class) and c in set(gen_class)]
    if not shared:
        raise SolargenError("fidelity: held-out real and generated sets share no class")
    real = class_scores(real_class, classify(model, real_frames), names, shared)
    gen = class_scores(gen_class, classify(model, gen_frames), names, shared)
    ratio = gen["macro"]["f1"] / real["macro"]["f1"] if real["macro"]["f1"] > 0 else float("nan")
    return {"classes": names, "shared_classes": shared, "n_real": int(len(real_class)),
            "n_generated": int(len(gen_class)), "real": real, "generated": gen,
            "macro_f1_ratio": ratio}
