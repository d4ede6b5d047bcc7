"""The S5 layer: HiPPO-N initialisation, ZOH, and the parallel scan against the plain recurrence."""
from __future__ import annotations

import torch

from forecasting.s5 import S5, SSMBlock, hippo_legs, hippo_n_diagonal, parallel_scan, sequential_scan


def test_hippo_normal_part_and_eigendecomposition():
    n = 8
    a = hippo_legs(n)
    assert a[3, 1] == -torch.sqrt(torch.tensor(7.0 * 3.0, dtype=torch.float64))
    assert a[2, 2] == -3 and a[1, 3] == 0
    lam, v = hippo_n_diagonal(n)
    assert torch.allclose(lam.real, torch.full((n,), -0.5, dtype=torch.float64))
    # eigenvalues come in conjugate pairs; the first half holds one of each
    assert torch.allclose(torch.sort(lam.imag).values, torch.sort(-lam.imag).values)
    assert (lam.imag[: n // 2] < 0).all()
    p = torch.sqrt(torch.arange(n, dtype=torch.float64) + 0.5)
    s = (a + p[:, None] * p[None, :]).to(torch.complex128)
    assert torch.allclose(v @ torch.diag(lam) @ v.conj().T, s, atol=1e-10)


def test_parallel_scan_matches_loop_on_complex_inputs():
    torch.manual_seed(0)
    a = torch.complex(torch.rand(37, 5) * 0.9, torch.rand(37, 5) * 0.3)
    b = torch.complex(torch.randn(3, 37, 5), torch.randn(3, 37, 5))
    assert torch.allclose(parallel_scan(a, b), sequential_scan(a, b), atol=1e-5)


def test_s5_scan_equals_sequential_recurrence_and_gradients_finite():
    torch.manual_seed(1)
    layer = S5(d_model=8, state_size=16)
    u = torch.randn(2, 200, 8)
    y_par = layer(u)
    y_seq = layer(u, mode="sequential")
    assert torch.allclose(y_par, y_seq, atol=1e-5, rtol=1e-4)
    # explicit ZOH recurrence with the full conjugate pair doubled
    lam_bar, b_bar = layer.discretise()
    x = torch.zeros(2, 8, dtype=torch.complex64)
    c = torch.complex(layer.C_re, layer.C_im)
    for k in (0, 1, 2):
        x = lam_bar * x + u[:, k].to(torch.complex64) @ b_bar.T
        y = 2 * (x @ c.T).real + layer.D * u[:, k]
        assert torch.allclose(y, y_par[:, k], atol=1e-5)
    y_par.square().mean().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_zoh_discretisation_and_stable_init():
    layer = S5(d_model=4, state_size=8)
    lam_bar, _ = layer.discretise()
    assert (lam_bar.abs() < 1).all()
    step = layer.log_step.exp()
    assert ((step >= 1e-3) & (step <= 1e-1)).all()


def test_ssm_block_pre_norm_residual():
    torch.manual_seed(2)
    block = SSMBlock(d_model=8, state_size=8)
    x = torch.randn(2, 30, 8)
    out = block(x)
    assert out.shape == x.shape
    assert torch.allclose(block(x, mode="sequential"), out, atol=1e-5)
