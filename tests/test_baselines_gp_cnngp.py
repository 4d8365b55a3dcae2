"""CNN-GP kernel: agreement with sampled wide masked CNNs, properties; its classifier/regressor."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hvgp.baselines.gp.cnngp import (
    CNN1D_CONVS,
    CNNGPClassifier,
    CNNGPKernel,
    CNNGPRegressor,
)
from hvgp.baselines.gp.nngp import NNGPKernel
from hvgp.nn.cnn import CNN1d


def kernel_matrix(kernel: CNNGPKernel, x: torch.Tensor) -> torch.Tensor:
    """The dense kernel matrix, detached."""
    return kernel(x).to_dense().detach()


def _layer(h: torch.Tensor, fan_out: int, sw: float, sb: float, keep: float, density: float,
           gen: torch.Generator) -> torch.Tensor:
    """``h @ (w m z / keep) + b`` for a batch of networks: ``h`` is ``(B, rows, fan_in)``."""
    b, _, fan_in = h.shape
    w = torch.randn(b, fan_in, fan_out, generator=gen) * math.sqrt(sw / fan_in)
    m = torch.rand(b, fan_in, fan_out, generator=gen) < density
    z = torch.rand(b, fan_in, fan_out, generator=gen) < keep
    return h @ (w * (m & z) / keep) + torch.randn(b, 1, fan_out, generator=gen) * math.sqrt(sb)


def sample_masked_cnn_outputs(
    x: torch.Tensor, convs: Sequence[tuple[int, int, int]], dense_depth: int, width: int,
    hidden: int, n_nets: int, sw: float, sb: float, keep: float, densities: Sequence[float],
    gen: torch.Generator, chunk: int = 250,
) -> torch.Tensor:
    """Scalar outputs ``(n_nets, N)`` of random 1-D ReLU CNNs (no BatchNorm) on signals
    ``x`` ``(N, L)``: each conv ``(k, s, pad)`` is a patch matmul with ``width`` channels, then
    flatten, ``dense_depth`` ReLU layers of ``hidden`` units and a scalar read-out. Every
    weight is ``w · m · z / keep``, ``w ~ N(0, sw / fan_in)``, ``m ~ Bernoulli(density_l)``
    and ``z ~ Bernoulli(keep)`` drawn once per network (a function sample)."""
    n = x.shape[0]
    outs = []
    for start in range(0, n_nets, chunk):
        b = min(chunk, n_nets - start)
        h = x.reshape(1, n, 1, -1).expand(b, n, 1, x.shape[-1])  # (B, N, C, L)
        for layer, (k, s, pad) in enumerate(convs):
            if layer:
                h = torch.relu(h)
            patches = torch.nn.functional.pad(h, (pad, pad)).unfold(-1, k, s)  # (B,N,C,L',k)
            length = patches.shape[3]
            flat = patches.permute(0, 1, 3, 2, 4).reshape(b, n * length, -1)
            h = _layer(flat, width, sw, sb, keep, densities[layer], gen)
            h = h.reshape(b, n, length, width).transpose(2, 3)
        h = torch.relu(h).reshape(b, n, -1)
        for i, fan_out in enumerate([hidden] * dense_depth + [1]):
            h = _layer(torch.relu(h) if i else h, fan_out, sw, sb, keep,
                       densities[len(convs) + i], gen)
        outs.append(h[..., 0])
    return torch.cat(outs)


def relative_error(empirical: torch.Tensor, analytic: torch.Tensor) -> float:
    return float((empirical - analytic).norm() / analytic.norm())


def test_cnngp_kernel_matches_sampled_wide_masked_cnns() -> None:
    """The theory-to-code link, hvgp's cnn1d conv shapes: 3000 sampled masked CNNs
    (64 channels, 128 hidden units, Bernoulli topology d = 0.5, random mask keep 0.9)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 12, generator=gen)
    sw, sb, keep, density = 2.0, 0.1, 0.9, 0.5
    f = sample_masked_cnn_outputs(x, CNN1D_CONVS, 1, 64, 128, 3000, sw, sb, keep,
                                  [density] * 5, gen)
    empirical = (f.T @ f / f.shape[0]).double()  # mean 0 by construction
    kernel = CNNGPKernel(CNN1D_CONVS, 1, sw, sb, keep_prob=keep, density=density).double()
    analytic = kernel_matrix(kernel, x.double())
    rel = relative_error(empirical, analytic)
    assert rel < 0.05, f"relative Frobenius error {rel:.3f}"
    # the mask correction matters: the unmasked kernel is far off the same samples
    unmasked = kernel_matrix(CNNGPKernel(CNN1D_CONVS, 1, sw, sb).double(), x.double())
    assert relative_error(empirical, unmasked) > 0.3


@pytest.mark.slow
def test_cnngp_kernel_matches_wider_cnns_with_per_layer_densities() -> None:
    """Stronger: 6000 networks, 128 channels, ERK-like per-layer densities, length 20."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5, 20, generator=gen)
    dens = [1.0, 0.4, 0.3, 0.2, 0.8]
    f = sample_masked_cnn_outputs(x, CNN1D_CONVS, 1, 128, 256, 6000, 2.0, 0.05, 0.8, dens, gen)
    empirical = (f.T @ f / f.shape[0]).double()
    kernel = CNNGPKernel(CNN1D_CONVS, 1, 2.0, 0.05, keep_prob=0.8, density=dens).double()
    assert relative_error(empirical, kernel_matrix(kernel, x.double())) < 0.05


def test_cnngp_kernel_without_convolution_context_is_the_mlp_nngp() -> None:
    """A 1-wide, stride-1 convolution on one position is a dense layer: the MLP kernel."""
    x = torch.randn(6, 1, dtype=torch.float64)
    cnn = CNNGPKernel(((1, 1, 0),), dense_depth=2, weight_var=1.7, bias_var=0.2).double()
    mlp = NNGPKernel(3, weight_var=1.7, bias_var=0.2).double()
    torch.testing.assert_close(kernel_matrix(cnn, x), kernel_matrix(mlp, x))


def test_cnngp_kernel_chunks_and_blocks_agree_with_one_pass() -> None:
    x = torch.randn(23, 10, dtype=torch.float64)
    one = CNNGPKernel(bias_var=0.1, chunk_elements=10**9).double()
    small = CNNGPKernel(bias_var=0.1, chunk_elements=37).double()
    torch.testing.assert_close(kernel_matrix(small, x), kernel_matrix(one, x))
    torch.testing.assert_close(small(x[:5], x[5:]).to_dense(), kernel_matrix(one, x)[:5, 5:])
    torch.testing.assert_close(small(x[:5], x[5:10], diag=True),
                               kernel_matrix(one, x)[:5, 5:10].diagonal())


def test_cnngp_kernel_from_cnn1d_reads_architecture_and_mask_densities() -> None:
    net = CNN1d(40, 10)
    conv2 = net.features[3]
    conv2.weight_mask[:, :, 1:] = False  # density 1/3 in the second convolution
    k = CNNGPKernel.from_module(net, weight_var=2.0)
    assert k.convs == CNN1D_CONVS and k.depth == 1 and k.in_channels == 1
    assert k.densities == pytest.approx([1.0, 1 / 3, 1.0, 1.0, 1.0])


@settings(max_examples=20, deadline=None)
@given(
    weight_var=st.floats(0.1, 4.0),
    bias_var=st.floats(0.0, 1.0),
    keep=st.floats(0.05, 1.0),
    density=st.floats(0.05, 1.0),
    length=st.integers(1, 12),
    seed=st.integers(0, 2**16),
)
def test_cnngp_kernel_is_symmetric_psd_and_consistent_on_diagonal(
    weight_var: float, bias_var: float, keep: float, density: float, length: int, seed: int
) -> None:
    x = torch.randn(7, length, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    k = CNNGPKernel(weight_var=weight_var, bias_var=bias_var, keep_prob=keep, density=density,
                    chunk_elements=50).double()
    full = kernel_matrix(k, x)
    torch.testing.assert_close(full, full.T)
    # float64 round-off of the arc-cosine recursion reaches ~1e-8 relative on near-duplicate rows
    assert torch.linalg.eigvalsh(full).min() > -1e-6 * full.diagonal().max()
    torch.testing.assert_close(k(x, diag=True).detach(), full.diagonal(), rtol=1e-5, atol=1e-12)


def test_cnngp_kernel_hyperparameters_get_gradients() -> None:
    k = CNNGPKernel(weight_var=1.0, bias_var=0.1, chunk_elements=20).double()
    k(torch.randn(6, 8, dtype=torch.float64)).to_dense().sum().backward()
    assert torch.isfinite(k.raw_weight_var.grad).all() and k.raw_weight_var.grad.abs() > 0
    assert torch.isfinite(k.raw_bias_var.grad).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"convs": ()}, "convs"),
        ({"convs": ((3, 0, 1),)}, "convs"),
        ({"density": [0.5, 0.5]}, "one value per weight layer"),
        ({"density": 1.5}, "density"),
        ({"keep_prob": 0.0}, "keep_prob"),
        ({"weight_var": 0.0}, "weight_var"),
        ({"dense_depth": -1}, "depth"),
    ],
)
def test_cnngp_kernel_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CNNGPKernel(**kwargs)


def test_cnngp_kernel_rejects_rows_that_are_not_whole_signals() -> None:
    with pytest.raises(ValueError, match="inputs"):
        CNNGPKernel(in_channels=2)(torch.randn(3, 7)).to_dense()


# ---- estimators ------------------------------------------------------------------------------
def shifted_templates(n: int, seed: int, length: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Three classes of noisy local templates placed at random shifts (an MNIST-1D in small)."""
    rng = np.random.default_rng(seed)
    templates = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [-1, -1, 1, 1]], dtype=float)
    y = rng.integers(0, 3, n)
    x = 0.3 * rng.standard_normal((n, length))
    for i, (c, s) in enumerate(zip(y, rng.integers(0, length - 4, n))):
        x[i, s : s + 4] += templates[c]
    return x, y


def test_cnngp_classifier_beats_majority_on_shifted_templates() -> None:
    x, y = shifted_templates(150, 0)
    xt, yt = shifted_templates(300, 1)
    clf = CNNGPClassifier(device="cpu").fit(x, y)
    report = clf.evaluate(xt, yt)
    freq = np.bincount(y, minlength=3) / len(y)
    majority = {"accuracy": float((yt == freq.argmax()).mean()),
                "nll": float(-np.log(freq[yt]).mean())}
    assert report["accuracy"] > majority["accuracy"] + 0.25, (report, majority)
    assert report["nll"] < 0.8 * majority["nll"], (report, majority)
    probs = clf.predict(xt[:5], num_samples=8).probs
    assert probs.shape == (8, 5, 3)
    torch.testing.assert_close(probs.sum(-1), torch.ones(8, 5, dtype=probs.dtype))


def test_cnngp_classifier_float32_kernel_matches_float64() -> None:
    x, y = shifted_templates(60, 2)
    mean64, _ = CNNGPClassifier(device="cpu").fit(x, y).predict_latent(x[:10])
    mean32, _ = CNNGPClassifier(device="cpu", kernel_dtype=torch.float32).fit(x, y
                                                                              ).predict_latent(x[:10])
    torch.testing.assert_close(mean32, mean64, rtol=1e-3, atol=1e-3)


def test_cnngp_regressor_beats_the_mean() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 12))
    y = x[:, 3:6].sum(1) + 0.1 * rng.standard_normal(120)
    gp = CNNGPRegressor(device="cpu").fit(x[:80], y[:80], epochs=30)
    report = gp.evaluate(x[80:], y[80:])
    assert report["rmse"] < 0.6 * float(np.std(y[80:])), report


@pytest.mark.parametrize(
    "x, y, match",
    [
        (np.zeros((10, 8, 1)), np.zeros(10), "shape"),
        (np.zeros((10, 8)), np.zeros(9), "shape"),
        (np.full((10, 8), np.nan), np.arange(10) % 2, "NaN"),
        (np.zeros((10, 8)), np.zeros(10), "at least 2 classes"),
    ],
)
def test_cnngp_classifier_bad_input_raises_clear_errors(x: np.ndarray, y: np.ndarray,
                                                        match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CNNGPClassifier(device="cpu").fit(x, y)


def test_cnngp_classifier_predict_checks_features_and_fit() -> None:
    x, y = shifted_templates(30, 3)
    with pytest.raises(RuntimeError, match="not fitted"):
        CNNGPClassifier(device="cpu").predict(x)
    clf = CNNGPClassifier(device="cpu").fit(x, y)
    with pytest.raises(ValueError, match="features"):
        clf.predict(x[:, :8])
    with pytest.raises(ValueError, match="NaN"):
        clf.predict(np.full_like(x, np.nan))
