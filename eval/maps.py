"""Per-class standard-deviation maps (real beside generated) and a per-class sample montage."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from solargen import io  # noqa: E402
from solargen.errors import SolargenError


def std_map(frames: np.ndarray, channel: int = 0) -> np.ndarray:
    """Pixel-wise standard deviation over a batch (N, C, H, W) of one channel -> (H, W)."""
    return np.asarray(frames, dtype=np.float32)[:, channel].std(axis=0)


def _save(fig: plt.Figure, path: Path) -> None:
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip("."), dpi=120, bbox_inches="tight")
    plt.close(fig)


def std_maps_figure(real: Mapping[str, np.ndarray], generated: Mapping[str, np.ndarray],
                    path: str | Path, channel_name: str = "", channel: int = 0) -> dict:
    """Top row real, bottom row generated, one column per class present in both; each column
    shares one colour scale. Returns the mean std of each map and N per panel."""
    classes = [c for c in real if c in generated and len(real[c]) > 1 and len(generated[c]) > 1]
    if not classes:
        raise SolargenError("std maps need at least 2 real and 2 generated frames of some class")
    fig, axes = plt.subplots(2, len(classes), figsize=(2.6 * len(classes), 5.6), squeeze=False)
    stats = {}
    for j, c in enumerate(classes):
        maps = std_map(real[c], channel), std_map(generated[c], channel)
        vmax = max(float(m.max()) for m in maps) or 1.0
        for i, (m, kind, n) in enumerate(zip(maps, ("real", "generated"), (len(real[c]), len(generated[c])))):
            ax = axes[i, j]
            im = ax.imshow(m, cmap="inferno", vmin=0, vmax=vmax, origin="upper")
            ax.set_title(f"{c} {kind} (N={n})", fontsize=9)
            ax.set_xticks([]), ax.set_yticks([])
        fig.colorbar(im, ax=axes[:, j].tolist(), shrink=0.7)
        stats[c] = {"real_mean_std": float(maps[0].mean()), "generated_mean_std": float(maps[1].mean()),
                    "n_real": len(real[c]), "n_generated": len(generated[c])}
    fig.suptitle(f"Pixel-wise std per class {channel_name} (normalised units)".strip())
    _save(fig, Path(path))
    return stats


def montage_figure(real: Mapping[str, np.ndarray], generated: Mapping[str, np.ndarray],
                   path: str | Path, per_class: int = 4, channel: int = 0) -> None:
    """One row per class: `per_class` real frames, then `per_class` generated frames."""
    classes = [c for c in generated if len(generated[c])]
    if not classes:
        raise SolargenError("montage needs generated frames")
    cols = 2 * per_class
    fig, axes = plt.subplots(len(classes), cols, figsize=(1.5 * cols, 1.6 * len(classes)), squeeze=False)
    for i, c in enumerate(classes):
        shown = [("real", f) for f in np.asarray(real.get(c, np.zeros((0,))))[:per_class]]
        shown += [("real", None)] * (per_class - len(shown))
        shown += [("gen", f) for f in np.asarray(generated[c])[:per_class]]
        for j, (kind, frame) in enumerate(shown[:cols]):
            ax = axes[i, j]
            ax.set_xticks([]), ax.set_yticks([])
            if frame is not None:
                ax.imshow(frame[channel], cmap="gray", vmin=-1, vmax=1)
            if i == 0:
                ax.set_title(kind, fontsize=8)
            if j == 0:
                ax.set_ylabel(c)
    fig.suptitle("Real (left) and generated (right) frames per class")
    _save(fig, Path(path))
