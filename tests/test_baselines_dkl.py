"""Deep kernel learning (``dkl``): an SVGP layer on a network's features, trained by the ELBO."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from hvgp.baselines.gp.dkl import DKLClassifier, split_readout
from hvgp.config import RunConfig
from hvgp.data import get_loaders
from hvgp.experiment import load_run, run
from hvgp.metrics import nll
from hvgp.nn import build_model
from hvgp.registry import get_model, make_estimator


@pytest.fixture(scope="module")
def moons():
    """Noisy two moons: 300 train / 100 val / 300 test points."""
    return get_loaders("moons", batch_size=32, seed=0, n=400, n_test=300, noise=0.25,
                       val_fraction=0.25)


@pytest.fixture(scope="module")
def fitted(moons):
    train, val, _, info = moons
    est = make_estimator("dkl", lambda: build_model("mlp", info, width=0.125), device="cpu",
                         seed=0, lr=0.1, num_inducing=32)
    return est.fit(train, 10, val_loader=val)


def test_dkl_fits_moons_and_beats_the_constant_class_frequency_predictor(moons, fitted) -> None:
    train, _, test, _ = moons
    report = fitted.evaluate(test)
    y_train, y_test = train.dataset.y, test.dataset.y
    freq = torch.bincount(y_train, minlength=2).double() / len(y_train)
    assert report["accuracy"] > float((y_test == freq.argmax()).double().mean()) + 0.25, report
    assert report["nll"] < nll(freq.expand(len(y_test), 2), y_test) - 0.25, report
    samples = fitted.predict(test.dataset.x[:7], num_samples=5)
    assert samples.probs.shape == (5, 7, 2) and not torch.equal(samples.probs[0], samples.probs[1])
    assert fitted.history_[-1] < fitted.history_[0]  # the negative ELBO went down


def test_the_readout_becomes_the_gp_and_the_registry_builds_it() -> None:
    net = build_model("mlp", (2,), 3, width=0.125)
    assert split_readout(net) == (32, 3)
    assert not any(isinstance(m, nn.Linear) and m.out_features == 3 for m in net.modules())
    spec = get_model("dkl")
    assert spec.kind == "network" and spec.options == {"num_inducing": 64, "gp_lr": 0.01}
    est = make_estimator("dkl", lambda: build_model("cnn1d", (40,), 10, width=0.25))
    assert isinstance(est, DKLClassifier) and (est.num_features, est.num_classes) == (32, 10)


def test_bad_input_gives_the_clear_errors_of_the_other_estimators(moons, fitted) -> None:
    x = moons[2].dataset.x[:4]
    with pytest.raises(ValueError, match="NaN"):
        fitted.predict(torch.full_like(x, float("nan")))
    with pytest.raises(ValueError, match=r"shape \(3,\).*fitted on \(2,\)"):
        fitted.predict(torch.randn(4, 3))
    with pytest.raises(TypeError, match="torch.Tensor"):
        fitted.predict(x.numpy())
    with pytest.raises(RuntimeError, match="not fitted"):
        DKLClassifier(build_model("mlp", (2,), 2, width=0.1)).predict(x)
    with pytest.raises(ValueError, match="classifier"):
        DKLClassifier(build_model("mlp", (2,), 1, width=0.1), likelihood="normal")
    fresh = DKLClassifier(build_model("mlp", (2,), 2, width=0.1), device="cpu")
    y = torch.zeros(8, dtype=torch.long)
    with pytest.raises(ValueError, match=r"y must have shape \(8,\)"):
        fresh.fit(DataLoader(TensorDataset(torch.randn(8, 2), y[:, None]), batch_size=8), 1)
    with pytest.raises(ValueError, match="drop_last"):
        fresh.fit(DataLoader(TensorDataset(torch.randn(8, 2), y), batch_size=16,
                             drop_last=True), 1)
    with pytest.raises(ValueError, match="NaN"):
        fresh.fit(DataLoader(TensorDataset(torch.full((8, 2), float("nan")), y)), 1)
    with pytest.raises(ValueError, match="num_classes=2"):
        fresh.fit(DataLoader(TensorDataset(torch.randn(8, 2), y + 2), batch_size=8), 1)


def test_dkl_runs_sparse_through_the_run_path_and_reloads(tmp_path) -> None:
    cfg = RunConfig(model="dkl", data="moons", arch="mlp", width=0.25, epochs=2, batch_size=64,
                    device="cpu", sparsity=0.5)
    res = run(cfg, out=tmp_path / "run", shift=False)
    assert res.sparsity == pytest.approx(0.5, abs=0.02) and res.nonzero_params > 0
    assert 0.0 <= res.metrics["accuracy"] <= 1.0
    est = load_run(tmp_path / "run")
    xs = torch.randn(5, 2)
    torch.manual_seed(1)
    a = est.predict(xs, num_samples=3)
    torch.manual_seed(1)
    b = res.estimator.predict(xs, num_samples=3)
    assert a.probs.shape == (3, 5, 2) and torch.allclose(a.probs, b.probs, atol=1e-5)
