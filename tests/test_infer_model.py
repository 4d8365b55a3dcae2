"""The Pyro program: ELBO = NLL + weight decay, the random-mask site, scaling, isolation."""

from __future__ import annotations

import pyro
import pytest
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.infer import Trace_ELBO
from torch.func import functional_call

from hvgp.infer import SparseBNN, mask_site, predictive_samples, prior_scale_from_weight_decay
from hvgp.nn import build_model, masked_layers
from hvgp.sparsity import SparseTopology

N, B, P = 50, 10, 0.3


def _bnn(drop_rate: float = P, weight_decay: float = 1e-2, sparsity: float = 0.5) -> SparseBNN:
    net = build_model("mlp", (4,), 3, width=6 / 256)  # 4 -> 6 -> 6 -> 3
    SparseTopology(net, sparsity, seed=1)
    return SparseBNN(net, "categorical", drop_rate,
                     prior_scale_from_weight_decay(weight_decay, N), data_size=N)


def _fixed_masks(bnn: SparseBNN) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return {mask_site(n): torch.bernoulli(torch.full(layer.weight.shape, 1 - P), generator=g)
            for n, layer in masked_layers(bnn.net).items()}


def test_elbo_gradient_equals_nll_plus_weight_decay() -> None:
    """With Z and M fixed, grad(-ELBO / N) = grad(mean NLL + (lambda/2) sum_kept w^2).

    -ELBO = (N/B) sum_batch NLL + sum_kept w^2 / (2 s^2) + const (Delta guide: log q = 0),
    so -ELBO / N has the gradient of mean NLL + lambda/2 ||w_kept||^2 with
    lambda = 1 / (s^2 N), i.e. s = 1 / sqrt(lambda N) (``prior_scale_from_weight_decay``).
    """
    lam = 1e-2
    bnn = _bnn(weight_decay=lam)
    x, y = torch.randn(B, 4), torch.randint(0, 3, (B,))
    zs = _fixed_masks(bnn)
    elbo = Trace_ELBO(max_plate_nesting=1).differentiable_loss(
        poutine.condition(bnn.model, data=zs), bnn.guide, x, y) / N
    params = dict(bnn.net.named_parameters())
    g_elbo = torch.autograd.grad(elbo, list(params.values()))

    used, penalty = {}, 0.0
    for name, layer in masked_layers(bnn.net).items():
        m, z = layer.weight_mask, zs[mask_site(name)]
        used[f"{name}.weight"] = layer.weight * torch.where(m, z / (1 - P), torch.ones_like(z))
        penalty = penalty + (layer.weight[m & z.bool()] ** 2).sum()
    nll = F.cross_entropy(functional_call(bnn.net, used, (x,)), y)
    g_ref = torch.autograd.grad(nll + lam / 2 * penalty, list(params.values()))
    for name, a, b in zip(params, g_elbo, g_ref):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5, msg=name)
    assert any(float(g.abs().sum()) > 0 for g in g_elbo)


def test_random_mask_is_a_traced_conditionable_blockable_site() -> None:
    bnn = _bnn()
    x = torch.randn(B, 4)
    site = mask_site("1")
    tr = poutine.trace(bnn.model).get_trace(x)
    z = tr.nodes[site]["value"]
    assert z.shape == bnn.net[1].weight.shape and set(z.unique().tolist()) <= {0.0, 1.0}
    fixed = torch.zeros_like(z)
    tr_c = poutine.trace(poutine.condition(bnn.model, data={site: fixed})).get_trace(x)
    assert torch.equal(tr_c.nodes[site]["value"], fixed) and tr_c.nodes[site]["is_observed"]
    tr_b = poutine.trace(poutine.block(bnn.model, hide=[site])).get_trace(x)
    assert site not in tr_b.nodes and "1.weight" in tr_b.nodes


def test_random_mask_resampled_every_call_with_keep_rate() -> None:
    bnn = _bnn(drop_rate=0.25, sparsity=0.0)
    draws = [poutine.trace(bnn.model).get_trace(torch.randn(2, 4)).nodes[mask_site("1")]["value"]
             for _ in range(200)]
    stacked = torch.stack(draws)
    assert not torch.equal(stacked[0], stacked[1])
    assert abs(float(stacked.mean()) - 0.75) < 0.02


def test_dropped_weights_get_no_gradient_inactive_weights_get_dense_gradient() -> None:
    bnn = _bnn()
    x, y = torch.randn(B, 4), torch.randint(0, 3, (B,))
    zs = _fixed_masks(bnn)
    loss = Trace_ELBO(max_plate_nesting=1).differentiable_loss(
        poutine.condition(bnn.model, data=zs), bnn.guide, x, y)
    loss.backward()
    layer = bnn.net[3]
    m, z = layer.weight_mask, zs[mask_site("3")].bool()
    assert float(layer.weight.grad[m & ~z].abs().max()) == 0.0
    assert float(layer.weight.grad[~m].abs().sum()) > 0.0  # RigL's grow signal
    assert torch.all(layer.weight[~m] == 0)


def test_minibatch_elbo_is_unbiased_for_the_full_data_elbo() -> None:
    """Averaging the N/B-scaled loss over a partition into minibatches gives the full loss."""
    bnn = _bnn(drop_rate=0.0)
    x, y = torch.randn(N, 4), torch.randint(0, 3, (N,))
    elbo = Trace_ELBO(max_plate_nesting=1)
    full = elbo.differentiable_loss(bnn.model, bnn.guide, x, y)
    parts = [elbo.differentiable_loss(bnn.model, bnn.guide, x[i:i + B], y[i:i + B])
             for i in range(0, N, B)]
    torch.testing.assert_close(torch.stack(parts).mean(), full, rtol=1e-5, atol=1e-4)
    bnn.data_size = None  # without N the minibatch term is not scaled
    unscaled = elbo.differentiable_loss(bnn.model, bnn.guide, x[:B], y[:B]).detach()
    assert float(unscaled) < float(parts[0].detach())


def test_two_models_do_not_share_parameters() -> None:
    a, b = _bnn(), _bnn()
    before = {k: v.clone() for k, v in b.state_dict().items()}
    x, y = torch.randn(B, 4), torch.randint(0, 3, (B,))
    opt = torch.optim.SGD(a.parameters(), lr=1.0)
    a.loss(x, y).backward()
    opt.step()
    for k, v in b.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not torch.equal(a.net[1].weight, b.net[1].weight)
    assert len(pyro.get_param_store()) == 0


def test_vectorised_predictive_matches_loop_in_distribution() -> None:
    bnn = _bnn(drop_rate=0.3, sparsity=0.0)
    x = torch.randn(5, 4)
    vec = predictive_samples(bnn, x, 4000, vectorize=True)
    loop = predictive_samples(bnn, x, 4000, vectorize=False)
    assert vec.probs.shape == loop.probs.shape == (4000, 5, 3)
    torch.testing.assert_close(vec.mean(), loop.mean(), atol=0.01, rtol=0)
    torch.testing.assert_close(vec.probs.std(0), loop.probs.std(0), atol=0.01, rtol=0)
    assert float(vec.probs.std(0).mean()) > 0.01  # Z really varies across samples


def test_deterministic_prediction_uses_unscaled_weights() -> None:
    bnn = _bnn(drop_rate=0.3)
    x = torch.randn(5, 4)
    det = predictive_samples(bnn, x)
    assert det.probs.shape == (1, 5, 3)
    torch.testing.assert_close(det.probs[0], bnn.net.eval()(x).softmax(-1))
    no_z = _bnn(drop_rate=0.0)
    no_z.net.load_state_dict(bnn.net.state_dict())
    torch.testing.assert_close(predictive_samples(no_z, x, 3).probs[1], det.probs[0])


def test_regression_likelihood_learns_or_fixes_noise() -> None:
    net = build_model("mlp", (3,), 1, width=0.05)
    learned = SparseBNN(net, "normal", 0.1, data_size=20)
    fixed = SparseBNN(build_model("mlp", (3,), 1, width=0.05), "normal", noise=0.5)
    x, y = torch.randn(8, 3), torch.randn(8)
    learned.loss(x, y).backward()
    assert learned.likelihood.log_noise.grad is not None
    assert [n for n, _ in fixed.likelihood.named_parameters()] == []
    ps = predictive_samples(fixed, x, 6)
    assert ps.loc.shape == (6, 8) and torch.allclose(ps.scale, torch.full((6, 8), 0.5))


def test_bad_configuration_is_rejected() -> None:
    net = build_model("mlp", (4,), 3, width=0.05)
    with pytest.raises(ValueError, match="drop_rate"):
        SparseBNN(net, drop_rate=1.0)
    with pytest.raises(ValueError, match="not masked layers"):
        SparseBNN(net, drop_rate={"nope": 0.1})
    with pytest.raises(ValueError, match="likelihood"):
        SparseBNN(net, likelihood="poisson")
    with pytest.raises(ValueError, match="weight_decay"):
        prior_scale_from_weight_decay(-1.0, 10)  # 0 is no decay (#16)
    with pytest.raises(TypeError, match="masked layers"):
        SparseBNN(torch.nn.Linear(2, 2))


def test_sampled_prediction_works_for_more_points_than_the_training_set() -> None:
    """The observation plate is scaled to N; prediction must not be bound by it."""
    from torch.utils.data import DataLoader, TensorDataset

    from hvgp.infer import CigL
    from hvgp.nn import build_model

    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
    est = CigL(build_model("mlp", (4,), 2, width=0.1), sparsity=0.5, drop_rate=0.1,
               device="cpu").fit(DataLoader(TensorDataset(x, y), batch_size=8), 2)
    samples = est.predict(torch.randn(100, 4), num_samples=5)
    assert samples.probs.shape == (5, 100, 2)
    assert samples.mutual_information().max() > 0  # the random mask really varies
