"""GP baseline estimators: closed-form checks, beating trivial predictors, errors, surface."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import make_moons

from hvgp.baselines.gp import (
    DeepGPClassifier,
    DeepGPRegressor,
    DSPPClassifier,
    DSPPRegressor,
    ExactGPRegressor,
    NNGPClassifier,
    NNGPRegressor,
    SVGPClassifier,
)
from hvgp.baselines.gp._common import systematic_resample
from hvgp.predict import PredictiveSamples


# ---- data & trivial predictors -------------------------------------------------------------------
@pytest.fixture(scope="module")
def sine() -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 3, (80, 1))
    xt = rng.uniform(-3, 3, (200, 1))
    y = np.sin(2 * x[:, 0]) + 0.1 * rng.standard_normal(80)
    yt = np.sin(2 * xt[:, 0]) + 0.1 * rng.standard_normal(200)
    return x, y, xt, yt


@pytest.fixture(scope="module")
def moons() -> tuple[np.ndarray, ...]:
    x, y = make_moons(200, noise=0.2, random_state=0)
    xt, yt = make_moons(300, noise=0.2, random_state=1)
    return x, y, xt, yt


def mean_predictor(y: np.ndarray, yt: np.ndarray) -> dict[str, float]:
    mu, var = y.mean(), y.var()
    nll = 0.5 * math.log(2 * math.pi * var) + ((yt - mu) ** 2).mean() / (2 * var)
    return {"rmse": float(np.sqrt(((yt - mu) ** 2).mean())), "nll": float(nll)}


def majority_predictor(y: np.ndarray, yt: np.ndarray) -> dict[str, float]:
    freq = np.bincount(y, minlength=yt.max() + 1) / len(y)
    return {"accuracy": float((yt == freq.argmax()).mean()), "nll": float(-np.log(freq[yt]).mean())}


def assert_beats_mean(report: dict[str, float], trivial: dict[str, float]) -> None:
    assert report["rmse"] < 0.5 * trivial["rmse"], (report, trivial)
    assert report["nll"] < trivial["nll"] - 0.5, (report, trivial)


def assert_beats_majority(report: dict[str, float], trivial: dict[str, float]) -> None:
    assert report["accuracy"] > trivial["accuracy"] + 0.25, (report, trivial)
    assert report["nll"] < 0.5 * trivial["nll"], (report, trivial)


# ---- exact GP ------------------------------------------------------------------------------------
def test_exact_gp_posterior_matches_closed_form_numpy() -> None:
    rng = np.random.default_rng(1)
    x, y, xs = rng.standard_normal((8, 2)), rng.standard_normal(8), rng.standard_normal((5, 2))
    ell, s2, noise = 0.7, 1.3, 0.1
    gp = ExactGPRegressor(
        "rbf",
        ard=True,
        lengthscale=ell,
        outputscale=s2,
        noise=noise,
        normalize_y=False,
        device="cpu",
    ).fit(x, y, epochs=0)

    def k(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return s2 * np.exp(-((a[:, None] - b[None]) ** 2).sum(-1) / (2 * ell**2))

    kinv = np.linalg.inv(k(x, x) + noise * np.eye(8))
    mean = k(xs, x) @ kinv @ y
    var = s2 - np.einsum("ij,jk,ik->i", k(xs, x), kinv, k(xs, x))
    got_mean, got_var = gp.predict_latent(xs)
    np.testing.assert_allclose(got_mean.numpy(), mean, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(got_var.numpy(), var, rtol=1e-5, atol=1e-8)
    closed = gp.predict(xs, num_samples=None)
    np.testing.assert_allclose(closed.scale[0].numpy() ** 2, var + noise, rtol=1e-5)


@pytest.mark.parametrize("kernel", ["rbf", "matern52"])
def test_exact_gp_beats_mean_predictor_on_sine(sine, kernel: str) -> None:
    x, y, xt, yt = sine
    gp = ExactGPRegressor(kernel, device="cpu").fit(x, y, epochs=100, lr=0.1)
    assert gp.history_[-1] < gp.history_[0]  # the marginal likelihood was optimised
    assert_beats_mean(gp.evaluate(xt, yt), mean_predictor(y, yt))
    assert_beats_mean(gp.evaluate(xt, yt, num_samples=64), mean_predictor(y, yt))


def test_nngp_regressor_beats_mean_predictor_on_sine(sine) -> None:
    x, y, xt, yt = sine
    gp = NNGPRegressor(depth=3, keep_prob=0.9, density=0.5, train_kernel=True, device="cpu")
    gp.fit(x, y, epochs=100, lr=0.1)
    assert_beats_mean(gp.evaluate(xt, yt), mean_predictor(y, yt))


# ---- approximate GPs ----------------------------------------------------------------------------
def test_svgp_classifier_beats_majority_on_moons(moons) -> None:
    x, y, xt, yt = moons
    clf = SVGPClassifier(num_inducing=16, device="cpu").fit(x, y, epochs=40, lr=0.05, batch_size=64)
    samples = clf.predict(xt, num_samples=16)
    assert samples.probs.shape == (16, len(yt), 2)
    assert_beats_majority(clf.evaluate(xt, yt), majority_predictor(y, yt))


def test_nngp_classifier_beats_majority_on_moons(moons) -> None:
    x, y, xt, yt = moons
    clf = NNGPClassifier(
        depth=3, keep_prob=0.9, density=0.5, num_inducing=16, train_kernel=True, device="cpu"
    ).fit(x, y, epochs=40, lr=0.05, batch_size=64)
    assert_beats_majority(clf.evaluate(xt, yt), majority_predictor(y, yt))


def test_deep_gp_regressor_beats_mean_predictor_on_sine(sine) -> None:
    x, y, xt, yt = sine
    gp = DeepGPRegressor(hidden_dims=2, num_inducing=16, device="cpu")
    gp.fit(x, y, epochs=100, lr=0.05, batch_size=None)
    samples = gp.predict(xt, num_samples=8)
    assert samples.loc.shape == samples.scale.shape == (8, len(yt))
    assert_beats_mean(gp.evaluate(xt, yt), mean_predictor(y, yt))


def test_dspp_regressor_beats_mean_predictor_on_sine(sine) -> None:
    x, y, xt, yt = sine
    gp = DSPPRegressor(hidden_dims=2, num_inducing=16, num_quad_sites=6, device="cpu")
    gp.fit(x, y, epochs=100, lr=0.05, batch_size=None)
    assert_beats_mean(gp.evaluate(xt, yt), mean_predictor(y, yt))


@pytest.mark.parametrize("cls", [DeepGPClassifier, DSPPClassifier])
def test_deep_classifiers_beat_majority_on_moons(moons, cls) -> None:
    x, y, xt, yt = moons
    clf = cls(hidden_dims=2, num_inducing=16, device="cpu").fit(
        x, y, epochs=30, lr=0.05, batch_size=100
    )
    samples = clf.predict(xt, num_samples=8)
    assert isinstance(samples, PredictiveSamples) and samples.probs.shape == (8, len(yt), 2)
    assert_beats_majority(clf.evaluate(xt, yt), majority_predictor(y, yt))


# ---- surface, reproducibility, errors --------------------------------------------------------
def test_svgp_fit_is_reproducible_for_a_seed_and_leaves_global_rng_alone(moons) -> None:
    x, y, _, _ = moons
    state = torch.random.get_rng_state()
    a = SVGPClassifier(num_inducing=8, seed=3, device="cpu").fit(x, y, epochs=3, batch_size=50)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = SVGPClassifier(num_inducing=8, seed=3, device="cpu").fit(x, y, epochs=3, batch_size=50)
    assert a.history_ == b.history_


def test_svgp_classifier_handles_three_classes(moons) -> None:
    x, y, _, _ = moons
    x3, y3 = np.concatenate([x, x + 4]), np.concatenate([y, y + 1])
    clf = SVGPClassifier(num_inducing=8, device="cpu").fit(x3, y3, epochs=2)
    assert clf.predict(x3[:5], num_samples=4).probs.shape == (4, 5, 3)


def test_early_stopping_ends_training_before_the_epoch_budget(sine) -> None:
    x, y, _, _ = sine
    gp = ExactGPRegressor(device="cpu").fit(x, y, epochs=2000, lr=0.1, patience=5)
    assert len(gp.history_) < 2000


@pytest.mark.parametrize(
    "make, x, y, err, match",
    [
        (ExactGPRegressor, np.zeros(5), np.zeros(5), ValueError, "shape \\(N, D\\)"),
        (ExactGPRegressor, np.zeros((5, 1)), np.zeros(4), ValueError, "y must have shape"),
        (ExactGPRegressor, np.full((5, 1), np.nan), np.zeros(5), ValueError, "NaN"),
        (ExactGPRegressor, "abc", np.zeros(5), TypeError, "x must be"),
        (SVGPClassifier, np.zeros((5, 1)), np.array([0, 1, 0.5, 1, 0]), ValueError, "integers"),
        (SVGPClassifier, np.zeros((5, 1)), np.zeros(5, dtype=int), ValueError, "2 classes"),
    ],
)
def test_bad_inputs_raise_clear_errors(make, x, y, err, match) -> None:
    with pytest.raises(err, match=match):
        make(device="cpu").fit(x, y, epochs=1)


def test_predict_before_fit_and_wrong_feature_count_are_errors(sine) -> None:
    x, y, _, _ = sine
    with pytest.raises(RuntimeError, match="not fitted"):
        ExactGPRegressor(device="cpu").predict(x)
    gp = ExactGPRegressor(device="cpu").fit(x, y, epochs=1)
    with pytest.raises(ValueError, match="features"):
        gp.predict(np.zeros((3, 2)))


def test_unknown_kernel_name_is_an_error(sine) -> None:
    x, y, _, _ = sine
    with pytest.raises(ValueError, match="kernel must be one of"):
        ExactGPRegressor("periodic", device="cpu").fit(x, y, epochs=1)


@settings(max_examples=40, deadline=None)
@given(
    w=st.lists(st.floats(0.01, 1.0), min_size=1, max_size=10),
    s=st.integers(1, 200),
)
def test_systematic_resample_counts_are_floor_or_ceil_of_expected(w: list[float], s: int) -> None:
    lw = torch.tensor(w, dtype=torch.float64).log()
    counts = torch.bincount(systematic_resample(lw, s), minlength=len(w)).double()
    expected = torch.softmax(lw, 0) * s
    assert counts.sum() == s
    assert ((counts - expected).abs() < 1.0 + 1e-9).all()


def test_named_kernels_start_at_the_median_distance_of_the_inputs() -> None:
    """High-dimensional inputs must not start out uncorrelated (GPyTorch's 0.69 default)."""
    from hvgp.baselines.gp._common import make_kernel, median_distance

    x = torch.randn(200, 40, dtype=torch.float64)
    k = make_kernel("rbf", 40, ard=True, x=x)
    d = torch.cdist(x, x)
    expected = d[~torch.eye(200, dtype=torch.bool)].median()
    assert median_distance(x) == pytest.approx(float(expected))
    assert torch.allclose(k.base_kernel.lengthscale, expected.to(k.base_kernel.lengthscale))
    corr = k.base_kernel(x[:2], x[2:4]).to_dense()
    assert corr.min() > 0.05  # neighbours in a 40-d space still covary
