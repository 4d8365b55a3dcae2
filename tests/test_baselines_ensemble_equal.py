"""``ensemble-equal``: M members at sparsity 1 - (1 - s)/M hold one network's active weights."""

from __future__ import annotations

import pytest
import torch

from hvgp.baselines.nn.ensemble import DeepEnsemble, EqualNonzeroEnsemble, member_sparsity
from hvgp.data import get_loaders
from hvgp.infer import RigL
from hvgp.metrics import nll
from hvgp.nn import build_model, masked_layers
from hvgp.registry import get_model, make_estimator


def _active(nets) -> int:
    return sum(int(layer.weight_mask.sum()) for n in nets for layer in masked_layers(n).values())


def _factory(shape=(2,), k: int = 2, width: float = 0.25):
    return lambda: build_model("mlp", shape, k, width=width)


def test_member_sparsity_is_one_minus_the_density_shared_by_m() -> None:
    assert member_sparsity(0.9, 5) == pytest.approx(0.98)
    assert member_sparsity(0.0, 4) == pytest.approx(0.75)
    assert member_sparsity(0.5, 1) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="num_members"):
        member_sparsity(0.5, 0)
    with pytest.raises(ValueError, match="sparsity"):
        member_sparsity(1.0, 2)


@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9])
@pytest.mark.parametrize("members", [2, 3, 5])
def test_the_ensemble_holds_as_many_active_weights_as_one_network(sparsity, members) -> None:
    factory = _factory((40,), 10, width=0.5)
    ens = make_estimator("ensemble-equal", factory, sparsity=sparsity, num_members=members,
                         device="cpu")
    single = RigL(factory(), sparsity=sparsity, device="cpu")
    assert isinstance(ens, EqualNonzeroEnsemble) and ens.num_members == members
    assert ens.member_sparsity == pytest.approx(1 - (1 - sparsity) / members)
    # each member rounds its own per-layer ERK counts to one whole weight: within M weights
    assert abs(_active(ens.prediction_nets()) - _active([single.net])) <= members
    assert ens.sparsity() == pytest.approx(single.sparsity(), abs=members / 1000)
    # the M-times-larger ensemble holds M networks' weights
    big = make_estimator("ensemble", factory, sparsity=sparsity, num_members=members,
                         device="cpu")
    assert type(big) is DeepEnsemble
    assert abs(_active(big.prediction_nets()) - members * _active([single.net])) <= members
    # non-zero parameters differ only by the per-member biases (outside the mask budget)
    biases = sum(p.numel() for name, p in single.net.named_parameters() if name.endswith("bias"))
    assert abs(ens.nonzero() - single.nonzero() - (members - 1) * biases) <= members


def test_it_trains_on_a_tiny_problem_and_beats_the_constant_predictor() -> None:
    train, val, test, info = get_loaders("moons", batch_size=32, seed=0, n=400, n_test=300,
                                         noise=0.25, val_fraction=0.25)
    est = make_estimator("ensemble-equal", _factory(info.input_shape, 2), sparsity=0.5,
                         num_members=2, device="cpu", seed=0, lr=0.1)
    est.fit(train, 8, val_loader=val)
    report = est.evaluate(test)
    y_train, y_test = train.dataset.y, test.dataset.y
    freq = torch.bincount(y_train, minlength=2).double() / len(y_train)
    assert report["accuracy"] > float((y_test == freq.argmax()).double().mean()) + 0.2, report
    assert report["nll"] < nll(freq.expand(len(y_test), 2), y_test) - 0.2, report
    assert est.predict(test.dataset.x[:5]).num_samples == 2
    assert est.sparsity() == pytest.approx(0.5, abs=0.01)


def test_registry_lists_it_beside_the_larger_ensemble() -> None:
    spec = get_model("ensemble_equal")
    assert spec.kind == "wrapper" and spec.options == {"num_members": 5, "member": "rigl"}
    assert "M x" in get_model("ensemble").help
    with pytest.raises(TypeError, match="factory"):
        make_estimator("ensemble-equal", _factory()())
