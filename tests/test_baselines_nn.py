"""Neural baselines: every name fits moons better than a constant predictor; each baseline's
defining behaviour (MC dropout varies, W-DP is deterministic, temperature lowers NLL, ensemble
members differ, label smoothing's loss, mixup alpha=0) checked on small problems."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from hvgp.baselines.nn import (
    ESTIMATORS,
    WDP,
    DeepEnsemble,
    Dense,
    DropoutBefore,
    LabelSmoothing,
    MCDropout,
    Mixup,
    MixupLoader,
    SoftTargetCategorical,
    TemperatureScaled,
    add_mc_dropout,
    make_estimator,
    stack_samples,
)
from hvgp.baselines.nn.ensemble import EqualNonzeroEnsemble
from hvgp.data import get_loaders
from hvgp.infer import CigL, RigL, prior_scale_from_weight_decay
from hvgp.metrics import nll
from hvgp.nn import build_model, masked_layers
from hvgp.predict import PredictiveSamples

EPOCHS = 15


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny networks: one intra-op thread is fastest (no spinning on shared cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def moons():
    """Noisy two moons: 300 train / 100 val / 300 test points."""
    return get_loaders("moons", batch_size=32, seed=0, n=400, n_test=300, noise=0.25,
                       val_fraction=0.25)


def _factory(info, width: float = 0.125):
    return lambda: build_model("mlp", info, width=width)


#: estimators that train a RigL-sparse network (laplace: Laplace on a trained RigL)
SPARSE = ("cigl", "rigl", "set", "static", "laplace")


def _kw(name: str) -> dict:
    kw: dict = {"device": "cpu", "seed": 0, "lr": 0.1}
    if name in SPARSE:
        kw.update(sparsity=0.5, delta_t=5)
    if name in ("ensemble", "ensemble-equal"):
        kw["num_members"] = 3
    return kw


@pytest.mark.parametrize("name", ESTIMATORS)
def test_each_estimator_beats_the_constant_class_frequency_predictor(name, moons) -> None:
    train, val, test, info = moons
    est = make_estimator(name, _factory(info), **_kw(name)).fit(train, EPOCHS, val_loader=val)
    report = est.evaluate(test)
    y_train, y_test = train.dataset.y, test.dataset.y
    freq = torch.bincount(y_train, minlength=2).double() / len(y_train)
    trivial_acc = float((y_test == freq.argmax()).double().mean())
    trivial_nll = nll(freq.expand(len(y_test), 2), y_test)
    assert report["accuracy"] > trivial_acc + 0.25, report
    assert report["nll"] < trivial_nll - 0.25, (report, trivial_nll)
    expected_sparsity = 0.5 if name in SPARSE else 0.0
    assert est.sparsity() == pytest.approx(expected_sparsity, abs=0.01)


def test_mc_dropout_predictions_vary_across_samples_and_dense_ones_do_not(moons) -> None:
    train, _, test, info = moons
    x = test.dataset.x[:50]
    mc = MCDropout(_factory(info)(), dropout=0.2, num_samples=16, device="cpu").fit(train, 2)
    dense = Dense(_factory(info)(), device="cpu").fit(train, 2)
    p_mc, p_dense = mc.predict(x), dense.predict(x, num_samples=16)
    assert p_mc.num_samples == 16 and p_dense.num_samples == 16
    assert p_mc.probs.std(0).mean() > 1e-3
    assert p_mc.mutual_information().mean() > 0
    assert torch.equal(p_dense.probs.std(0), torch.zeros_like(p_dense.probs[0]))
    # the loop reference draws independent passes too
    assert mc.predict(x, 4, vectorize=False).probs.std(0).mean() > 1e-3


def test_add_mc_dropout_wraps_every_weight_layer_but_the_first() -> None:
    net = build_model("cnn1d", (40,), 3, width=0.25)
    before = list(masked_layers(net).values())
    add_mc_dropout(net, 0.3)
    wrappers = [m for m in net.modules() if isinstance(m, DropoutBefore)]
    assert [w.layer for w in wrappers] == before[1:]
    assert list(masked_layers(net).values()) == before  # same layers, new names
    assert net(torch.randn(4, 40)).shape == (4, 3)
    plain = add_mc_dropout(nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2)), 0.5)
    assert isinstance(plain[2], DropoutBefore) and len(masked_layers(plain)) == 2
    with pytest.raises(ValueError, match="at least two weight layers"):
        add_mc_dropout(nn.Linear(3, 2), 0.5)
    with pytest.raises(ValueError, match="dropout rate"):
        add_mc_dropout(build_model("mlp", (3,), 2, width=0.1), 1.0)


def test_wdp_drops_weights_in_training_but_predicts_deterministically(moons) -> None:
    train, _, test, info = moons
    est = WDP(_factory(info)(), drop_rate=0.3, device="cpu")
    assert est.bnn.mask_sites  # the random mask is a site of the training program
    est.fit(train, 2)
    x = test.dataset.x[:50]
    a, b = est.predict(x), est.predict(x, num_samples=8)
    assert a.num_samples == 1 and b.num_samples == 1
    assert torch.equal(a.probs, b.probs)
    assert est.averaged_ is None
    with pytest.raises(ValueError, match="averaging"):
        WDP(_factory(info)(), averaging=True)


def test_temperature_scaling_lowers_validation_nll_of_an_overconfident_model(moons) -> None:
    train, val, _, info = moons
    est = TemperatureScaled(Dense(_factory(info)(), device="cpu")).fit(train, 5, val_loader=val)
    with torch.no_grad():  # make the network over-confident: logits x 8
        last = list(masked_layers(est.estimator.net).values())[-1]
        last.weight.mul_(8.0)
        last.bias.mul_(8.0)
    raw = est.estimator.evaluate(val)["nll"]
    est.calibrate(val)
    tempered = est.evaluate(val)
    assert est.temperature > 2.0
    assert tempered["nll"] < raw - 0.05
    assert tempered["accuracy"] == pytest.approx(est.estimator.evaluate(val)["accuracy"])
    with pytest.raises(ValueError, match="val_loader"):
        TemperatureScaled(Dense(_factory(info)())).fit(train, 1)


def test_ensemble_members_differ_and_its_sample_count_is_the_member_count(moons) -> None:
    train, _, test, info = moons
    ens = DeepEnsemble(_factory(info), num_members=3, device="cpu").fit(train, 2)
    w = [list(masked_layers(m.net).values())[0].weight for m in ens.members]
    assert not torch.equal(w[0], w[1]) and not torch.equal(w[1], w[2])
    p = ens.predict(test.dataset.x[:20])
    assert p.num_samples == 3
    assert p.probs.std(0).mean() > 1e-4
    assert [m.seed for m in ens.members] == [0, 1, 2]
    with pytest.raises(TypeError, match="factory"):
        DeepEnsemble(_factory(info)(), num_members=2)


def test_ensemble_is_reproducible_from_its_seed(moons) -> None:
    _, _, test, info = moons
    a = DeepEnsemble(_factory(info), num_members=2, seed=3, device="cpu")
    b = DeepEnsemble(_factory(info), num_members=2, seed=3, device="cpu")
    x = test.dataset.x[:10]
    assert torch.equal(a.predict(x).probs, b.predict(x).probs)


def test_label_smoothing_training_loss_is_the_hand_computed_smoothed_cross_entropy() -> None:
    torch.manual_seed(0)
    net = build_model("mlp", (3,), 4, width=0.05)
    eps, wd, n = 0.2, 1e-2, 10
    est = LabelSmoothing(net, smoothing=eps, weight_decay=wd, device="cpu")
    x, y = torch.randn(5, 3), torch.tensor([0, 3, 1, 1, 2])
    est.bnn.data_size = n  # what fit() sets: minibatch of 5 out of N = 10
    est.bnn.prior_scale = prior_scale_from_weight_decay(wd, n)
    loss = est.bnn.loss(x, y)
    log_p = net(x).log_softmax(-1)
    target = (1 - eps) * F.one_hot(y, 4) + eps / 4
    smoothed_ce = -(target * log_p).sum()
    prior = torch.distributions.Normal(0.0, est.bnn.prior_scale)
    neg_log_prior = -sum(prior.log_prob(m.weight).sum() for m in masked_layers(net).values())
    expected = (n / 5 * smoothed_ce + neg_log_prior) / n
    assert torch.allclose(loss, expected, rtol=1e-5)
    # prediction is the plain Categorical softmax, not the smoothed target
    assert torch.allclose(est.predict(x).probs[0], net(x).softmax(-1), atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(
    eps=st.floats(0.0, 0.9),
    c=st.integers(2, 6),
    seed=st.integers(0, 2**16),
)
def test_soft_target_log_prob_is_minus_torch_smoothed_cross_entropy(eps, c, seed) -> None:
    g = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(7, c, generator=g)
    y = torch.randint(0, c, (7,), generator=g)
    d = SoftTargetCategorical(logits=logits, smoothing=eps)
    expected = -F.cross_entropy(logits, y, label_smoothing=eps, reduction="none")
    assert torch.allclose(d.log_prob(y), expected, atol=1e-5)
    # a one-hot soft target is the integer label
    plain = SoftTargetCategorical(logits=logits)
    assert torch.allclose(plain.log_prob(F.one_hot(y, c).float()),
                          torch.distributions.Categorical(logits=logits).log_prob(y), atol=1e-6)


def test_soft_targets_reject_bad_values() -> None:
    d = SoftTargetCategorical(logits=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="sum to 1"):
        d.log_prob(torch.tensor([[0.5, 0.6, 0.0], [1.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="shape"):
        d.log_prob(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="labels"):
        d.log_prob(torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="smoothing"):
        LabelSmoothing(build_model("mlp", (3,), 2, width=0.1), smoothing=0.0)


def test_mixup_with_alpha_zero_is_the_plain_model(moons) -> None:
    info = moons[3]
    net = _factory(info)()
    twin = copy.deepcopy(net)

    def train():  # a fresh loader each: same shuffling for both runs
        return get_loaders("moons", batch_size=32, seed=0, n=400, noise=0.25)[0]

    mixed = Mixup(net, mixup_alpha=0.0, device="cpu").fit(train(), 2)
    plain = Dense(twin, device="cpu").fit(train(), 2)
    for a, b in zip(mixed.net.parameters(), plain.net.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_mixup_loader_mixes_pairs_of_inputs_and_their_one_hot_labels() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 5, generator=g), torch.randint(0, 3, (64,), generator=g)
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    wrapped = MixupLoader(loader, 3, alpha=1.0, seed=1)
    assert len(wrapped) == len(loader) and wrapped.dataset is loader.dataset
    lams = []
    for (xm, t), (x0, y0) in zip(wrapped, loader):
        assert t.shape == (16, 3) and torch.allclose(t.sum(1), torch.ones(16))
        # one lam per batch: the own label's weight is lam, or 1 when paired with its class
        own = t.gather(1, y0[:, None]).squeeze(1)
        lam = float(own.min())
        lams.append(lam)
        assert (((own - lam).abs() < 1e-6) | ((own - 1).abs() < 1e-6)).all()
        # each mixed input is lam * its own input + (1 - lam) * some input of the batch
        rest = (xm - lam * x0) / (1 - lam) if lam < 1 else x0
        dist = torch.cdist(rest, x0).min(1).values
        assert dist.max() < 1e-4
    assert min(lams) < 0.99  # actually mixed
    first = [t for _, t in MixupLoader(loader, 3, alpha=1.0, seed=1)]
    second = [t for _, t in MixupLoader(loader, 3, alpha=1.0, seed=1)]
    assert all(torch.equal(a, b) for a, b in zip(first, second))  # seeded
    with pytest.raises(ValueError, match="alpha"):
        MixupLoader(loader, 3, alpha=-1.0)
    with pytest.raises(ValueError, match="integer class labels"):
        wrapped.mix(x[:4], torch.rand(4))


def test_registry_maps_names_to_estimators_and_lists_names_on_error() -> None:
    from hvgp.baselines.gp.dkl import DKLClassifier  # here: importing it registers it first
    from hvgp.baselines.gp.sngp import SNGPClassifier
    from hvgp.baselines.nn.laplace_approx import LastLayerLaplace

    def net():
        return build_model("mlp", (3,), 2, width=0.1)

    expected = {
        "cigl": CigL, "rigl": RigL, "set": RigL, "static": RigL, "dense": Dense,
        "mc-dropout": MCDropout, "wdp": WDP, "label-smoothing": LabelSmoothing,
        "mixup": Mixup, "temperature": TemperatureScaled, "ensemble": DeepEnsemble,
        "ensemble-equal": EqualNonzeroEnsemble, "dkl": DKLClassifier,
        "sngp": SNGPClassifier, "laplace": LastLayerLaplace,
    }
    assert set(ESTIMATORS) == set(expected)
    for name, cls in expected.items():
        est = make_estimator(name, net, device="cpu", **({"num_members": 2}
                                                        if "ensemble" in name else {}))
        assert type(est) is cls, name
    assert make_estimator("SET", net(), sparsity=0.5).config["updater"] == "set"
    assert make_estimator("static", net(), sparsity=0.5).config["updater"] == "static"
    assert type(make_estimator("MC_Dropout", net())) is MCDropout
    with pytest.raises(ValueError, match="valid names: cigl, rigl"):
        make_estimator("bayes-by-backprop", net())
    with pytest.raises(ValueError, match="updater"):
        make_estimator("set", net(), updater="rigl")
    with pytest.raises(ValueError, match="sparsity"):
        make_estimator("dense", net(), sparsity=0.9)
    with pytest.raises(TypeError, match="factory"):
        make_estimator("ensemble", net())
    with pytest.raises(TypeError, match="net_or_factory"):
        make_estimator("dense", "mlp")
    with pytest.raises(ValueError, match="temper twice"):
        make_estimator("temperature", net, base="ts")


def test_temperature_wraps_any_base_estimator_including_an_ensemble(moons) -> None:
    train, val, test, info = moons
    est = make_estimator("temperature", _factory(info), base="ensemble", num_members=2,
                         device="cpu").fit(train, 3, val_loader=val)
    assert isinstance(est.estimator, DeepEnsemble) and est.temperature is not None
    samples, y = est.predict_loader(test)
    assert samples.num_samples == 2 and len(y) == len(test.dataset)
    raw = est.estimator.predict(test.dataset.x)
    t = est.temperature
    assert torch.allclose(samples.probs, (raw.probs.log() / t).softmax(-1), atol=1e-5)


def test_registry_seeds_a_factory_so_initialisation_is_reproducible() -> None:
    def factory():
        return build_model("mlp", (3,), 2, width=0.1)

    a = make_estimator("dense", factory, seed=5)
    torch.manual_seed(123)  # the global state must not matter
    b = make_estimator("dense", factory, seed=5)
    assert all(torch.equal(p, q) for p, q in zip(a.net.parameters(), b.net.parameters()))


def test_stack_samples_joins_along_the_sample_axis_and_rejects_mixtures() -> None:
    c = PredictiveSamples(probs=torch.tensor([[[0.2, 0.8], [0.5, 0.5]]]))
    r = PredictiveSamples(loc=torch.zeros(1, 2), scale=torch.ones(1, 2))
    assert stack_samples([c, c, c]).probs.shape == (3, 2, 2)
    assert stack_samples([r, r]).scale.shape == (2, 2)
    with pytest.raises(ValueError, match="cannot stack"):
        stack_samples([c, r])
    with pytest.raises(ValueError, match="nothing"):
        stack_samples([])
    assert math.isclose(float(stack_samples([c, c]).mean().sum()), 2.0)


@pytest.mark.parametrize("name", ["mc-dropout", "ensemble"])
def test_sampling_baselines_also_serve_regression(name) -> None:
    train, _, test, info = get_loaders("gap1d", batch_size=32, seed=0)
    kw = {"device": "cpu", "likelihood": "normal", "optimizer": "adam", "lr": 0.01}
    if name == "ensemble":
        kw["num_members"] = 2
    est = make_estimator(name, _factory(info, width=0.25), **kw).fit(train, 20)
    samples, y = est.predict_loader(test, num_samples=4 if name == "mc-dropout" else None)
    assert samples.loc.shape == ((4 if name == "mc-dropout" else 2), len(y))
    assert samples.loc.std(0).mean() > 0  # the samples differ
    constant_rmse = float((y - train.dataset.y.mean()).pow(2).mean().sqrt())
    assert est.evaluate(test)["rmse"] < 0.8 * constant_rmse


def test_temperature_on_cigl_fits_t_on_validation_and_keeps_or_lowers_its_nll(moons) -> None:
    from hvgp.metrics import TemperatureScaling
    from hvgp.metrics.score import score

    train, val, _, info = moons
    est = make_estimator("temperature", _factory(info), base="cigl", sparsity=0.5,
                         drop_rate=0.05, delta_t=5, device="cpu", seed=0, lr=0.1)
    est.fit(train, 3, val_loader=val)
    assert isinstance(est.estimator, CigL) and set(est.estimator.bnn.drop_rates.values()) == {0.05}
    samples, y = est.estimator.predict_loader(val)  # the predictive T is fitted on
    assert est.temperature == pytest.approx(TemperatureScaling().fit(samples, y).temperature,
                                            rel=1e-3)
    assert score(est.scaler.transform(samples), y)["nll"] <= score(samples, y)["nll"] + 1e-6
    assert est.sparsity() == pytest.approx(0.5, abs=0.01)


def test_cli_temperature_with_base_cigl_forwards_cigl_fields_and_reloads(tmp_path) -> None:
    from hvgp.cli import main
    from hvgp.experiment import load_run

    out = tmp_path / "run"
    assert main(["train", "--model", "temperature", "--base", "cigl", "--drop-rate", "0.05",
                 "--sparsity", "0.5", "--data", "moons", "--arch", "mlp", "--width", "0.25",
                 "--epochs", "1", "--device", "cpu", "--quiet", "--out", str(out)]) == 0
    est = load_run(out)
    assert isinstance(est, TemperatureScaled) and isinstance(est.estimator, CigL)
    assert set(est.estimator.bnn.drop_rates.values()) == {0.05}
    assert est.temperature is not None and est.temperature > 0
    rigl = make_estimator("temperature", lambda: build_model("mlp", (2,), 2, width=0.1),
                          base="rigl", drop_rate=0.05)
    assert set(rigl.estimator.bnn.drop_rates.values()) == {0.0}  # RigL reads no drop rate
