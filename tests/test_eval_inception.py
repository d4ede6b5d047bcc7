"""The offline InceptionV3 path: no network, clean-fid's own folder path gives the same features,
FID of a set with itself ~0 and a brightness-shifted copy scores higher (8 images, CPU)."""
from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
from PIL import Image

from eval import features, fid
from eval.features import CleanFidInception, get_extractor, inception_path, to_uint8_rgb


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")
    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def solar_like(n: int, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] / (size - 1) * 2 - 1
    disk = np.where(xx ** 2 + yy ** 2 < 0.8, -0.1, -0.95)
    frames = [disk + 0.6 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.03) + rng.normal(0, 0.05, (size, size))
              for cx, cy in rng.uniform(-0.5, 0.5, (n, 2))]
    return np.clip(np.asarray(frames, np.float32)[:, None], -1, 1)


def test_offline_inception_fid(no_network, tmp_path):
    assert inception_path().name == "default_1.pt"
    rng = np.random.default_rng(0)
    frames = solar_like(8, rng)
    extractor = get_extractor("inception", "cpu")
    feats = extractor(frames)
    assert feats.shape == (8, 2048) and np.isfinite(feats).all()
    assert fid.frechet_distance(feats, feats) < 1e-6
    brighter = extractor(np.clip(frames + 0.5, -1, 1))
    assert fid.frechet_distance(feats, brighter) > 1.0

    # clean-fid's folder path with the same network as its custom feature extractor agrees
    from cleanfid.fid import get_folder_features
    for i, img in enumerate(to_uint8_rgb(frames)):
        Image.fromarray(img[..., 0]).save(tmp_path / f"{i}.png")
    model = CleanFidInception(inception_path(), torch.device("cpu"))
    folder = get_folder_features(str(tmp_path), model, num_workers=0, batch_size=8,
                                 device=torch.device("cpu"), mode="clean", verbose=False)
    assert np.allclose(folder, feats, atol=1e-4)


def test_inception_weights_are_hash_checked(tmp_path):
    from eval.features import FeatureError, check_sha1
    check_sha1(inception_path(), features.INCEPTION_SHA1)          # the shipped file passes
    fake = tmp_path / "default_1.pt"
    fake.write_bytes(b"not the InceptionV3 weights")
    with pytest.raises(FeatureError, match="SHA-1 .* is not the pinned InceptionV3 weights"):
        check_sha1(fake, features.INCEPTION_SHA1)
