"""Figure: the SYNTHETIC embedded default beside real 2012 AIA 171 browse frames, per GOES class.

    python bench/synthetic_vs_real.py [--shared ../shared/data] [--out docs/synthetic_vs_real.png]

Real frames: ../shared/data/sdo-aia-2012/sdo_aia_2012.npz (key aia171, 128 px, 2 x 2 area-averaged
to 64 px), class = GOES 1-8 A flux at the frame time (max within +-5 min) from
goes/goes_xrs_5min_2011_2012.csv. Synthetic frames: `SyntheticSun` with the default configuration
(half a year, seed 0), class by the same rule on its own GOES-like series. Both on the 0-255 browse
scale. The bottom row compares the mean radial profiles and the pixel histograms.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from solargen import io
from solargen.data.goes import GOES_CLASSES, read_goes_csv
from solargen.data.labels import goes_at_frame
from solargen.data.synthetic_sun import SyntheticSun, SyntheticSunConfig


def real_frames(shared: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N, 64, 64) float 0-255 real 171 frames and their class at the frame time."""
    import pandas as pd
    bundle = np.load(shared / "sdo-aia-2012" / "sdo_aia_2012.npz")
    aia = bundle["aia171"].astype(np.float32)
    frames = aia.reshape(len(aia), 64, 2, 64, 2).mean(axis=(2, 4))
    times = pd.DatetimeIndex(pd.to_datetime(bundle["t_obs_171"], utc=True))
    goes = read_goes_csv(shared / "goes" / "goes_xrs_5min_2011_2012.csv")
    return frames, goes_at_frame(times, goes)["goes_class"].to_numpy()


def synthetic_frames(cfg: SyntheticSunConfig) -> tuple[np.ndarray, np.ndarray]:
    sun = SyntheticSun(cfg)
    frames = sun.render_all(progress=True)[:, 0]
    return frames, goes_at_frame(sun.times, sun.goes())["goes_class"].to_numpy()


def radial_profile(frames: np.ndarray, n_bins: int = 46) -> tuple[np.ndarray, np.ndarray]:
    size = frames.shape[-1]
    c = (size - 1) / 2.0
    yy, xx = np.indices((size, size))
    r = np.hypot(xx - c, yy - c)
    bins = np.minimum((r / r.max() * n_bins).astype(int), n_bins - 1)
    mean = frames.mean(axis=0)
    prof = np.bincount(bins.ravel(), mean.ravel(), n_bins) / np.bincount(bins.ravel(), minlength=n_bins)
    return (np.arange(n_bins) + 0.5) / n_bins * r.max(), prof


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    parser.add_argument("--per-class", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="synthetic realisation and frame picks")
    parser.add_argument("--out", type=Path, default=Path("docs/synthetic_vs_real.png"))
    args = parser.parse_args()
    real, real_cls = real_frames(args.shared)
    syn, syn_cls = synthetic_frames(SyntheticSunConfig(seed=args.seed))
    classes = [c for c in GOES_CLASSES if (real_cls == c).any() and (syn_cls == c).any()]
    rng = np.random.default_rng(args.seed)
    k = args.per_class
    fig = plt.figure(figsize=(2 * k * 1.45 + 0.4, (len(classes) + 1.4) * 1.55))
    grid = fig.add_gridspec(len(classes) + 1, 2 * k, height_ratios=[1] * len(classes) + [1.4])
    for row, c in enumerate(classes):
        for half, (frames, cls, kind) in enumerate(((real, real_cls, "real 2012"), (syn, syn_cls, "SYNTHETIC"))):
            idx = np.flatnonzero(cls == c)
            pick = np.sort(rng.choice(idx, min(k, len(idx)), replace=False))
            for j in range(k):
                ax = fig.add_subplot(grid[row, half * k + j])
                ax.axis("off")
                if j < len(pick):
                    ax.imshow(frames[pick[j]], cmap="gray", vmin=0, vmax=255)
                    ax.set_title(f"{kind} · {c}\n(n={len(idx)})" if j == 0 else f"{kind} · {c}", fontsize=7)
    ax = fig.add_subplot(grid[-1, :k])
    for frames, kind, style in ((real, "real 2012", "-"), (syn, "synthetic", "--")):
        r, prof = radial_profile(frames)
        ax.plot(r, prof, style, label=kind)
    ax.set_xlabel("distance from frame centre (px)", fontsize=7)
    ax.set_ylabel("mean brightness (0-255)", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.legend(fontsize=6)
    ax = fig.add_subplot(grid[-1, k:])
    for frames, kind in ((real, "real 2012"), (syn, "synthetic")):
        ax.hist(frames.ravel(), bins=64, range=(0, 255), histtype="step", density=True, label=kind)
    ax.set_yscale("log")
    ax.set_xlabel("pixel brightness (0-255)", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.legend(fontsize=6)
    fig.suptitle("GOES class at the frame time: real AIA 171 browse frames 2012 (left) vs the "
                 "SYNTHETIC embedded default (right, procedural, not solar data)", fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with io.atomic_path(args.out) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    counts = {c: (int((real_cls == c).sum()), int((syn_cls == c).sum())) for c in GOES_CLASSES}
    print(f"wrote {args.out}; frames per class (real, synthetic): {counts}; "
          f"{io.command_line()} at {io.git_commit()}")


if __name__ == "__main__":
    main()
