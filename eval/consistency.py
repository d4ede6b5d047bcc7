"""Cross-channel consistency of multi-channel frames: does each channel brighten with the flare the
frame stands for, as in real frames?

A channel's brightening in a frame is its 99.5th-percentile brightness minus its median (the
compact flare core against the disk). For real frames it is set against their GOES flux (or class);
for generated frames against the flux (or class) that was requested. A physically consistent
generator makes 131 and 94 (flare plasma) brighten with the requested flux about as strongly as
real frames do, whatever 171 does.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import spearmanr

from solargen.data.goes import GOES_CLASSES, flux_to_letter


def brightening(frames: np.ndarray) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> (N, C): 99.5th percentile minus median, per frame and channel."""
    flat = np.asarray(frames, dtype=np.float64).reshape(frames.shape[0], frames.shape[1], -1)
    return np.percentile(flat, 99.5, axis=2) - np.median(flat, axis=2)


def intensity(flux: np.ndarray, letters: Sequence[str]) -> np.ndarray:
    """What a frame stands for, as a number: log10 flux where known, else the class's rank."""
    flux = np.asarray(flux, dtype=float)
    rank = np.array([GOES_CLASSES.index(c) if c in GOES_CLASSES else np.nan for c in letters], dtype=float)
    return np.where(np.isfinite(flux) & (flux > 0), np.log10(np.where(flux > 0, flux, 1.0)), rank - 8.0)


def consistency_summary(channels: Sequence[str], real_frames: np.ndarray, real_flux: np.ndarray,
                        gen_frames: np.ndarray, gen_flux: np.ndarray, gen_letters: Sequence[str]) -> dict:
    """Per channel, the Spearman correlation of brightening with flux (or class) for held-out real
    and for generated frames."""
    real_letters = [flux_to_letter(f) if np.isfinite(f) and f > 0 else "" for f in real_flux]
    x_real, x_gen = intensity(real_flux, real_letters), intensity(gen_flux, gen_letters)
    b_real, b_gen = brightening(real_frames), brightening(gen_frames)
    ok_real, ok_gen = np.isfinite(x_real), np.isfinite(x_gen)
    out = {"n_real": int(ok_real.sum()), "n_generated": int(ok_gen.sum()),
           "condition": "log10 flux" if np.isfinite(gen_flux).any() else "class rank", "channels": {}}
    for c, name in enumerate(channels):
        out["channels"][str(name)] = {
            "spearman_real": _rho(x_real[ok_real], b_real[ok_real, c]),
            "spearman_generated": _rho(x_gen[ok_gen], b_gen[ok_gen, c])}
    return out


def _rho(x: np.ndarray, y: np.ndarray) -> float | None:
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(spearmanr(x, y).statistic)
