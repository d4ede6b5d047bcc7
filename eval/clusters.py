"""Cluster metrics in a latent space (Hackstein et al. 2023), as defined in metrics.md.

KMeans(K) is fitted on a reference set of real latents; every other set (same N) is assigned to
the nearest centroid. With h_X the counts per cluster and d_i the distance to the nearest centroid:

    cluster error    = sum_k (h_X,k - h_ref,k)^2 / h_ref,k^2
    D(X) = sqrt(mean d_i^2),   S(X) = sqrt(mean (d_i - D(X))^2)
    cluster distance = D(X) / D(ref),   cluster std = S(X) / S(ref)

Ideal values are 0, 1, 1; the "GT" row is the same numbers for a disjoint real set.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from sklearn.cluster import KMeans
from solargen.errors import SolargenError


@dataclass
class ClusterReference:
    """A KMeans fit on reference latents, with the reference's own counts and distance stats."""

    kmeans: KMeans
    counts: np.ndarray
    distance: float
    std: float

    @property
    def n(self) -> int:
        return int(self.counts.sum())


def _assign(kmeans: KMeans, latents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dist = kmeans.transform(np.asarray(latents, dtype=np.float64))
    return dist.argmin(axis=1), dist.min(axis=1)


def _spread(d: np.ndarray) -> tuple[float, float]:
    big_d = float(np.sqrt(np.mean(d ** 2)))
    return big_d, float(np.sqrt(np.mean((d - big_d) ** 2)))


def fit_reference(latents: np.ndarray, k: int, seed: int = 0) -> ClusterReference:
    """Fit KMeans(k) on the reference latents (N, D)."""
    latents = np.asarray(latents, dtype=np.float64)
    if len(latents) < k:
        raise SolargenError(f"cluster metrics: {len(latents)} reference samples for K = {k} clusters")
    kmeans = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(latents)
    labels, d = _assign(kmeans, latents)
    counts = np.bincount(labels, minlength=k)
    if (counts == 0).any():
        raise SolargenError(f"cluster metrics: the reference set has fewer distinct latents than "
                         f"K = {k} (an empty cluster); lower K")
    big_d, s = _spread(d)
    return ClusterReference(kmeans, counts, big_d, s)


def cluster_metrics(ref: ClusterReference, latents: np.ndarray) -> dict[str, float]:
    """Cluster error, distance and std of a set against the reference (same N required)."""
    if len(latents) != ref.n:
        raise SolargenError(f"cluster metrics compare sets of equal N: reference has {ref.n}, "
                         f"this set {len(latents)}")
    labels, d = _assign(ref.kmeans, latents)
    counts = np.bincount(labels, minlength=len(ref.counts))
    big_d, s = _spread(d)
    return {"cluster_error": float(np.sum((counts - ref.counts) ** 2 / ref.counts.astype(float) ** 2)),
            "cluster_distance": big_d / ref.distance,
            "cluster_std": s / ref.std,
            "counts": counts.tolist()}


def cluster_summary(reference: np.ndarray, gt: np.ndarray, generated_sets: Sequence[np.ndarray],
                    k: int, feature_space: str, seed: int = 0) -> dict:
    """GT row (a disjoint real set) and mean +- std of the generated rows over repeated sets."""
    ref = fit_reference(reference, k, seed)
    rows = [cluster_metrics(ref, g) for g in generated_sets]
    summary = {"feature_space": feature_space, "k": k, "n": ref.n, "n_sets": len(rows),
               "reference_counts": ref.counts.tolist(), "gt": cluster_metrics(ref, gt),
               "generated": rows}
    for key in ("cluster_error", "cluster_distance", "cluster_std"):
        values = [r[key] for r in rows]
        summary[key] = {"mean": float(np.mean(values)),
                        "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}
    return summary
