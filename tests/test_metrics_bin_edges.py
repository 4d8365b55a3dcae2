"""Equal-width bins are exact: a confidence equal to k/n lands in the bin the docs name.

The oracle is a hand-written binning in exact rational arithmetic (``fractions.Fraction``):
a confidence that is the float64 nearest to k/n (the literal ``0.55`` for 11/20) counts as
k/n itself, every other float is compared by its exact value. ``closed="right"`` puts k/n in
``((k-1)/n, k/n]``, ``closed="left"`` in ``[k/n, (k+1)/n)``. netcal and torchmetrics build
their edges with ``linspace`` (not exact k/n for some n), so they are used as oracles only
where their edges are exact: netcal at n = 15 and 25 (``np.linspace`` is exact there), and
torchmetrics' own bucketize-based binning fed the exact edges.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from netcal.metrics import ECE as NetcalECE
from torchmetrics.functional.classification.calibration_error import _ce_compute

from hvgp.metrics import bootstrap_ece, classwise_ece, confidence_histogram, ece, reliability_bins

N_BINS = (10, 15, 20, 25, 50, 100)


def _exact_bin(x: float, n: int, closed: str) -> int:
    """Bin of ``x`` among ``n`` equal-width bins, in exact rational arithmetic."""
    r = Fraction(x)
    for k in range(n + 1):
        if x == k / n:  # the float nearest k/n is "exactly on the edge k/n"
            r = Fraction(k, n)
    if closed == "right":  # ((k-1)/n, k/n], the first bin also holds 0
        return max(math.ceil(r * n), 1) - 1
    return min(math.floor(r * n), n - 1)  # [k/n, (k+1)/n), the last bin also holds 1


def _oracle_ece(conf: np.ndarray, hit: np.ndarray, n: int, closed: str):
    """Per-bin counts and ECE from the exact binning."""
    idx = np.array([_exact_bin(float(c), n, closed) for c in conf])
    count = np.bincount(idx, minlength=n)
    gap = np.abs(np.bincount(idx, hit, n) - np.bincount(idx, conf, n))
    return count, float(gap.sum() / len(conf))


def _on_every_edge(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Rows whose top-label confidence is exactly k/n for k = 1..n (3 rows each), C = n + 1."""
    conf = np.repeat(np.arange(1, n + 1) / n, 3)
    rest = (1.0 - conf) / n  # n other classes, each strictly below conf
    probs = np.concatenate([conf[:, None], np.repeat(rest[:, None], n, 1)], 1)
    g = np.random.default_rng(seed)
    hit = g.random(len(conf)) < 0.5
    labels = np.where(hit, 0, 1 + g.integers(0, n, len(conf)))
    return torch.as_tensor(probs), torch.as_tensor(labels), hit.astype(np.float64)


@pytest.mark.parametrize("closed", ["right", "left"])
@pytest.mark.parametrize("n", N_BINS)
def test_confidences_on_every_edge_land_in_the_documented_bin(n: int, closed: str) -> None:
    probs, labels, hit = _on_every_edge(n)
    conf = probs.max(1).values.numpy()
    count, expected = _oracle_ece(conf, hit, n, closed)
    bins = reliability_bins(probs, labels, n_bins=n, closed=closed)
    np.testing.assert_array_equal(bins["count"], count)
    np.testing.assert_array_equal(confidence_histogram(probs, n_bins=n, closed=closed)["count"],
                                  count)
    assert ece(probs, labels, n_bins=n, closed=closed) == pytest.approx(expected, abs=1e-12)
    assert bootstrap_ece(probs, labels, n_bins=n, closed=closed, n_boot=2)[0] == pytest.approx(
        expected, abs=1e-12)


@pytest.mark.parametrize("closed", ["right", "left"])
@pytest.mark.parametrize("n", N_BINS)
def test_bin_edges_are_the_float64_values_of_k_over_n(n: int, closed: str) -> None:
    probs, labels, _ = _on_every_edge(n)
    edges = reliability_bins(probs, labels, n_bins=n, closed=closed)["bin_edges"]
    np.testing.assert_array_equal(edges, np.arange(n + 1) / n)


@pytest.mark.parametrize("n", N_BINS)
def test_left_closed_bins_match_torchmetrics_binning_on_exact_edges(n: int) -> None:
    probs, labels, hit = _on_every_edge(n)
    # torchmetrics gives a confidence of exactly 1.0 an extra bin: keep it just below 1
    conf = probs.max(1).values.clamp(max=float(np.nextafter(1.0, 0.0)))
    tm = _ce_compute(conf, torch.as_tensor(hit), torch.arange(n + 1, dtype=torch.float64) / n,
                     norm="l1")
    assert ece(probs, labels, n_bins=n, closed="left") == pytest.approx(float(tm), abs=1e-12)


@pytest.mark.parametrize("n", [15, 25])  # where np.linspace(0, 1, n + 1) is exactly k/n
def test_left_closed_bins_match_netcal_where_its_edges_are_exact(n: int) -> None:
    assert np.array_equal(np.linspace(0, 1, n + 1), np.arange(n + 1) / n)
    probs, labels, hit = _on_every_edge(n)
    conf = probs.max(1).values.numpy()
    expected = float(NetcalECE(n, detection=True).measure(conf[:, None], hit))
    assert ece(probs, labels, n_bins=n, closed="left") == pytest.approx(expected, abs=1e-12)


def test_the_issues_two_examples() -> None:
    # 0.55 at 20 bins belongs to (0.5, 0.55]; 0.3 at 10 bins (left) to [0.3, 0.4).
    probs = torch.tensor([[0.55, 0.45], [0.55, 0.45], [0.58, 0.42]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1])
    bins = reliability_bins(probs, labels, n_bins=20)
    assert bins["count"][10] == 2 and bins["count"][11] == 1
    # bins: {0.55, 0.55: both right} gap 0.45 x2, {0.58 wrong} gap 0.58
    assert ece(probs, labels, n_bins=20) == pytest.approx((0.9 + 0.58) / 3)
    p3 = torch.tensor([[0.3, 0.25, 0.25, 0.2], [0.35, 0.25, 0.2, 0.2]], dtype=torch.float64)
    bins = reliability_bins(p3, torch.tensor([0, 1]), n_bins=10, closed="left")
    assert bins["count"][3] == 2 and bins["count"][2] == 0


@pytest.mark.parametrize("closed", ["right", "left"])
@pytest.mark.parametrize("n", N_BINS)
def test_classwise_bins_put_column_values_on_edges_in_the_documented_bin(n: int,
                                                                         closed: str) -> None:
    col0 = np.arange(n + 1) / n  # every edge, 0 and 1 included
    probs = np.stack([col0, 1.0 - col0], 1)
    labels = np.random.default_rng(1).integers(0, 2, n + 1)
    expected = np.mean([_oracle_ece(probs[:, k], (labels == k).astype(np.float64), n, closed)[1]
                        for k in range(2)])
    assert classwise_ece(probs, labels, n_bins=n, closed=closed) == pytest.approx(expected,
                                                                                  abs=1e-12)


@pytest.mark.parametrize("binning", ["width", "mass"])
def test_results_on_untied_random_data_are_unchanged_by_the_exact_edges(binning: str) -> None:
    g = torch.Generator().manual_seed(11)
    probs = (3 * torch.randn(3000, 10, generator=g, dtype=torch.float64)).softmax(-1)
    labels = torch.randint(0, 10, (3000,), generator=g)
    conf, pred = probs.max(1)
    hit = (pred == labels).double()
    for n in N_BINS:
        old = torch.linspace(0.0, 1.0, n + 1, dtype=torch.float64)
        if binning == "mass":
            old = torch.quantile(conf, old)
            old[0], old[-1] = 0.0, 1.0
        idx = (torch.searchsorted(old, conf) - 1).clamp(0, n - 1)
        gaps = sum(abs(float(hit[idx == b].sum() - conf[idx == b].sum())) for b in range(n))
        assert ece(probs, labels, n_bins=n, binning=binning) == pytest.approx(gaps / 3000,
                                                                               abs=1e-12)
