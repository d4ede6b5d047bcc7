"""The solar-domain autoencoder: a small convolutional autoencoder of solar frames.

Its latent vector is the project's solar feature space: eval/ measures domain FID, cluster metrics
and novelty in it, and the class+latent diffusion model (conditioning kind `class_latent`) is
conditioned on it, as the reference paper conditions its third model on a ceVAE latent.
`train_model` is the minibatch loop every such small network of the project uses.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn
from tqdm.auto import tqdm

from solargen.errors import SolargenError


class AutoencoderError(SolargenError):
    """Frames or settings the autoencoder cannot use."""


class SolarAutoencoder(ModelMixin, ConfigMixin):
    """A small convolutional autoencoder of solar frames; `encode` gives the latent feature.

    Frames of another size are area-resized to `sample_size` first. Stride-2 convolutions halve
    the image down to 4 x 4, a linear layer maps it to `latent_dim`; the decoder mirrors it."""

    @register_to_config
    def __init__(self, in_channels: int = 1, sample_size: int = 64, latent_dim: int = 128,
                 base_channels: int = 16, max_channels: int = 64):
        super().__init__()
        n_down = int(round(math.log2(sample_size / 4)))
        if n_down < 1 or 4 * 2 ** n_down != sample_size:
            raise AutoencoderError(f"sample_size must be 4 * a power of two >= 8, got {sample_size}")
        widths = [min(base_channels * 2 ** i, max_channels) for i in range(n_down)]
        enc, prev = [], in_channels
        for w in widths:
            enc += [nn.Conv2d(prev, w, 4, stride=2, padding=1), nn.GroupNorm(min(8, w), w), nn.SiLU()]
            prev = w
        self.encoder = nn.Sequential(*enc, nn.Flatten(), nn.Linear(prev * 16, latent_dim))
        dec, outs = [], list(reversed([in_channels] + widths[:-1]))
        for i, w in enumerate(outs):
            dec.append(nn.ConvTranspose2d(prev, w, 4, stride=2, padding=1))
            if i < len(outs) - 1:
                dec += [nn.GroupNorm(min(8, w), w), nn.SiLU()]
            prev = w
        self.decoder_input = nn.Linear(latent_dim, widths[-1] * 16)
        self.decoder = nn.Sequential(*dec)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        size = self.config.sample_size
        if x.shape[1] != self.config.in_channels:
            raise AutoencoderError(f"encoder was trained on {self.config.in_channels}-channel frames, "
                               f"got {x.shape[1]} channels")
        x = x.to(self.device, self.dtype)
        return x if x.shape[-1] == size and x.shape[-2] == size else F.interpolate(x, (size, size), mode="area")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.prepare(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.decoder_input(z).reshape(len(z), -1, 4, 4)
        return torch.tanh(self.decoder(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


@dataclass
class FitConfig:
    """Minibatch training of a small network on in-memory frames (the autoencoder here; eval's
    fidelity classifier and flux regressor)."""

    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    seed: int = 0
    device: str = "cpu"


def train_model(model: nn.Module, frames: np.ndarray, targets: np.ndarray | None,
                loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
                config: FitConfig, desc: str) -> list[float]:
    """Minibatch Adam on in-memory frames; loss_fn(model, x, y) -> scalar. Returns epoch losses.

    A NaN or infinite loss is an error, never skipped."""
    gen = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    model.to(torch.device(config.device))
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    x_all = torch.from_numpy(np.asarray(frames, dtype=np.float32))
    y_all = None if targets is None else torch.from_numpy(np.asarray(targets))
    losses = []
    model.train()
    for epoch in tqdm(range(config.epochs), desc=desc, leave=False):
        order = torch.randperm(len(x_all), generator=gen)
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            idx = order[start:start + config.batch_size]
            y = None if y_all is None else y_all[idx]
            loss = loss_fn(model, x_all[idx], y)
            if not torch.isfinite(loss):
                raise AutoencoderError(f"{desc}: non-finite loss {loss.item()} in epoch {epoch}")
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(idx)
        losses.append(total / len(x_all))
    model.eval()
    return losses


def train_autoencoder(frames: np.ndarray, config: FitConfig, latent_dim: int = 128,
                      sample_size: int | None = None) -> tuple[SolarAutoencoder, list[float]]:
    """Fit a SolarAutoencoder to real frames (N, C, H, W) by mean-squared reconstruction error."""
    if len(frames) < 2:
        raise AutoencoderError(f"need at least 2 real frames to train the domain encoder, got {len(frames)}")
    size = sample_size or min(64, frames.shape[-1])
    torch.manual_seed(config.seed)
    model = SolarAutoencoder(in_channels=frames.shape[1], sample_size=size, latent_dim=latent_dim)

    def loss_fn(m: nn.Module, x: torch.Tensor, _y: torch.Tensor | None) -> torch.Tensor:
        target = m.prepare(x)
        return F.mse_loss(m(x), target)

    losses = train_model(model, frames, None, loss_fn, config, "domain encoder")
    return model, losses
