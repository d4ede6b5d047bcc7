"""Training-set remedies for class imbalance, compared by the augmentation ablation.

Strategies (`STRATEGIES`):
    none                 the real training samples as they are
    classical-gentle     on-the-fly vertical flips and rotations within 10 degrees (the reference
                         paper's flare-prediction variant)
    classical-broad      on-the-fly flips, rotation, affine translation and shear (the paper's
                         classification variant)
    classical-copies     N extra samples per minority class: broad-transformed copies of real
                         minority training samples, a fixed set per (set index) seed (the paper's
                         "classical" arm of the classification experiment; the gentle variant
                         cannot make hundreds of distinct copies of a few dozen X frames)
    oversample           minority samples drawn more often: class-balanced sampling with
                         replacement
    class-weight         class-weighted loss (inverse frequency of the real training counts)
    synthetic            N DDPM frames per minority class added to the training set
    synthetic+classical  synthetic, plus the gentle on-the-fly transform on every training sample

Frames are normalised to [-1, 1] with -1 the dark sky, so geometric transforms fill with -1.
A history (T, C, H, W) gets one transform for all its frames. Samples that are not real
observations carry an `origin` ("synthetic" or "classical-copy") so the runner can prove they never
reach a validation or test set (`count_origin`).
"""
from __future__ import annotations

from dataclasses import dataclass

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import ConcatDataset, Dataset, TensorDataset
from torchvision.transforms import v2

from solargen.errors import SolargenError

CLASSICAL_VARIANTS = ("gentle", "broad")
SKY = -1.0


class AugmentError(SolargenError):
    """An unknown strategy or variant, or a training set that cannot serve it."""


@dataclass(frozen=True)
class Strategy:
    """What a strategy does to the training set and the loss."""

    name: str
    online: str = ""             # classical variant applied on the fly to every training sample
    copies: str = ""             # classical variant of the N-per-class transformed copies
    synthetic: bool = False      # N DDPM frames per minority class
    oversample: bool = False     # class-balanced sampling with replacement
    class_weight: bool = False   # inverse-frequency weighted loss

    @property
    def uses_n(self) -> bool:
        """Whether the strategy adds N samples per minority class (an axis of the grid)."""
        return self.synthetic or bool(self.copies)


STRATEGIES: dict[str, Strategy] = {s.name: s for s in (
    Strategy("none"),
    Strategy("classical-gentle", online="gentle"),
    Strategy("classical-broad", online="broad"),
    Strategy("classical-copies", copies="broad"),
    Strategy("oversample", oversample=True),
    Strategy("class-weight", class_weight=True),
    Strategy("synthetic", synthetic=True),
    Strategy("synthetic+classical", synthetic=True, online="gentle"),
)}


def get_strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise AugmentError(f"unknown strategy {name!r}; choose from {list(STRATEGIES)}")
    return STRATEGIES[name]


def classical_transform(variant: str) -> v2.Transform:
    """gentle: vertical flip + rotation within 10 degrees; broad: both flips, rotation within 30
    degrees, translation up to 10 % and shear up to 10 degrees."""
    if variant == "gentle":
        return v2.Compose([v2.RandomVerticalFlip(), v2.RandomRotation(10, fill=SKY)])
    if variant == "broad":
        return v2.Compose([v2.RandomHorizontalFlip(), v2.RandomVerticalFlip(),
                           v2.RandomAffine(degrees=30, translate=(0.1, 0.1),
                                           shear=(-10, 10, -10, 10), fill=SKY)])
    raise AugmentError(f"unknown classical variant {variant!r}; choose from {CLASSICAL_VARIANTS}")


def seeded(transform: v2.Transform, x: torch.Tensor, seed: int) -> torch.Tensor:
    """`transform(x)` with its random parameters fixed by `seed` (global RNG left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return transform(x)


class Transformed(Dataset):
    """A dataset whose inputs pass through `transform` on every access (on-the-fly augmentation)."""

    def __init__(self, base: Dataset, transform: v2.Transform):
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, k: int):
        x, y = self.base[k]
        return self.transform(x), y


def minority_picks(groups: np.ndarray, wanted: list, n_per_group: int, seed: int) -> np.ndarray:
    """Indices into `groups` (e.g. the class letters of the training samples): `n_per_group` for
    each value in `wanted`, cycling through a seeded permutation of that value's samples (each used
    as evenly as possible). A value with no sample contributes none."""
    rng = np.random.default_rng(seed)
    groups = np.asarray(groups, dtype=object)
    picks = [np.resize(rng.permutation(idx), n_per_group)
             for idx in (np.flatnonzero(groups == g) for g in wanted) if len(idx) and n_per_group]
    return np.concatenate(picks).astype(int) if picks else np.zeros(0, dtype=int)


class ClassicalCopies(Dataset):
    """Transformed copies of real training samples `base[picks[k]]`; copy k always gets the same
    transform (seed + k), so the copies are a fixed set like a synthetic set."""

    origin = "classical-copy"

    def __init__(self, base: Dataset, picks: np.ndarray, variant: str, seed: int):
        self.base, self.picks, self.seed = base, np.asarray(picks, dtype=int), seed
        self.transform = classical_transform(variant)
        self.targets = np.asarray(base.targets, dtype=int)[self.picks]

    def __len__(self) -> int:
        return len(self.picks)

    def __getitem__(self, k: int):
        x, y = self.base[int(self.picks[k])]
        return seeded(self.transform, x, self.seed * 1_000_003 + k), y


class SyntheticSamples(Dataset):
    """Generated frames (N, C, H, W) in [-1, 1] with their targets, as training samples.

    For a sequence model (`history` > 1) each frame becomes a history:
        latest  the frame replaces the last frame of a real training history of the same target
                class (`real`, a SequenceDataset), so the history keeps real temporal evolution
                and ends in the generated frame; a class with no real history to host it is an
                error (a history of another class would teach the wrong label);
        repeat  the frame held constant over the whole history (a static sun).
    """

    origin = "synthetic"

    def __init__(self, frames: np.ndarray, targets: np.ndarray, history: int = 1,
                 mode: str = "latest", real: Dataset | None = None, seed: int = 0):
        if len(frames) != len(targets):
            raise AugmentError(f"{len(frames)} synthetic frames but {len(targets)} targets")
        if history > 1 and mode not in ("latest", "repeat"):
            raise AugmentError(f"synthetic history mode must be 'latest' or 'repeat', got {mode!r}")
        if history > 1 and mode == "latest" and (real is None or len(real) == 0):
            raise AugmentError("'latest' synthetic histories need real training histories")
        self.frames = np.asarray(frames, dtype=np.float32)
        self.targets = np.asarray(targets, dtype=int)
        self.history, self.mode, self.real = history, mode, real
        self.hosts = np.zeros(len(frames), dtype=int)
        if history > 1 and mode == "latest":
            real_targets = np.asarray(real.targets)
            rng = np.random.default_rng(seed)
            for c in np.unique(self.targets):
                mine = np.flatnonzero(self.targets == c)
                pool = np.flatnonzero(real_targets == c)
                if len(pool) == 0:
                    raise AugmentError(f"{len(mine)} synthetic frames of target class {c} have no real "
                                       f"training history of that class to end; use "
                                       f"sequence_synthetic: repeat, or leave the class out")
                self.hosts[mine] = np.resize(rng.permutation(pool), len(mine))

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, k: int):
        x = torch.from_numpy(self.frames[k])
        y = torch.as_tensor(self.targets[k])
        if self.history <= 1:
            return x, y
        if self.mode == "repeat":
            return x.unsqueeze(0).repeat(self.history, 1, 1, 1), y
        seq, _ = self.real[int(self.hosts[k])]
        seq = seq.clone()
        seq[-1] = x
        return seq, y


def count_origin(dataset: Dataset, origin: str) -> int:
    """How many samples of `dataset` (through Transformed / ConcatDataset wrappers) come from
    `origin` ("synthetic" or "classical-copy")."""
    if getattr(dataset, "origin", None) == origin:
        return len(dataset)
    if isinstance(dataset, ConcatDataset):
        return sum(count_origin(d, origin) for d in dataset.datasets)
    if isinstance(dataset, Transformed):
        return count_origin(dataset.base, origin)
    return 0


def dataset_targets(dataset: Dataset) -> np.ndarray:
    """Targets of a FrameDataset / SequenceDataset / extra-sample set, or of a concatenation."""
    if isinstance(dataset, ConcatDataset):
        return np.concatenate([dataset_targets(d) for d in dataset.datasets])
    if isinstance(dataset, Transformed):
        return dataset_targets(dataset.base)
    if isinstance(dataset, TensorDataset):
        return dataset.tensors[1].numpy().astype(int)
    return np.asarray(dataset.targets, dtype=int)


def oversample_weights(targets: np.ndarray) -> np.ndarray:
    """Per-sample draw weights that make every present class equally likely (1 / class count)."""
    targets = np.asarray(targets, dtype=int)
    counts = np.bincount(targets)
    return 1.0 / counts[targets]


# ----------------------------------------------------------------------------- the trainer's own

ROTATE_DEGREES = 10.0


def augment_batch(x: torch.Tensor, kind: str) -> torch.Tensor:
    """flips-rotate: per sample, horizontal and vertical flips (p = 0.5 each) and a rotation
    within +-10 degrees, the sky filled with -1; a history (B, T, C, H, W) moves as one."""
    if kind == "none":
        return x
    shape = x.shape
    x = x.reshape(shape[0], -1, *shape[-2:])
    b = x.shape[0]
    flip = torch.rand(b, 2, device=x.device) < 0.5
    x = torch.where(flip[:, 0, None, None, None], x.flip(-1), x)
    x = torch.where(flip[:, 1, None, None, None], x.flip(-2), x)
    angle = (torch.rand(b, device=x.device) * 2 - 1) * math.radians(ROTATE_DEGREES)
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x + 1.0, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1.0
    return x.reshape(shape)
