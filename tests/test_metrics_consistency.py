"""Consistency floor of the ECE: calibrated sets give uniform p-values, miscalibrated ones small."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from hvgp.metrics import ConsistencyFloor, accuracy, consistency_floor, ece


def _logits(n: int, c: int, scale: float, g: torch.Generator) -> torch.Tensor:
    return scale * torch.randn(n, c, generator=g, dtype=torch.float64)


def _draw(p: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Labels drawn from the rows of ``p`` (the predictor is calibrated by construction)."""
    return torch.multinomial(p, 1, generator=g).squeeze(1)


def test_p_values_of_calibrated_sets_are_uniform() -> None:
    g = torch.Generator().manual_seed(0)
    pvals = []
    for i in range(200):
        p = _logits(200, 3, 2.0, g).softmax(-1)
        pvals.append(consistency_floor(p, _draw(p, g), n_resamples=99, seed=i).p_value)
    assert stats.kstest(pvals, "uniform").pvalue > 0.01
    assert 0.4 < np.mean(pvals) < 0.6


@pytest.mark.parametrize("temperature", [3.0, 1 / 3])  # under- and over-confident
@pytest.mark.parametrize("binning", ["width", "mass"])
def test_p_value_is_small_for_a_predictor_with_the_wrong_temperature(temperature: float,
                                                                    binning: str) -> None:
    g = torch.Generator().manual_seed(1)
    z = _logits(2000, 10, 2.0, g)
    labels = _draw(z.softmax(-1), g)  # truth: softmax(z); the predictor reports softmax(z / T)
    f = consistency_floor((z / temperature).softmax(-1), labels, binning=binning)
    assert f.p_value < 0.05
    assert f.excess > 5 * f.floor_std
    calibrated = consistency_floor(z.softmax(-1), labels, binning=binning)
    assert calibrated.p_value > 0.05


def _accurate_calibrated(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A calibrated 10-class predictor at about 97 % accuracy (labels drawn from its probs)."""
    g = torch.Generator().manual_seed(seed)
    cls = torch.randint(0, 10, (n,), generator=g)
    logits = 6.5 * torch.nn.functional.one_hot(cls, 10).double() + _logits(n, 10, 1.0, g)
    p = logits.softmax(-1)
    return p, _draw(p, g)


def test_floor_of_a_calibrated_97_percent_predictor_on_20000_points_is_below_0_003() -> None:
    p, y = _accurate_calibrated(20_000, seed=0)
    assert 0.96 < accuracy(p, y) < 0.98
    f = consistency_floor(p, y)
    assert f.floor_mean <= 0.003  # measured: 0.0017 (10 bins); on 1000 points it is 0.0071
    small = consistency_floor(p[:1000], y[:1000])
    assert small.floor_mean > 2.5 * f.floor_mean  # the floor shrinks like 1 / sqrt(N)


def test_floor_on_20000_points_takes_well_under_a_second() -> None:
    p, y = _accurate_calibrated(20_000, seed=1)
    consistency_floor(p[:100], y[:100])  # warm-up
    start = time.perf_counter()
    consistency_floor(p, y, n_resamples=200)
    assert time.perf_counter() - start < 2.0  # measured: 0.13 s on one idle thread, 0.45 s loaded


def test_bernoulli_correctness_resampling_matches_resampling_labels() -> None:
    # The docstring's claim: drawing "correct ~ Bernoulli(conf)" is the same as y ~ p.
    g = torch.Generator().manual_seed(2)
    p = _logits(500, 4, 1.5, g).softmax(-1)
    y = _draw(p, g)
    f = consistency_floor(p, y, n_resamples=400)
    by_labels = torch.tensor([ece(p, _draw(p, g)) for _ in range(400)], dtype=torch.float64)
    se = (f.floor_std ** 2 / 400 + float(by_labels.var()) / 400) ** 0.5
    assert abs(f.floor_mean - float(by_labels.mean())) < 4 * se
    assert f.floor_std == pytest.approx(float(by_labels.std()), rel=0.2)


def test_fields_are_consistent_and_reproducible() -> None:
    p, y = _accurate_calibrated(3000, seed=3)
    f = consistency_floor(p, y, n_resamples=50, seed=7)
    assert isinstance(f, ConsistencyFloor)
    assert f == consistency_floor(p, y, n_resamples=50, seed=7)
    assert f != consistency_floor(p, y, n_resamples=50, seed=8)
    assert f.ece == ece(p, y)
    assert f.excess == pytest.approx(f.ece - f.floor_mean)
    assert f.as_dict()["n_resamples"] == 50.0
    with pytest.raises(AttributeError):
        f.ece = 0.0  # type: ignore[misc]


def test_p_value_counts_resamples_at_least_as_large_with_the_plus_one_correction() -> None:
    # All confidences 1.0 and all right: every resample is all right too, ECE 0 == observed.
    p = torch.tensor([[1.0, 0.0]] * 10, dtype=torch.float64)
    f = consistency_floor(p, torch.zeros(10, dtype=torch.int64), n_resamples=9)
    assert (f.ece, f.floor_mean, f.p_value) == (0.0, 0.0, 1.0)
    # Confidence 1.0 but all wrong: no resample reaches ECE 1 -> p = 1 / (n + 1)
    f = consistency_floor(p, torch.ones(10, dtype=torch.int64), n_resamples=9)
    assert (f.ece, f.p_value) == (1.0, 0.1)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(n=st.integers(1, 300), c=st.integers(2, 6), scale=st.floats(0.1, 6.0),
       n_bins=st.integers(1, 20), binning=st.sampled_from(["width", "mass"]),
       seed=st.integers(0, 1000))
def test_floor_is_within_bounds(n, c, scale, n_bins, binning, seed) -> None:
    g = torch.Generator().manual_seed(seed)
    p = _logits(n, c, scale, g).softmax(-1)
    y = torch.randint(0, c, (n,), generator=g)
    f = consistency_floor(p, y, n_bins=n_bins, n_resamples=20, binning=binning, seed=seed)
    assert 0.0 <= f.ece <= 1.0 and 0.0 <= f.floor_mean <= 1.0 and f.floor_std >= 0.0
    assert 1 / 21 <= f.p_value <= 1.0
    assert f.ece == pytest.approx(ece(p, y, n_bins=n_bins, binning=binning), abs=1e-12)


def test_bad_input_is_rejected() -> None:
    p = torch.tensor([[0.7, 0.3], [0.4, 0.6]], dtype=torch.float64)
    y = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="NaN"):
        consistency_floor(torch.tensor([[float("nan"), 1.0], [0.4, 0.6]]), y)
    with pytest.raises(ValueError, match="shape"):
        consistency_floor(p[0], y)
    with pytest.raises(ValueError, match="labels must lie"):
        consistency_floor(p, torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="n_resamples"):
        consistency_floor(p, y, n_resamples=0)
    with pytest.raises(ValueError, match="n_bins"):
        consistency_floor(p, y, n_bins=0)


def test_classification_report_carries_the_floor_and_the_debiased_estimate() -> None:
    from hvgp.metrics import classification_report, debiased_ece

    p, y = _accurate_calibrated(2000, seed=4)
    report = classification_report(p, y)
    f = consistency_floor(p, y)
    assert report["ece"] == ece(p, y)
    assert report["ece_floor"] == f.floor_mean
    assert report["ece_excess"] == pytest.approx(report["ece"] - report["ece_floor"])
    assert report["ece_p_value"] == f.p_value
    assert report["ece_debiased"] == debiased_ece(p, y)
    assert report == classification_report(p, y)  # fixed seed: deterministic
    assert list(report)[:2] == ["accuracy", "ece"]  # existing keys keep their places
