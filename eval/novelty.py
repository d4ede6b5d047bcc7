"""Novelty: does the generator copy its training frames?

For each generated frame, the distance to its nearest training frame (pixel space: RMS difference
per pixel in normalised units; feature space: Euclidean distance of domain latents), against the
same for held-out real frames, which the generator never saw. A copying generator shows generated
distances far below the held-out ones. The verdict counts generated frames closer to a training
frame than the `copy_quantile` of the held-out distances.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from solargen import io  # noqa: E402
from solargen.errors import SolargenError


def nearest_distances(queries: np.ndarray, train: np.ndarray, rms: bool = False,
                      chunk: int = 256) -> np.ndarray:
    """Distance of each query row to its nearest training row (inputs flattened per sample);
    with rms=True divided by sqrt(dimension), i.e. an RMS difference per pixel."""
    q = torch.from_numpy(np.asarray(queries, dtype=np.float32).reshape(len(queries), -1))
    t = torch.from_numpy(np.asarray(train, dtype=np.float32).reshape(len(train), -1))
    if q.shape[1] != t.shape[1]:
        raise SolargenError(f"novelty: query dimension {q.shape[1]} differs from training {t.shape[1]}")
    best = torch.full((len(q),), float("inf"))
    for start in range(0, len(t), chunk):
        best = torch.minimum(best, torch.cdist(q, t[start:start + chunk]).min(dim=1).values)
    scale = np.sqrt(q.shape[1]) if rms else 1.0
    return best.double().numpy() / scale


def novelty_summary(generated: np.ndarray, heldout: np.ndarray, train: np.ndarray,
                    space: str, copy_quantile: float = 0.01, copy_limit: float = 0.05) -> dict:
    """Nearest-training-frame distances of generated and held-out real frames, and the verdict."""
    rms = space == "pixel"
    d_gen = nearest_distances(generated, train, rms=rms)
    d_held = nearest_distances(heldout, train, rms=rms)
    threshold = float(np.quantile(d_held, copy_quantile))
    fraction = float(np.mean(d_gen < threshold))
    suspect = fraction > copy_limit
    verdict = (f"{space}: {fraction:.1%} of {len(d_gen)} generated frames lie closer to a training "
               f"frame than the {copy_quantile:.0%} quantile of held-out real frames "
               f"({threshold:.4g}); median distance generated {np.median(d_gen):.4g} vs held-out "
               f"{np.median(d_held):.4g} -> "
               + ("POSSIBLE COPYING of training frames" if suspect else "no sign of copying"))
    return {"space": space, "n_generated": len(d_gen), "n_heldout": len(d_held), "n_train": len(train),
            "generated": d_gen.tolist(), "heldout": d_held.tolist(),
            "median_generated": float(np.median(d_gen)), "median_heldout": float(np.median(d_held)),
            "min_generated": float(d_gen.min()), "copy_threshold": threshold,
            "fraction_below_threshold": fraction, "copy_limit": copy_limit,
            "copying_suspected": suspect, "verdict": verdict}


def novelty_figure(summaries: list[dict], path: str | Path) -> None:
    """One histogram per space: generated vs held-out nearest-training-frame distances."""
    fig, axes = plt.subplots(1, len(summaries), figsize=(5 * len(summaries), 3.6), squeeze=False)
    for ax, s in zip(axes[0], summaries):
        both = np.concatenate([s["generated"], s["heldout"]])
        bins = np.linspace(0, both.max() * 1.05 or 1.0, 40)
        ax.hist(s["heldout"], bins=bins, alpha=0.6, label=f"held-out real (N={s['n_heldout']})")
        ax.hist(s["generated"], bins=bins, alpha=0.6, label=f"generated (N={s['n_generated']})")
        ax.axvline(s["copy_threshold"], color="k", ls="--", lw=1, label="copy threshold")
        unit = "RMS per pixel" if s["space"] == "pixel" else "latent distance"
        ax.set_xlabel(f"distance to nearest training frame ({unit})")
        ax.set_title(f"{s['space']} space (train N={s['n_train']})", fontsize=10)
        ax.legend(fontsize=8)
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
