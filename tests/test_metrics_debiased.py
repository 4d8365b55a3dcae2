"""Debiased L2 calibration error against the ``uncertainty-calibration`` package (Kumar et al.).

The package is an independent implementation by the paper's authors: ``calibration``'s
``lower_bound_scaling_ce`` bins with its own ``get_equal_bins`` and is what
``get_calibration_error`` calls for continuous (non-discrete) outputs.
"""

from __future__ import annotations

import calibration as cal
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hvgp.metrics import debiased_ece, ece
from hvgp.predict import PredictiveSamples


def _probs(n: int, c: int, scale: float, seed: int, decimals: int | None = None):
    g = np.random.default_rng(seed)
    p = np.exp(scale * g.normal(size=(n, c)))
    p /= p.sum(1, keepdims=True)
    if decimals is not None:  # heavy ties: only a few distinct confidence values
        p = np.round(p, decimals) + 1e-9
        p /= p.sum(1, keepdims=True)
    return p, g.integers(0, c, n)


def _oracle(p, y, n_bins: int = 15, mode: str = "top-label", debias: bool = True) -> float:
    return float(cal.lower_bound_scaling_ce(p, y, p=2, debias=debias, num_bins=n_bins, mode=mode))


@pytest.mark.parametrize("mode", ["top-label", "marginal"])
@pytest.mark.parametrize("case", [(2000, 10, 3.0, None), (500, 3, 1.0, None), (300, 2, 2.0, None),
                                  (2000, 10, 3.0, 1), (800, 4, 1.0, 2), (40, 5, 2.0, 1),
                                  (9, 3, 2.0, None)])
def test_debiased_ece_matches_the_oracle_on_random_and_tied_inputs(case, mode: str) -> None:
    n, c, scale, decimals = case
    p, y = _probs(n, c, scale, seed=n + c, decimals=decimals)
    assert debiased_ece(p, y, mode=mode) == pytest.approx(_oracle(p, y, mode=mode), abs=1e-6)
    assert debiased_ece(p, y, mode=mode, debias=False) == pytest.approx(
        _oracle(p, y, mode=mode, debias=False), abs=1e-6)


def test_debiased_ece_matches_get_calibration_error_on_continuous_outputs() -> None:
    p, y = _probs(3000, 10, 2.0, seed=1)
    assert not cal.utils.is_discrete(p)
    assert debiased_ece(p, y) == pytest.approx(
        cal.get_calibration_error(p, y, p=2, debias=True, mode="top-label"), abs=1e-6)
    assert debiased_ece(p, y, mode="marginal") == pytest.approx(
        cal.get_calibration_error(p, y, p=2, debias=True), abs=1e-6)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(n=st.integers(1, 300), c=st.integers(2, 8), scale=st.floats(0.2, 6.0),
       n_bins=st.integers(1, 30), decimals=st.sampled_from([None, 1, 2]),
       seed=st.integers(0, 10_000))
def test_debiased_ece_matches_the_oracle_on_hypothesis_inputs(n, c, scale, n_bins, decimals,
                                                              seed) -> None:
    p, y = _probs(n, c, scale, seed, decimals)
    assert debiased_ece(p, y, n_bins) == pytest.approx(_oracle(p, y, n_bins), abs=1e-6)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(n=st.integers(1, 400), c=st.integers(2, 8), scale=st.floats(0.2, 6.0),
       n_bins=st.integers(1, 30), decimals=st.sampled_from([None, 1]),
       mode=st.sampled_from(["top-label", "marginal"]), seed=st.integers(0, 10_000))
def test_debiased_square_is_at_most_the_plug_in_square(n, c, scale, n_bins, decimals, mode,
                                                       seed) -> None:
    p, y = _probs(n, c, scale, seed, decimals)
    debiased = debiased_ece(p, y, n_bins, mode=mode, squared=True)
    plug_in = debiased_ece(p, y, n_bins, mode=mode, squared=True, debias=False)
    assert debiased <= plug_in + 1e-15
    assert 0.0 <= debiased_ece(p, y, n_bins, mode=mode) <= plug_in ** 0.5 + 1e-12 <= 1 + 1e-12


def test_debiased_square_is_unbiased_where_the_plug_in_is_not() -> None:
    # Calibrated predictor: labels drawn from its own confidences. The true CE is 0.
    g = torch.Generator().manual_seed(0)
    sq, plug = [], []
    for _ in range(200):
        conf = 0.5 + 0.5 * torch.rand(500, generator=g, dtype=torch.float64)
        hit = torch.rand(500, generator=g, dtype=torch.float64) < conf
        probs, labels = torch.stack([conf, 1 - conf], 1), torch.where(hit, 0, 1)
        sq.append(debiased_ece(probs, labels, squared=True))
        plug.append(debiased_ece(probs, labels, squared=True, debias=False))
    sq_t, plug_t = torch.tensor(sq), torch.tensor(plug)
    assert abs(sq_t.mean()) < 3 * sq_t.std() / 200 ** 0.5  # mean indistinguishable from 0
    assert plug_t.mean() > 10 * plug_t.std() / 200 ** 0.5  # plug-in clearly above 0


def test_debiased_ece_detects_a_miscalibrated_predictor() -> None:
    g = torch.Generator().manual_seed(1)
    conf = 0.5 + 0.5 * torch.rand(5000, generator=g, dtype=torch.float64)
    hit = torch.rand(5000, generator=g, dtype=torch.float64) < conf - 0.1  # 10 points too sure
    probs, labels = torch.stack([conf, 1 - conf], 1), torch.where(hit, 0, 1)
    assert debiased_ece(probs, labels) == pytest.approx(0.1, abs=0.01)
    assert ece(probs, labels) == pytest.approx(0.1, abs=0.01)


def test_debiased_ece_accepts_predictive_samples_and_numpy_alike() -> None:
    p, y = _probs(300, 4, 2.0, seed=3)
    t = torch.as_tensor(p)
    samples = PredictiveSamples(probs=torch.stack([t, t]))
    values = {debiased_ece(p, y), debiased_ece(t, torch.as_tensor(y)), debiased_ece(samples, y)}
    assert max(values) - min(values) < 1e-12


def test_debiased_ece_rejects_bad_input() -> None:
    p, y = _probs(20, 3, 1.0, seed=4)
    bad = p.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        debiased_ece(bad, y)
    with pytest.raises(ValueError, match="shape"):
        debiased_ece(p[:, :, None], y)
    with pytest.raises(ValueError, match="labels must lie"):
        debiased_ece(p, y + 3)
    with pytest.raises(ValueError, match="entries"):
        debiased_ece(p, y[:-1])
    with pytest.raises(ValueError, match="sum to 1"):
        debiased_ece(3 * p, y)
    with pytest.raises(ValueError, match="n_bins"):
        debiased_ece(p, y, n_bins=0)
    with pytest.raises(ValueError, match="mode"):
        debiased_ece(p, y, mode="classwise")
