"""NNGP kernel: closed form, properties, and agreement with sampled random-mask ReLU networks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hvgp.baselines.gp import NNGPKernel, effective_weight_var


def numpy_nngp(x: np.ndarray, depth: int, sw: float, sb: float) -> np.ndarray:
    """Independent NumPy transcription of the arc-cosine recursion (dense weights, σ_w² = sw)."""
    k = sb + sw * x @ x.T / x.shape[1]
    for _ in range(depth):
        d = np.sqrt(np.diag(k))
        norm = np.outer(d, d)
        theta = np.arccos(np.clip(k / norm, -1.0, 1.0))
        k = sb + sw * norm / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * np.cos(theta))
    return k


def kernel_matrix(kernel: NNGPKernel, x: torch.Tensor) -> torch.Tensor:
    return kernel(x).to_dense().detach()


def sample_masked_relu_outputs(
    x: torch.Tensor,
    depth: int,
    width: int,
    n_nets: int,
    sw: float,
    sb: float,
    keep: float,
    density: float,
    gen: torch.Generator,
    chunk: int = 250,
) -> torch.Tensor:
    """Scalar outputs ``(n_nets, N)`` of random ReLU MLPs whose every weight layer is
    ``w · m · z / keep`` with ``w ~ N(0, sw / fan_in)`` (dense fan-in), a random topology
    ``m ~ Bernoulli(density)`` fixed per network, and ``z ~ Bernoulli(keep)`` drawn once per
    network (a function sample), biases ``N(0, sb)``."""
    outs = []
    for start in range(0, n_nets, chunk):
        b = min(chunk, n_nets - start)
        h, fan_in = x.expand(b, *x.shape), x.shape[-1]
        for layer, fan_out in enumerate([width] * depth + [1]):
            w = torch.randn(b, fan_in, fan_out, generator=gen) * math.sqrt(sw / fan_in)
            m = torch.rand(b, fan_in, fan_out, generator=gen) < density
            z = torch.rand(b, fan_in, fan_out, generator=gen) < keep
            bias = torch.randn(b, 1, fan_out, generator=gen) * math.sqrt(sb)
            h = (h if layer == 0 else torch.relu(h)) @ (w * (m & z) / keep) + bias
            fan_in = fan_out
        outs.append(h[..., 0])
    return torch.cat(outs)


def test_nngp_kernel_matches_numpy_recursion() -> None:
    x = np.random.default_rng(0).standard_normal((6, 4))
    for depth in (0, 1, 3):
        k = NNGPKernel(depth, weight_var=1.7, bias_var=0.2).double()
        got = kernel_matrix(k, torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(got, numpy_nngp(x, depth, 1.7, 0.2), rtol=1e-6, atol=1e-9)


def test_nngp_kernel_masks_scale_weight_variance_by_density_over_keep_prob() -> None:
    x = torch.randn(5, 3, dtype=torch.float64)
    masked = NNGPKernel(2, weight_var=2.0, bias_var=0.1, keep_prob=0.8, density=0.3).double()
    dense = NNGPKernel(2, weight_var=2.0 * 0.3 / 0.8, bias_var=0.1).double()
    torch.testing.assert_close(kernel_matrix(masked, x), kernel_matrix(dense, x))
    assert effective_weight_var(2.0, 0.8, 0.3) == pytest.approx(0.75)


def test_nngp_kernel_matches_sampled_wide_random_mask_relu_networks() -> None:
    """The theory-to-code link: 3000 sampled width-256 masked ReLU nets, output covariance."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, generator=gen)
    sw, sb, keep, density, depth = 2.0, 0.1, 0.9, 0.5, 2
    f = sample_masked_relu_outputs(x, depth, 256, 3000, sw, sb, keep, density, gen)
    empirical = (f.T @ f / f.shape[0]).double()  # outputs have mean 0 by construction
    kernel = NNGPKernel(depth, sw, sb, keep_prob=keep, density=density).double()
    analytic = kernel_matrix(kernel, x.double())
    rel = float((empirical - analytic).norm() / analytic.norm())
    assert rel < 0.07, f"relative Frobenius error {rel:.3f}"
    # The mask correction matters: the unmasked kernel is far off the same samples.
    unmasked = kernel_matrix(NNGPKernel(depth, sw, sb).double(), x.double())
    assert float((empirical - unmasked).norm() / unmasked.norm()) > 0.3


@pytest.mark.slow
def test_nngp_kernel_matches_sampled_width_512_networks() -> None:
    """The brief's sizes: 2000 networks of width 512 (two hidden layers), sparser masks."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5, 16, generator=gen)
    f = sample_masked_relu_outputs(x, 2, 512, 2000, 2.0, 0.05, 0.9, 0.3, gen)
    empirical = (f.T @ f / f.shape[0]).double()
    kernel = NNGPKernel(2, 2.0, 0.05, keep_prob=0.9, density=0.3).double()
    analytic = kernel_matrix(kernel, x.double())
    assert float((empirical - analytic).norm() / analytic.norm()) < 0.07


@settings(max_examples=25, deadline=None)
@given(
    depth=st.integers(0, 4),
    weight_var=st.floats(0.1, 4.0),
    bias_var=st.floats(0.0, 1.0),
    keep=st.floats(0.05, 1.0),
    density=st.floats(0.05, 1.0),
    seed=st.integers(0, 2**16),
)
def test_nngp_kernel_is_symmetric_psd_and_consistent_on_diagonal(
    depth: int, weight_var: float, bias_var: float, keep: float, density: float, seed: int
) -> None:
    x = torch.randn(7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    k = NNGPKernel(depth, weight_var, bias_var, keep_prob=keep, density=density).double()
    full = kernel_matrix(k, x)
    torch.testing.assert_close(full, full.T)
    assert torch.linalg.eigvalsh(full).min() > -1e-8 * full.diagonal().max()
    torch.testing.assert_close(k(x, diag=True).detach(), full.diagonal())


def test_nngp_kernel_hyperparameters_get_gradients() -> None:
    k = NNGPKernel(2, weight_var=1.0, bias_var=0.1).double()
    x = torch.randn(4, 2, dtype=torch.float64)
    kernel_matrix_with_grad = k(x).to_dense()
    kernel_matrix_with_grad.sum().backward()
    assert torch.isfinite(k.raw_weight_var.grad).all() and k.raw_weight_var.grad.abs().sum() > 0
    assert torch.isfinite(k.raw_bias_var.grad).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"depth": -1}, "depth"),
        ({"depth": 1, "keep_prob": 0.0}, "keep_prob"),
        ({"depth": 1, "density": 1.5}, "density"),
        ({"depth": 1, "weight_var": 0.0}, "weight_var"),
    ],
)
def test_nngp_kernel_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        NNGPKernel(**kwargs)
