"""SNGP (``sngp``): spectral-normalised network, random-feature GP layer, Laplace covariance."""

from __future__ import annotations

import math

import pytest
import torch
from _baselines import (
    assert_beats_class_frequency,
    assert_fit_refuses_bad_data,
    assert_predict_refuses_bad_inputs,
    moons_loaders,
)
from torch.utils.data import DataLoader, TensorDataset

from hvgp.baselines.gp.sngp import RandomFeatureGP, SNGPClassifier, spectral_norms
from hvgp.cli import main
from hvgp.config import RunConfig
from hvgp.experiment import load_run, run
from hvgp.nn import build_model
from hvgp.registry import get_model, make_estimator

BOUND = 0.9


@pytest.fixture(scope="module")
def moons():
    """Noisy two moons (see :func:`_baselines.moons_loaders`)."""
    return moons_loaders()


@pytest.fixture(scope="module")
def fitted(moons):
    train, _, _, info = moons
    est = make_estimator("sngp", lambda: build_model("mlp", info, width=0.125), device="cpu",
                         seed=0, lr=0.1, spec_norm_bound=BOUND, num_random_features=256,
                         length_scale=2.0)
    return est.fit(train, 12)


def test_sngp_fits_moons_and_beats_the_constant_class_frequency_predictor(moons, fitted) -> None:
    train, _, test, _ = moons
    assert_beats_class_frequency(fitted, train, test)
    assert fitted.history_[-1] < fitted.history_[0]


def test_every_hidden_layer_keeps_its_spectral_norm_within_the_bound(fitted) -> None:
    norms = spectral_norms(fitted.net)
    assert sorted(norms) == fitted.normalised == ["1", "3"]  # the MLP's two hidden layers
    assert all(0.0 < s <= BOUND * (1 + 1e-3) for s in norms.values()), norms
    raw = fitted.net[1].parametrizations.weight.original
    assert float(torch.linalg.matrix_norm(raw.detach(), ord=2)) > BOUND  # the bound is what binds


def test_the_covariance_shrinks_near_the_training_data(moons, fitted) -> None:
    train = moons[0].dataset.x
    far = train + torch.tensor([6.0, -6.0])  # the same shapes, moved off the data
    _, near_var = fitted.logit_moments(train)
    _, far_var = fitted.logit_moments(far)
    prior = 1.0  # phi^T phi: the random features have unit expected norm
    assert near_var.mean() < 0.5 * prior, near_var.mean()
    assert far_var.mean() > 2 * near_var.mean(), (far_var.mean(), near_var.mean())
    far_conf = fitted.predict(far).probs.amax(-1).mean()
    map_conf = fitted.gp.output(fitted.gp.features(fitted.net(far))).softmax(-1).amax(-1).mean()
    assert far_conf < map_conf  # the mean-field predictive is less sure far away than the MAP


def test_monte_carlo_samples_are_seeded_draws_of_the_gaussian_logits(moons, fitted) -> None:
    x = moons[2].dataset.x[:7]
    a, b = fitted.predict(x, num_samples=5), fitted.predict(x, num_samples=5)
    assert a.probs.shape == (5, 7, 2) and torch.equal(a.probs, b.probs)
    assert not torch.equal(a.probs[0], a.probs[1])
    mean, var = fitted.logit_moments(x)
    many = fitted.predict(x, num_samples=4000).probs
    mean_field = fitted.predict(x).probs[0]
    assert torch.allclose(many.mean(0), mean_field, atol=0.05)  # probit ~ MC average
    assert var.shape == mean.shape == (7, 2) and (var > 0).all()


def test_the_gp_layer_precision_is_the_ridge_plus_the_logistic_hessian() -> None:
    gp = RandomFeatureGP(3, 2, num_features=16, length_scale=1.0, ridge_penalty=2.0, seed=1)
    h = torch.randn(10, 3)
    logits, phi = gp(h)
    gp.reset_precision()
    gp.update_precision(phi, logits)
    gp.update_covariance()
    p = logits.softmax(-1)
    for k in range(2):
        expected = 2.0 * torch.eye(16) + (phi.T * (p[:, k] * (1 - p[:, k]))) @ phi
        assert torch.allclose(gp.precision[k], expected, atol=1e-5)
        assert torch.allclose(gp.covariance[k], 2.0 * torch.linalg.inv(expected), atol=1e-4)
    var = gp.variance(phi)
    assert torch.allclose(var[:, 0], torch.einsum("ni,ij,nj->n", phi, gp.covariance[0], phi),
                          atol=1e-5)


def test_the_1d_cnn_gets_spectral_norm_on_its_convolutions_and_hidden_linear() -> None:
    est = make_estimator("sngp", lambda: build_model("cnn1d", (40,), 3, width=0.25),
                         device="cpu", spec_norm_bound=BOUND, num_random_features=64)
    assert est.normalised == ["features.0", "features.3", "features.6", "classifier.1"]
    x, y = torch.randn(48, 40), torch.randint(0, 3, (48,))
    est.fit(DataLoader(TensorDataset(x, y), batch_size=16), 2)
    assert all(s <= BOUND * (1 + 1e-3) for s in spectral_norms(est.net).values())
    assert est.predict(x[:4]).probs.shape == (1, 4, 3)


def test_registry_and_cli_list_the_model(capsys: pytest.CaptureFixture[str]) -> None:
    spec = get_model("sngp")
    assert spec.kind == "network" and spec.options["spec_norm_bound"] == 0.95
    assert spec.options["mean_field_factor"] == pytest.approx(math.pi / 8)
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    network_line = next(line for line in out.splitlines() if line.startswith("models (network)"))
    assert "sngp" in network_line and "laplace" in network_line
    assert "--spec-norm-bound (default 0.95): sngp" in out


def test_sngp_runs_sparse_through_the_run_path_and_reloads(tmp_path) -> None:
    cfg = RunConfig(model="sngp", data="moons", arch="mlp", width=0.25, epochs=2, batch_size=64,
                    device="cpu", sparsity=0.5,
                    model_options={"num_random_features": 128})
    res = run(cfg, out=tmp_path / "run", shift=False)
    assert res.sparsity == pytest.approx(0.5, abs=0.02) and res.nonzero_params > 0
    est = res.estimator
    for name in est.normalised:  # the masked weights stay exactly zero under the norm
        layer = est.net.get_submodule(name)
        assert not layer.weight[~layer.weight_mask].any()
    loaded = load_run(tmp_path / "run")
    xs = torch.randn(5, 2)
    assert torch.allclose(loaded.predict(xs).probs, est.predict(xs).probs, atol=1e-5)
    assert torch.allclose(loaded.predict(xs, 3).probs, est.predict(xs, 3).probs, atol=1e-5)


def test_bad_input_gives_the_clear_errors_of_the_other_estimators(moons, fitted) -> None:
    assert_predict_refuses_bad_inputs(fitted, moons[2].dataset.x[:4])
    with pytest.raises(RuntimeError, match="not fitted"):
        SNGPClassifier(build_model("mlp", (2,), 2, width=0.1)).predict(moons[2].dataset.x[:4])
    with pytest.raises(ValueError, match="classifier.*regression"):
        SNGPClassifier(build_model("mlp", (2,), 1, width=0.1), likelihood="normal")
    with pytest.raises(ValueError, match="spec_norm_bound"):
        SNGPClassifier(build_model("mlp", (2,), 2, width=0.1), spec_norm_bound=0.0)
    assert_fit_refuses_bad_data(
        lambda: SNGPClassifier(build_model("mlp", (2,), 2, width=0.1), device="cpu"))


def test_a_regression_run_is_refused_by_name() -> None:
    cfg = RunConfig(model="sngp", data="diabetes", arch="mlp", width=0.25, epochs=1,
                    device="cpu", sparsity=0.0)
    with pytest.raises(ValueError, match="sngp is a classifier"):
        run(cfg, shift=False)
