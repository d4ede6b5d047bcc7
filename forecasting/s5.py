"""The S5 state-space layer (Smith et al. 2023) and its pre-norm block, per ../shared/spec/metrics.md.

    HiPPO-LegS A -> normal part S = A + p p^T -> Lambda = -1/2 + i eig(-i S_skew), V
    B~ = V^-1 B,  C~ = C V,  ZOH: Lambda_bar = exp(Lambda Delta), B_bar = (Lambda_bar - 1)/Lambda B~
    x_k = Lambda_bar x_{k-1} + B_bar u_k,  y_k = 2 Re(C~ x_k) + D u_k   (conjugate symmetry: P/2 states)

The recurrence runs as a parallel associative scan (log2 L steps of the operator
(a_i, b_i) o (a_j, b_j) = (a_j a_i, a_j b_i + b_j)); `mode="sequential"` is the plain loop, kept as
the reference the scan is tested and benchmarked against.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
from solargen.errors import SolargenError

# Parameters trained without weight decay and at a lower learning rate (metrics.md).
SSM_PARAMETERS = ("Lambda_re", "Lambda_im", "B_re", "B_im", "log_step")


def hippo_legs(n: int) -> torch.Tensor:
    """HiPPO-LegS matrix A (n x n): -sqrt((2i+1)(2k+1)) below the diagonal, -(i+1) on it."""
    idx = torch.arange(n, dtype=torch.float64)
    a = -torch.sqrt((2 * idx[:, None] + 1) * (2 * idx[None, :] + 1))
    a = torch.tril(a, diagonal=-1) - torch.diag(idx + 1)
    return a


def hippo_n_diagonal(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigen-decomposition of the normal part of HiPPO-LegS: (Lambda (n,) complex, V (n, n))."""
    a = hippo_legs(n)
    p = torch.sqrt(torch.arange(n, dtype=torch.float64) + 0.5)
    s = a + p[:, None] * p[None, :]                 # diag(S) = -1/2, off-diagonal skew-symmetric
    skew = s - torch.diag(torch.diagonal(s))
    eig_im, v = torch.linalg.eigh(-1j * skew.to(torch.complex128))
    lam = torch.complex(torch.full_like(eig_im, -0.5), eig_im)
    return lam, v


def parallel_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """All prefixes x_k = a_k x_{k-1} + b_k (x_{-1} = 0) along dim -2 in ceil(log2 L) steps.

    a: (L, P) (time-invariant systems need no batch copy) or b's shape; b: (..., L, P).
    Hillis-Steele doubling of the associative operator; each step combines element t with
    element t - d (the earlier one on the left).
    """
    length = b.shape[-2]
    d = 1
    while d < length:
        a_prev, b_prev = a[..., :-d, :], b[..., :-d, :]
        a_cur, b_cur = a[..., d:, :], b[..., d:, :]
        b = torch.cat([b[..., :d, :], a_cur * b_prev + b_cur], dim=-2)
        a = torch.cat([a[..., :d, :], a_cur * a_prev], dim=-2)
        d *= 2
    return b


def sequential_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The same recurrence as a Python loop over time (reference and benchmark baseline)."""
    a = a.expand_as(b)
    x = torch.zeros_like(b[..., 0, :])
    out = []
    for k in range(b.shape[-2]):
        x = a[..., k, :] * x + b[..., k, :]
        out.append(x)
    return torch.stack(out, dim=-2)


class S5(nn.Module):
    """Multi-input multi-output diagonal SSM: (B, L, H) -> (B, L, H).

    state_size is the HiPPO size N (even); conjugate symmetry keeps P = N/2 complex states.
    """

    def __init__(self, d_model: int, state_size: int = 64, dt_min: float = 1e-3,
                 dt_max: float = 1e-1, clip_eigs: bool = True):
        super().__init__()
        if state_size % 2:
            raise SolargenError(f"S5 state_size must be even (conjugate pairs), got {state_size}")
        self.d_model, self.state_size, self.clip_eigs = d_model, state_size, clip_eigs
        half = state_size // 2
        lam, v = hippo_n_diagonal(state_size)
        # eigh sorts the imaginary parts ascending: the first half holds one of each conjugate pair
        lam, v_half = lam[:half], v[:, :half]
        v_inv = v_half.conj().T                                     # V unitary: V^-1 = V^H
        b = torch.randn(state_size, d_model, dtype=torch.float64) / math.sqrt(d_model)  # lecun
        b_tilde = v_inv @ b.to(torch.complex128)                    # (P, H)
        c = torch.complex(torch.randn(d_model, state_size, dtype=torch.float64),
                          torch.randn(d_model, state_size, dtype=torch.float64))
        c_tilde = (c / math.sqrt(2 * state_size)) @ v_half          # (H, P)
        self.Lambda_re = nn.Parameter(lam.real.float())
        self.Lambda_im = nn.Parameter(lam.imag.float())
        self.B_re = nn.Parameter(b_tilde.real.float())
        self.B_im = nn.Parameter(b_tilde.imag.float())
        self.C_re = nn.Parameter(c_tilde.real.float())
        self.C_im = nn.Parameter(c_tilde.imag.float())
        self.D = nn.Parameter(torch.randn(d_model))
        log_dt = torch.rand(half) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        self.log_step = nn.Parameter(log_dt)

    def discretise(self) -> tuple[torch.Tensor, torch.Tensor]:
        """ZOH: (Lambda_bar (P,), B_bar (P, H)), complex64."""
        re = self.Lambda_re.clamp(max=-1e-4) if self.clip_eigs else self.Lambda_re
        lam = torch.complex(re, self.Lambda_im)
        lam_bar = torch.exp(lam * self.log_step.exp())
        b_tilde = torch.complex(self.B_re, self.B_im)
        b_bar = ((lam_bar - 1.0) / lam)[:, None] * b_tilde
        return lam_bar, b_bar

    def forward(self, u: torch.Tensor, mode: str = "parallel") -> torch.Tensor:
        lam_bar, b_bar = self.discretise()
        bu = torch.einsum("blh,ph->blp", u.to(b_bar.dtype), b_bar)
        a = lam_bar.expand(u.shape[1], -1)
        if mode == "parallel":
            x = parallel_scan(a, bu)
        elif mode == "sequential":
            x = sequential_scan(a, bu)
        else:
            raise SolargenError(f"unknown S5 scan mode {mode!r}; use 'parallel' or 'sequential'")
        c_tilde = torch.complex(self.C_re, self.C_im)
        y = 2.0 * torch.einsum("blp,hp->blh", x, c_tilde).real
        return y + self.D * u


class SSMBlock(nn.Module):
    """Pre-norm block: y = x + S5(LN(x)); y = y + MLP(LN(y))."""

    def __init__(self, d_model: int, state_size: int = 64, mlp_ratio: float = 2.0,
                 dropout: float = 0.0):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.ssm = S5(d_model, state_size)
        hidden = int(d_model * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, d_model), nn.Dropout(dropout))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mode: str = "parallel") -> torch.Tensor:
        x = x + self.drop(self.ssm(self.norm1(x), mode=mode))
        return x + self.mlp(self.norm2(x))
