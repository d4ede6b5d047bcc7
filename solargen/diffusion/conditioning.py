"""Flare conditioning for the UNet: GOES class and/or log10 X-ray flux -> a time-embedding offset.

kind = "class": an embedding table over A/B/C/M/X plus a last row for the null class.
kind = "flux":  log10 flux -> two linear layers (the reference paper's projection) to the
                time-embedding width; a learned null vector stands for "no condition".
kind = "both":  the sum of the two; the null condition nulls both (they are dropped together).
kind = "class_latent": the class embedding plus a projection of a latent vector of the solar-domain
                autoencoder (solargen/diffusion/autoencoder.py), the reference paper's third model;
                a learned null vector stands for "no latent". The module keeps, per class, the mean
                and a Cholesky factor of the training latents' (shrunk) covariance, so a latent can
                be drawn for a requested class when the user gives none.

The output is added to the UNet's time embedding (UNet2DModel with class_embed_type="identity"
receives it as `class_labels`). Classifier-free guidance needs the null path: `null` marks rows
whose condition is replaced by the null embedding (label dropout in training, the unconditional
half of the doubled batch in sampling).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from solargen.data.goes import GOES_CLASSES, check_flux, flux_to_letter
from solargen.errors import SolargenError

KINDS = ("class", "flux", "both", "class_latent")


class ConditioningError(SolargenError):
    """A condition the model cannot take (unknown class, impossible flux, wrong kind)."""


class FlareConditioning(ModelMixin, ConfigMixin):
    """Maps flare conditions to a vector of the UNet's time-embedding width."""

    @register_to_config
    def __init__(self, kind: str = "class", embed_dim: int = 128,
                 classes: Sequence[str] = GOES_CLASSES, known_classes: Sequence[str] = GOES_CLASSES,
                 log_flux_center: float = -6.0, log_flux_scale: float = 2.0, latent_dim: int = 0):
        super().__init__()
        if kind not in KINDS:
            raise ConditioningError(f"unknown conditioning kind {kind!r}; choose one of {KINDS}")
        if (kind == "class_latent") != (latent_dim > 0):
            raise ConditioningError(f"latent_dim must be > 0 exactly for kind 'class_latent' "
                                    f"(got kind {kind!r}, latent_dim {latent_dim})")
        unknown = sorted(set(known_classes) - set(classes))
        if unknown:
            raise ConditioningError(f"known classes {unknown} are not in the class table {list(classes)}")
        self.class_embedding = (nn.Embedding(len(classes) + 1, embed_dim)
                                if kind in ("class", "both", "class_latent") else None)
        if kind in ("flux", "both"):
            self.flux_projection = nn.Sequential(nn.Linear(1, embed_dim), nn.SiLU(),
                                                 nn.Linear(embed_dim, embed_dim))
            self.null_flux = nn.Parameter(torch.zeros(embed_dim))
        else:
            self.flux_projection, self.null_flux = None, None
        if latent_dim:
            self.latent_projection = nn.Sequential(nn.Linear(latent_dim, embed_dim), nn.SiLU(),
                                                   nn.Linear(embed_dim, embed_dim))
            self.null_latent = nn.Parameter(torch.zeros(embed_dim))
            self.register_buffer("latent_mean", torch.zeros(len(classes), latent_dim))
            self.register_buffer("latent_scale_tril", torch.eye(latent_dim).repeat(len(classes), 1, 1))
        else:
            self.latent_projection, self.null_latent = None, None

    # ------------------------------------------------------------------ conditions -> tensors
    @property
    def uses_class(self) -> bool:
        return self.config.kind in ("class", "both", "class_latent")

    @property
    def uses_latent(self) -> bool:
        return self.config.kind == "class_latent"

    @property
    def uses_flux(self) -> bool:
        return self.config.kind in ("flux", "both")

    @property
    def null_index(self) -> int:
        return len(self.config.classes)

    def class_indices(self, flare_class: Sequence[str]) -> torch.Tensor:
        """Letters -> indices into the table; a class the model never saw is a clear error."""
        known = list(self.config.known_classes)
        out = []
        for letter in flare_class:
            if letter not in known:
                raise ConditioningError(f"flare class {letter!r} is unknown to this model; it was "
                                        f"trained on classes {', '.join(known)}")
            out.append(list(self.config.classes).index(letter))
        return torch.tensor(out, dtype=torch.long, device=self.device)

    def log_flux(self, goes_flux: Sequence[float]) -> torch.Tensor:
        """Fluxes (W m^-2) -> log10 tensor; NaN, <= 0 or impossible fluxes are clear errors."""
        values = [math.log10(check_flux(f)) for f in goes_flux]
        return torch.tensor(values, dtype=torch.float32, device=self.device)

    # ------------------------------------------------------------------ forward
    def forward(self, class_index: torch.Tensor | None = None, log_flux: torch.Tensor | None = None,
                null: torch.Tensor | None = None, latent: torch.Tensor | None = None) -> torch.Tensor:
        """(B,) class indices and/or (B,) log10 fluxes and/or (B, latent_dim) latents, (B,) bool
        null mask -> (B, embed_dim).

        Rows with null=True get the null embedding whatever their inputs hold."""
        batch = _batch_size(class_index, log_flux, null, latent)
        null = (torch.zeros(batch, dtype=torch.bool, device=self.device) if null is None
                else null.to(self.device, torch.bool))
        out = torch.zeros(batch, self.config.embed_dim, device=self.device, dtype=self.dtype)
        if self.uses_class:
            if class_index is None:
                raise ConditioningError("this model is conditioned on flare class: pass class_index")
            idx = torch.where(null, torch.full_like(class_index, self.null_index), class_index)
            out = out + self.class_embedding(idx.to(self.device))
        if self.uses_flux:
            if log_flux is None:
                raise ConditioningError("this model is conditioned on X-ray flux: pass log_flux")
            x = (log_flux.to(self.device, self.dtype) - self.config.log_flux_center) / self.config.log_flux_scale
            x = torch.where(null, torch.zeros_like(x), x)  # keeps the projection finite on null rows
            projected = self.flux_projection(x[:, None])
            # torch.where keeps null_flux in the graph every step (DDP needs every parameter used).
            out = out + torch.where(null[:, None], self.null_flux.expand_as(projected), projected)
        if self.uses_latent:
            if latent is None:
                raise ConditioningError("this model is conditioned on a domain latent: pass latent")
            if latent.shape[-1] != self.config.latent_dim:
                raise ConditioningError(f"latents must have {self.config.latent_dim} values, got "
                                        f"shape {tuple(latent.shape)}")
            z = torch.where(null[:, None], torch.zeros_like(latent), latent).to(self.device, self.dtype)
            projected = self.latent_projection(z)
            out = out + torch.where(null[:, None], self.null_latent.expand_as(projected), projected)
        return out

    def set_latent_distribution(self, class_index: torch.Tensor, latents: torch.Tensor) -> None:
        """Per-class mean and Cholesky factor of training latents (Ledoit-Wolf shrunk covariance,
        well defined for rare classes too; a class with one frame gets the pooled covariance)."""
        from sklearn.covariance import LedoitWolf
        z = latents.double().cpu().numpy()
        pooled = LedoitWolf().fit(z).covariance_
        for c in torch.unique(class_index).tolist():
            zc = z[(class_index == c).cpu().numpy()]
            cov = LedoitWolf().fit(zc).covariance_ if len(zc) > 1 else pooled
            cov = cov + 1e-6 * np.trace(cov) / len(cov) * np.eye(len(cov))
            self.latent_mean[c] = torch.as_tensor(zc.mean(axis=0), dtype=self.latent_mean.dtype)
            self.latent_scale_tril[c] = torch.as_tensor(np.linalg.cholesky(cov), dtype=self.latent_mean.dtype)

    def draw_latents(self, class_index: torch.Tensor, standard_normal: torch.Tensor) -> torch.Tensor:
        """Latents of the given classes from their training Gaussians: mean + L @ eps."""
        mean = self.latent_mean[class_index]
        tril = self.latent_scale_tril[class_index]
        eps = standard_normal.to(mean.device, mean.dtype)
        return mean + (tril @ eps[..., None])[..., 0]

    def null_embedding(self, batch: int) -> torch.Tensor:
        """The unconditional embedding, repeated for a batch."""
        null = torch.ones(batch, dtype=torch.bool, device=self.device)
        dummy_class = torch.zeros(batch, dtype=torch.long, device=self.device)
        dummy_flux = torch.zeros(batch, dtype=torch.float32, device=self.device)
        dummy_latent = torch.zeros(batch, self.config.latent_dim, device=self.device)
        return self(dummy_class if self.uses_class else None, dummy_flux if self.uses_flux else None, null,
                    dummy_latent if self.uses_latent else None)


def _batch_size(*tensors: torch.Tensor | None) -> int:
    sizes = {len(t) for t in tensors if t is not None}
    if len(sizes) != 1:
        raise ConditioningError(f"conditioning inputs need one common batch size, got {sorted(sizes)}")
    return sizes.pop()


def encode_labels(conditioning: FlareConditioning, flare_class: Sequence[str] | None,
                  goes_flux: Sequence[float] | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Validate user conditions against the model's kind and turn them into tensors.

    class model: flare_class required. flux model: goes_flux required. both: goes_flux required;
    the class letter follows from the flux, and a flare_class given too must agree with it."""
    kind = conditioning.config.kind
    if kind in ("class", "class_latent"):
        if goes_flux is not None:
            raise ConditioningError("this model is conditioned on flare class only; pass flare_class, "
                                    "not goes_flux")
        if flare_class is None:
            raise ConditioningError("this model is conditioned on flare class: pass flare_class")
        return conditioning.class_indices(flare_class), None
    if goes_flux is None:
        raise ConditioningError(f"this model is conditioned on X-ray flux ({kind}): pass goes_flux")
    log_flux = conditioning.log_flux(goes_flux)
    if kind == "flux":
        if flare_class is not None:
            raise ConditioningError("this model is conditioned on X-ray flux only; pass goes_flux, "
                                    "not flare_class")
        return None, log_flux
    letters = [flux_to_letter(f) for f in goes_flux]
    if flare_class is not None:
        clash = [(c, f) for c, f, l in zip(flare_class, goes_flux, letters) if c != l]
        if clash or len(flare_class) != len(letters):
            raise ConditioningError(f"flare_class and goes_flux disagree (e.g. {clash[:1]}); for a "
                                    "class+flux model pass goes_flux alone")
    return conditioning.class_indices(letters), log_flux
