"""PredictiveSamples: shapes, reductions and validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hvgp.predict import PredictiveSamples


def _random_probs(s: int, n: int, c: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(s, n, c, generator=g).softmax(-1)


def test_mean_and_entropy_match_hand_computation() -> None:
    p = PredictiveSamples(probs=torch.tensor([[[0.5, 0.5]], [[1.0, 0.0]]]))
    assert torch.allclose(p.mean(), torch.tensor([[0.75, 0.25]]))
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert p.entropy().item() == pytest.approx(h, abs=1e-5)
    assert p.expected_entropy().item() == pytest.approx(0.5 * math.log(2), abs=1e-5)
    assert p.mutual_information().item() == pytest.approx(h - 0.5 * math.log(2), abs=1e-5)


@settings(max_examples=30, deadline=None)
@given(s=st.integers(1, 6), n=st.integers(1, 8), c=st.integers(2, 5), seed=st.integers(0, 99))
def test_mutual_information_is_bounded_by_entropy(s: int, n: int, c: int, seed: int) -> None:
    p = PredictiveSamples(probs=_random_probs(s, n, c, seed))
    mi, h = p.mutual_information(), p.entropy()
    assert mi.shape == (n,) and h.shape == (n,)
    assert (mi >= 0).all() and (mi <= h + 1e-5).all() and (h <= math.log(c) + 1e-5).all()


def test_single_sample_has_zero_mutual_information() -> None:
    p = PredictiveSamples(probs=_random_probs(1, 10, 3))
    assert torch.allclose(p.mutual_information(), torch.zeros(10), atol=1e-6)


def test_two_dimensional_probs_become_one_sample() -> None:
    p = PredictiveSamples(probs=_random_probs(1, 4, 3)[0])
    assert p.num_samples == 1 and p.num_points == 4


def test_regression_variance_is_epistemic_plus_noise() -> None:
    loc = torch.tensor([[0.0, 1.0], [2.0, 1.0]])
    p = PredictiveSamples(loc=loc, scale=torch.full_like(loc, 0.5))
    assert torch.allclose(p.mean(), torch.tensor([1.0, 1.0]))
    assert torch.allclose(p.variance(), torch.tensor([1.0 + 0.25, 0.25]))


def test_regression_log_likelihood_is_mixture_density() -> None:
    loc = torch.tensor([[0.0], [2.0]])
    p = PredictiveSamples(loc=loc, scale=torch.ones_like(loc))
    normal = torch.distributions.Normal
    expected = torch.log(0.5 * (normal(0.0, 1.0).log_prob(torch.tensor(1.0)).exp() * 2))
    assert p.log_likelihood(torch.tensor([1.0])).item() == pytest.approx(expected.item(), abs=1e-5)


def test_concat_joins_along_points_and_to_numpy_roundtrips() -> None:
    a, b = _random_probs(3, 2, 4, 1), _random_probs(3, 5, 4, 2)
    joined = PredictiveSamples.concat([PredictiveSamples(probs=a), PredictiveSamples(probs=b)])
    assert joined.probs.shape == (3, 7, 4)
    np.testing.assert_allclose(joined.to_numpy()["probs"][:, :2], a.numpy())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "exactly one"),
        ({"probs": torch.ones(2, 3, 2)}, "sum to 1"),
        ({"probs": torch.full((1, 2, 2), float("nan"))}, "NaN"),
        ({"probs": torch.ones(2)}, "shape"),
        ({"loc": torch.zeros(2, 3), "scale": torch.zeros(3, 3)}, "scale shape"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PredictiveSamples(**kwargs)


def test_classification_only_reductions_refuse_regression() -> None:
    p = PredictiveSamples(loc=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="classification"):
        p.entropy()
