"""Figure: synthetic embedded-default frames beside real 2012 AIA 171 frames of each GOES class.

    python bench/synthetic_vs_real.py --real data/aia171-2012-64 --out docs/synthetic_vs_real.png
The real dataset comes from `solargen data build` on ../shared/data (see README); class = GOES
class at the frame time (`goes_class`).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from solargen import io
from solargen.data.dataset import load_dataset
from solargen.data.goes import GOES_CLASSES
from solargen.data.synthetic import SyntheticSunConfig, write_synthetic_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, default=Path("data/aia171-2012-64"))
    parser.add_argument("--synthetic", type=Path, default=Path("runs/synthetic-default"),
                        help="synthetic dataset dir (made with the default config if absent)")
    parser.add_argument("--per-class", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("docs/synthetic_vs_real.png"))
    args = parser.parse_args()
    real = load_dataset(args.real)
    if not (args.synthetic / "meta.json").exists():
        write_synthetic_dataset(SyntheticSunConfig(), args.synthetic)
    syn = load_dataset(args.synthetic)
    rng = np.random.default_rng(0)
    classes = [c for c in GOES_CLASSES if (real.labels["goes_class"] == c).any()
               and (syn.labels["goes_class"] == c).any()]
    k = args.per_class
    fig, axes = plt.subplots(len(classes), 2 * k, figsize=(2 * k * 1.5, len(classes) * 1.6), squeeze=False)
    for row, c in enumerate(classes):
        for col, (ds, kind) in enumerate(((real, "real 2012"), (syn, "synthetic"))):
            idx = np.flatnonzero((ds.labels["goes_class"] == c).to_numpy())
            pick = rng.choice(idx, min(k, len(idx)), replace=False)
            for j in range(k):
                ax = axes[row, col * k + j]
                ax.axis("off")
                if j < len(pick):
                    ax.imshow(ds.frame(int(pick[j]))[0], cmap="gray", vmin=-1, vmax=1)
                    ax.set_title(f"{kind} {c}\n{ds.times[pick[j]]:%m-%d %H:%M}", fontsize=7)
    fig.suptitle("GOES class at frame time: real AIA 171 browse frames (left) vs the SYNTHETIC "
                 "embedded default (right)", fontsize=9)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with io.atomic_path(args.out) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    print(f"wrote {args.out} ({', '.join(classes)}; {io.command_line()} at {io.git_commit()})")


if __name__ == "__main__":
    main()
