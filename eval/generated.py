"""Generated frames as the evaluation reads them, and equal-N sets drawn from them.

A generated set comes from a synthetic-set NPZ (solargen.diffusion.sample), a folder of PNGs (with
an optional labels.csv), or is sampled from a model directory by eval.report.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from solargen.data.dataset import from_uint8
from solargen.data.goes import flux_to_letter
from solargen.errors import SolargenError


class EvalError(SolargenError):
    """Inputs the evaluation cannot use (mismatched shapes, too few frames, missing labels)."""


# --------------------------------------------------------------------------- generated input
@dataclass
class GeneratedSet:
    images: np.ndarray                 # (N, C, H, W) float32 in [-1, 1]
    flare_class: np.ndarray            # (N,) str, '' when not class-conditioned
    goes_flux: np.ndarray              # (N,) float, NaN when not flux-conditioned
    meta: dict[str, Any]
    source: str

    @property
    def letters(self) -> np.ndarray:
        """The class each frame was asked to show: its flare_class, else its flux's letter."""
        out = []
        for c, f in zip(self.flare_class, self.goes_flux):
            out.append(str(c) if c else (flux_to_letter(float(f)) if np.isfinite(f) else ""))
        return np.array(out, dtype=object)

    @classmethod
    def from_npz(cls, path: str | Path) -> "GeneratedSet":
        """A synthetic-set NPZ, read and checked by the diffusion layer's reader."""
        from solargen.diffusion.sample import load_npz
        s = load_npz(path)
        return cls(s["images"], s["flare_class"].astype(object), s["goes_flux"], json.loads(s["meta"]),
                   str(path))

    def subset(self, idx: np.ndarray) -> "GeneratedSet":
        return GeneratedSet(self.images[idx], self.flare_class[idx], self.goes_flux[idx], self.meta,
                            self.source)


def load_png_folder(path: str | Path, channels: int) -> GeneratedSet:
    """A folder of PNG frames, with an optional labels.csv (columns file, flare_class, goes_flux)."""
    from PIL import Image
    path = Path(path)
    files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".png")
    if not files:
        raise EvalError(f"{path}: no PNG files in this folder")
    mode = {1: "L", 3: "RGB"}.get(channels)
    if mode is None:
        raise EvalError(f"{path}: PNG frames can stand for 1- or 3-channel datasets, not {channels}")
    arrays = [np.asarray(Image.open(f).convert(mode)) for f in files]
    if len({a.shape for a in arrays}) != 1:
        raise EvalError(f"{path}: the PNG frames differ in size")
    stack = np.stack(arrays)
    stack = stack[:, None] if channels == 1 else stack.transpose(0, 3, 1, 2)
    images = from_uint8(stack)
    flare_class, goes_flux = np.full(len(files), "", dtype=object), np.full(len(files), np.nan)
    labels_csv = path / "labels.csv"
    if labels_csv.is_file():
        table = pd.read_csv(labels_csv, dtype={"file": str}).set_index("file")
        missing = [f.name for f in files if f.name not in table.index]
        if missing:
            raise EvalError(f"{labels_csv}: no row for {len(missing)} PNG files (e.g. {missing[0]})")
        rows = table.loc[[f.name for f in files]]
        if "flare_class" in rows:
            flare_class = rows["flare_class"].fillna("").astype(str).to_numpy(dtype=object)
        if "goes_flux" in rows:
            goes_flux = rows["goes_flux"].astype(float).to_numpy()
    return GeneratedSet(images, flare_class, goes_flux, {}, str(path))


# --------------------------------------------------------------------------- set drawing
def class_counts(proportions: dict[str, float], size: int) -> dict[str, int]:
    """Largest-remainder rounding of size * proportions."""
    raw = {c: p * size for c, p in proportions.items()}
    counts = {c: int(np.floor(v)) for c, v in raw.items()}
    for c in sorted(raw, key=lambda c: raw[c] - counts[c], reverse=True)[:size - sum(counts.values())]:
        counts[c] += 1
    return counts


def draw_sets(letters: np.ndarray, proportions: dict[str, float] | None, size: int, n_sets: int,
              rng: np.random.Generator) -> list[np.ndarray]:
    """Up to n_sets disjoint index sets of `size`; with proportions, each follows that class mix."""
    if proportions is None:
        order = rng.permutation(len(letters))
        return [order[i * size:(i + 1) * size] for i in range(min(n_sets, len(letters) // size))]
    counts = class_counts(proportions, size)
    pools = {c: rng.permutation(np.flatnonzero(letters == c)) for c in counts}
    feasible = min(len(pools[c]) // n for c, n in counts.items() if n > 0)
    return [np.sort(np.concatenate([pools[c][i * n:(i + 1) * n] for c, n in counts.items()]))
            for i in range(min(n_sets, feasible))]


def max_set_size(letters: np.ndarray, proportions: dict[str, float] | None) -> int:
    """The largest N of which one set with the class mix can be drawn."""
    if proportions is None:
        return len(letters)
    have = {c: int(np.sum(letters == c)) for c in proportions}

    def fits(size: int) -> bool:
        # a class may round to 0 frames only when it is truly rare at this N (p * N < 0.5)
        need = class_counts(proportions, size)
        return all(have[c] >= n and (n > 0 or proportions[c] * size < 0.5) for c, n in need.items())

    size = len(letters)
    while size > 0 and not fits(size):
        size -= 1
    return size


