"""Last-layer Laplace (``laplace``): laplace-torch's KFAC posterior on a trained RigL network."""

from __future__ import annotations

import sys

import pytest
import torch
from _baselines import (
    assert_beats_class_frequency,
    assert_fit_refuses_bad_data,
    assert_predict_refuses_bad_inputs,
    moons_loaders,
)

from hvgp.baselines.nn.laplace_approx import INSTALL, LastLayerLaplace, laplace_library
from hvgp.config import RunConfig
from hvgp.experiment import load_run, run
from hvgp.infer import RigL
from hvgp.nn import build_model
from hvgp.registry import get_model, make_estimator


@pytest.fixture(scope="module")
def moons():
    """Noisy two moons (see :func:`_baselines.moons_loaders`)."""
    return moons_loaders()


@pytest.fixture(scope="module")
def fitted(moons):
    train, _, _, info = moons
    est = make_estimator("laplace", lambda: build_model("mlp", info, width=0.25), device="cpu",
                         seed=0, sparsity=0.5, lr=0.1)
    return est.fit(train, 10)


def test_laplace_fits_moons_and_beats_the_constant_class_frequency_predictor(moons, fitted):
    train, _, test, _ = moons
    assert_beats_class_frequency(fitted, train, test)
    assert isinstance(fitted.base, RigL) and fitted.sparsity() == pytest.approx(0.5, abs=0.02)


def test_the_predictive_is_a_distribution_that_differs_from_the_map(moons, fitted) -> None:
    x = moons[2].dataset.x
    probs = fitted.predict(x).probs
    assert probs.shape == (1, len(x), 2) and (probs >= 0).all()
    assert torch.allclose(probs.sum(-1), torch.ones(1, len(x)), atol=1e-5)
    map_probs = fitted.map_predict(x).probs
    assert (probs - map_probs).abs().max() > 1e-3
    # the probit predictive pulls every point towards uncertainty: less confident than the MAP
    assert probs.amax(-1).mean() < map_probs.amax(-1).mean()


def test_the_prior_precision_is_tuned_by_marginal_likelihood(fitted) -> None:
    prec = fitted.prior_precision
    assert prec.shape == (1,) and torch.isfinite(prec).all() and float(prec) > 0
    assert float(prec) != pytest.approx(1.0, rel=1e-3)  # moved from laplace-torch's start
    la = fitted.la
    tuned = la.log_marginal_likelihood(prior_precision=prec)
    for factor in (0.1, 10.0):
        assert tuned > la.log_marginal_likelihood(prior_precision=prec * factor)


def _val_nll(est: LastLayerLaplace, loader, prec: torch.Tensor) -> float:
    est.la.prior_precision = prec
    probs, y = est.predict_loader(loader)
    return float(torch.nn.functional.nll_loss(probs.probs[0].clamp_min(1e-12).log(), y))


def test_val_nll_prior_is_the_grid_point_with_the_lowest_validation_nll(moons) -> None:
    train, val, _, info = moons
    est = make_estimator("laplace", lambda: build_model("mlp", info, width=0.25), device="cpu",
                         seed=0, sparsity=0.5, lr=0.1, prior_method="val-nll", grid_size=9)
    est.fit(train, 4, val_loader=val)
    chosen = est.prior_precision.clone()
    grid = torch.logspace(-4, 4, 9)
    assert torch.isclose(grid, chosen).any()  # a point of the grid
    best = _val_nll(est, val, chosen)
    assert all(best <= _val_nll(est, val, g.reshape(1)) + 1e-6 for g in grid)
    est.la.prior_precision = chosen
    marglik = est.tune_prior(method="marglik")  # same Hessian, the other rule
    assert est.prior_method == "marglik" and not torch.isclose(marglik, chosen).all()


def test_val_nll_prior_without_validation_data_is_refused_before_training(moons) -> None:
    train, _, _, info = moons
    est = LastLayerLaplace(build_model("mlp", info, width=0.125), 0.5, device="cpu",
                           prior_method="val-nll")
    with pytest.raises(ValueError, match="val_loader"):
        est.fit(train, 1)
    assert est.la is None  # refused before RigL trained
    with pytest.raises(ValueError, match="prior_method must be one of marglik, val-nll"):
        LastLayerLaplace(build_model("mlp", info, width=0.125), 0.5, prior_method="cv")


def test_samples_are_seeded_glm_draws(moons, fitted) -> None:
    x = moons[2].dataset.x[:6]
    a, b = fitted.predict(x, num_samples=4), fitted.predict(x, num_samples=4)
    assert a.probs.shape == (4, 6, 2) and torch.equal(a.probs, b.probs)
    assert not torch.equal(a.probs[0], a.probs[1])
    assert torch.allclose(a.probs.sum(-1), torch.ones(4, 6), atol=1e-5)


def test_registry_builds_it_and_a_run_reloads(tmp_path) -> None:
    spec = get_model("laplace")
    assert spec.kind == "network" and spec.options == {
        "hessian_structure": "kron", "prior_structure": "scalar", "link_approx": "probit",
        "prior_method": "marglik"}
    assert spec.needs_val  # hvgp train / compare hand it the validation split
    cfg = RunConfig(model="laplace", data="moons", arch="mlp", width=0.25, epochs=2,
                    batch_size=64, device="cpu", sparsity=0.5)
    res = run(cfg, out=tmp_path / "run", shift=False)
    assert (tmp_path / "run" / "checkpoint.pt").is_file()  # RigL's training is resumable
    loaded = load_run(tmp_path / "run")
    xs = torch.randn(5, 2)
    assert torch.allclose(loaded.predict(xs).probs, res.estimator.predict(xs).probs, atol=1e-5)
    assert torch.allclose(loaded.prior_precision, res.estimator.prior_precision)


def test_a_diagonal_hessian_takes_a_per_weight_prior(moons) -> None:
    train, _, test, info = moons
    est = LastLayerLaplace(build_model("mlp", info, width=0.125), 0.5, device="cpu",
                           hessian_structure="diag", prior_structure="diag", marglik_steps=20)
    est.fit(train, 2)
    assert est.prior_precision.shape == (32 * 2 + 2,)
    assert est.predict(test.dataset.x[:3]).probs.shape == (1, 3, 2)


def test_bad_input_and_bad_options_are_named_errors(moons, fitted) -> None:
    assert_predict_refuses_bad_inputs(fitted, moons[2].dataset.x[:4])
    net = build_model("mlp", (2,), 2, width=0.1)
    with pytest.raises(RuntimeError, match="not fitted"):
        LastLayerLaplace(net, 0.5).predict(moons[2].dataset.x[:4])
    with pytest.raises(ValueError, match="laplace is a classifier"):
        LastLayerLaplace(build_model("mlp", (2,), 1, width=0.1), likelihood="normal")
    with pytest.raises(ValueError, match="scalar prior"):
        LastLayerLaplace(net, 0.5, prior_structure="diag")
    with pytest.raises(ValueError, match="hessian_structure must be one of kron"):
        LastLayerLaplace(net, 0.5, hessian_structure="lowrank")
    assert_fit_refuses_bad_data(
        lambda: LastLayerLaplace(build_model("mlp", (2,), 2, width=0.1), 0.5, device="cpu"))


def test_a_missing_laplace_torch_says_how_to_install_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "laplace", None)
    with pytest.raises(ImportError, match="--no-deps laplace-torch"):
        laplace_library()
    assert "laplace-torch==0.3" in INSTALL
