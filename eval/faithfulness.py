"""Conditioning faithfulness of a flux-conditioned generator.

A regressor (SmallCNN with one output) is trained on real training frames to read log10 GOES flux;
it then reads the generated frames, and its readings are set against the flux each frame was
requested with (Spearman rank correlation, scatter plot). The same regressor's rank correlation
on held-out real frames is the ceiling the generated value is judged against.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from solargen.diffusion.autoencoder import FitConfig, train_model  # noqa: E402
from eval.fidelity import SmallCNN  # noqa: E402
from solargen import io  # noqa: E402
from solargen.errors import SolargenError


def train_flux_regressor(frames: np.ndarray, goes_flux: np.ndarray,
                         config: FitConfig) -> tuple[SmallCNN, list[float]]:
    """Fit standardised log10(flux) by mean-squared error (the scaling is kept in the config)."""
    log_flux = np.log10(np.asarray(goes_flux, dtype=np.float64))
    if not np.isfinite(log_flux).all():
        raise SolargenError("flux regressor: training fluxes must be positive and finite")
    mean, std = float(log_flux.mean()), float(log_flux.std() or 1.0)
    torch.manual_seed(config.seed)   # initial weights independent of what ran before (a resumed eval)
    model = SmallCNN(in_channels=frames.shape[1], num_outputs=1, sample_size=min(64, frames.shape[-1]),
                     target_mean=mean, target_std=std)
    target = ((log_flux - mean) / std).astype(np.float32)

    def loss_fn(m, x, y):
        return F.mse_loss(m(x)[:, 0], y.to(m.device))

    losses = train_model(model, frames, target, loss_fn, config, "flux regressor")
    return model, losses


def read_log_flux(model: SmallCNN, frames: np.ndarray) -> np.ndarray:
    """log10 flux the regressor reads from frames."""
    z = model.predict(frames)[:, 0]
    return z * model.config.target_std + model.config.target_mean


def faithfulness_summary(model: SmallCNN, gen_frames: np.ndarray, requested_flux: np.ndarray,
                         real_frames: np.ndarray, real_flux: np.ndarray) -> dict:
    """Spearman of read vs requested log flux on generated frames, and on held-out real frames."""
    requested = np.log10(np.asarray(requested_flux, dtype=np.float64))
    read_gen = read_log_flux(model, gen_frames)
    true_real = np.log10(np.asarray(real_flux, dtype=np.float64))
    read_real = read_log_flux(model, real_frames)
    return {"n_generated": int(len(requested)), "n_real": int(len(true_real)),
            "spearman_generated": float(spearmanr(requested, read_gen).statistic),
            "spearman_real": float(spearmanr(true_real, read_real).statistic),
            "requested_log_flux": requested.tolist(), "read_log_flux": read_gen.tolist(),
            "real_log_flux": true_real.tolist(), "real_read_log_flux": read_real.tolist()}


def faithfulness_figure(summary: dict, path: str | Path) -> None:
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    ax.scatter(summary["real_log_flux"], summary["real_read_log_flux"], s=6, alpha=0.4,
               label=f"held-out real (N={summary['n_real']}, rho={summary['spearman_real']:.2f})")
    ax.scatter(summary["requested_log_flux"], summary["read_log_flux"], s=8, alpha=0.6,
               label=f"generated (N={summary['n_generated']}, rho={summary['spearman_generated']:.2f})")
    lims = [min(ax.get_xlim()[0], ax.get_ylim()[0]), max(ax.get_xlim()[1], ax.get_ylim()[1])]
    ax.plot(lims, lims, "k--", lw=1)
    ax.set_xlabel("requested (generated) / true (real) log10 flux [W m$^{-2}$]")
    ax.set_ylabel("log10 flux read by the regressor")
    ax.legend(fontsize=7)
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
