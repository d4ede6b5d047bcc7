"""Frechet distance (FID) between feature sets, computed with clean-fid.

FID depends on N: sets are compared only at equal N, and every FID is reported beside the
real-vs-real floor (two disjoint real sets of the same N) in the same feature space.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from solargen.errors import SolargenError


def gaussian_fit(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of (N, D) features, as clean-fid fits them."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise SolargenError(f"need (N >= 2, D) features for a Gaussian fit, got shape {features.shape}")
    return features.mean(axis=0), np.atleast_2d(np.cov(features, rowvar=False))


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of the two Gaussian fits.

    With fewer samples than feature dimensions (Inception: N < 2048) the covariances have rank
    < N and clean-fid's 2048 x 2048 matrix square root (about a minute on one CPU core) is replaced
    by its exact low-rank equivalent: with S = A^T A (A = centred features / sqrt(N - 1)),
    Tr (S_a S_b)^(1/2) is the sum of the singular values of A_a A_b^T (N x N). Otherwise
    clean-fid's own `frechet_distance` is used. Both agree to rounding (tested)."""
    from cleanfid.fid import frechet_distance as clean_frechet
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if len(a) != len(b):
        raise SolargenError(f"FID depends on N: compare sets of equal size, got {len(a)} and {len(b)}")
    if len(a) > a.shape[1]:
        return float(max(clean_frechet(*gaussian_fit(a), *gaussian_fit(b)), 0.0))
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    fa, fb = (a - mu_a) / np.sqrt(len(a) - 1), (b - mu_b) / np.sqrt(len(b) - 1)
    cross = np.linalg.svd(fa @ fb.T, compute_uv=False).sum()
    return float(max(np.sum((mu_a - mu_b) ** 2) + np.sum(fa ** 2) + np.sum(fb ** 2) - 2 * cross, 0.0))


def fid_summary(reference: np.ndarray, generated_sets: Sequence[np.ndarray], floor: np.ndarray,
                feature_space: str) -> dict:
    """FID of each generated set against the real reference set, with the real-vs-real floor
    (a disjoint real set against the same reference); all sets must share one N."""
    values = [frechet_distance(reference, g) for g in generated_sets]
    return {"feature_space": feature_space, "n": int(len(reference)), "n_sets": len(values),
            "values": values, "mean": float(np.mean(values)),
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            "floor_real_vs_real": frechet_distance(reference, floor)}
