"""The fast training step (#17) equals the generic Pyro ELBO step, and runs only where exact."""

from __future__ import annotations

import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from torch.utils.data import DataLoader, TensorDataset

from hvgp.infer import (
    CigL,
    GaussianPrior,
    NegativeELBO,
    Prior,
    SparseBNN,
    TopologyUpdate,
    Trainer,
    mask_site,
)
from hvgp.infer.trainer import SiteRecorder
from hvgp.nn import build_model
from hvgp.sparsity import SparseTopology
from hvgp.sparsity.updaters import make_updater

N, B = 200, 16


def _trainer(fast: bool, arch: str = "cnn1d", opt: str = "sgd", likelihood: str = "categorical",
             weight_decay: float = 5e-3, drop_rate: float = 0.2, prior: Prior | None = None,
             ) -> Trainer:
    """A CigL-shaped trainer: masked weights decayed by the prior, RigL updates every 2 steps."""
    torch.manual_seed(0)
    out = 3 if likelihood == "categorical" else 1
    net = build_model(arch, (40,), out, width=0.25)
    topo = SparseTopology(net, 0.8, seed=1)
    bnn = SparseBNN(net, likelihood, drop_rate, data_size=N,
                    prior=prior or GaussianPrior.from_weight_decay(weight_decay, N))
    masked = {id(layer.weight) for layer in bnn.layers.values()}
    groups = [{"params": [p for p in bnn.parameters() if id(p) in masked], "weight_decay": 0.0},
              {"params": [p for p in bnn.parameters() if id(p) not in masked],
               "weight_decay": weight_decay}]
    optimizer = (torch.optim.SGD(groups, lr=0.05, momentum=0.9, nesterov=True)
                 if opt == "sgd" else torch.optim.Adam(groups, lr=0.01))
    updater = make_updater("rigl", topo, total_steps=20, delta_t=2, t_end=0.75, alpha=0.3,
                           seed=0)
    return Trainer(bnn, optimizer, topo, callbacks=[TopologyUpdate(updater)],
                   objective=NegativeELBO(bnn, N), fast=fast)


def _batch(step: int, regression: bool) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + step)
    x = torch.randn(B, 40, generator=g)
    y = torch.randn(B, generator=g) if regression else torch.randint(0, 3, (B,), generator=g)
    return x, y


def _state(t: Trainer) -> dict[str, torch.Tensor]:
    """Weights, gradients and optimizer state tensors of a trainer, by name."""
    out = {}
    for name, p in t.bnn.named_parameters():
        out[f"w:{name}"] = p.detach().clone()
        out[f"g:{name}"] = p.grad.detach().clone()
        for k, v in t.optimizer.state.get(p, {}).items():
            if torch.is_tensor(v):
                out[f"s:{name}:{k}"] = v.detach().clone()
    return out


CASES = [("cnn1d", "sgd", "categorical", 5e-3), ("mlp", "adam", "categorical", 5e-3),
         ("mlp", "sgd", "normal", 5e-3), ("cnn1d", "sgd", "categorical", 0.0)]


@pytest.mark.parametrize(("arch", "opt", "likelihood", "wd"), CASES)
def test_fast_and_generic_steps_agree_for_the_same_z(arch, opt, likelihood, wd) -> None:
    fast, generic = (_trainer(f, arch, opt, likelihood, wd) for f in (True, False))
    for step in range(6):  # RigL updates at steps 2 and 4 exercise the changed-mask path
        x, y = _batch(step, likelihood == "normal")
        losses = []
        for t in (fast, generic):
            torch.manual_seed(step)  # the same seed draws the same Z on both paths
            losses.append(t.train_step(x, y))
        assert (fast.last_path, generic.last_path) == ("fast", "generic")
        assert abs(losses[0] - losses[1]) <= 1e-5 * max(1.0, abs(losses[1])), step
        assert fast.last_masks.keys() == generic.last_masks.keys() == set(fast.bnn.mask_sites)
        for site, z in fast.last_masks.items():
            assert torch.equal(z, generic.last_masks[site]), site
            assert z.shape == fast.bnn.layers[site.removesuffix(".weight_z")].weight.shape
        a, b = _state(fast), _state(generic)
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=1e-5, msg=f"{step} {key}")
    assert fast.callbacks[0].num_updates == generic.callbacks[0].num_updates == 2
    dropped = sum(int((~z.bool() & fast.bnn.layers[s.removesuffix(".weight_z")].weight_mask)
                      .sum()) for s, z in fast.last_masks.items())
    assert dropped > 0  # the held-step path really held weights


def test_the_reported_loss_is_the_negative_elbo() -> None:
    """The fast value (NLL + analytic prior) equals Trace_ELBO on the same Z and weights."""
    t = _trainer(True)
    x, y = _batch(0, False)
    before = {k: v.detach().clone() for k, v in t.bnn.state_dict().items()}
    torch.manual_seed(7)
    value = t.train_step(x, y)
    zs = dict(t.last_masks)
    t.bnn.load_state_dict(before)
    ref = NegativeELBO(t.bnn, N)
    with torch.no_grad():
        expected = float(poutine.condition(ref, data=zs)(x, y))
    assert abs(value - expected) <= 1e-5 * abs(expected)


class _Laplace(Prior):
    """A non-Gaussian prior: the fast step does not know its gradient."""

    def distribution(self, name, shape, zero):
        return dist.Laplace(zero, zero + 0.1).expand(shape)


class _MyGaussian(GaussianPrior):
    """A subclass may change the density: treated as unknown."""


def test_fast_is_the_default_only_where_exact() -> None:
    x, y = _batch(0, False)
    t = _trainer(True)
    t.train_step(x, y)
    assert t.last_path == "fast"
    for prior in (_Laplace(), _MyGaussian(1.0)):
        t = _trainer(True, prior=prior)
        t.train_step(x, y)
        assert t.last_path == "generic", prior
    t = _trainer(True)
    t.objective = lambda a, b: NegativeELBO(t.bnn, N)(a, b)  # not a plain NegativeELBO
    t.train_step(x, y)
    assert t.last_path == "generic"
    t = _trainer(True)
    with poutine.scale(scale=2.0):  # any handler but a recorder: the generic step honours it
        t.train_step(x, y)
    assert t.last_path == "generic"
    t = _trainer(True, drop_rate=0.0)  # RigL: no Z, still the fast step
    t.train_step(x, y)
    assert t.last_path == "fast" and t.last_masks == {}
    t = _trainer(False)
    t.train_step(x, y)
    assert t.last_path == "generic"


def test_an_outer_recorder_sees_z_on_the_fast_path() -> None:
    """Z stays a Pyro site: an outer recorder (as DataParallel's) sees the drawn masks."""
    t = _trainer(True)
    with SiteRecorder(t.bnn.mask_sites) as rec:
        t.train_step(*_batch(0, False))
    assert t.last_path == "fast" and set(rec.values) == set(t.bnn.mask_sites)
    for site, z in rec.values.items():
        assert z is t.last_masks[site]


def test_conditioned_z_runs_the_generic_step_and_is_used() -> None:
    t = _trainer(True)
    x, y = _batch(0, False)
    t.train_step(x, y)
    layer = t.bnn.layers["features.0"]
    z = torch.ones_like(layer.weight)
    z.view(-1)[layer.active_index()[::2]] = 0.0  # drop every other active weight
    before = layer.weight.detach().clone()
    with poutine.condition(data={mask_site("features.0"): z}):
        t.train_step(x, y)
    assert t.last_path == "generic"
    assert t.last_masks[mask_site("features.0")] is z
    dropped = layer.weight_mask & (z == 0)
    assert torch.equal(layer.weight[dropped], before[dropped])
    assert not torch.equal(layer.weight[layer.weight_mask & (z == 1)],
                           before[layer.weight_mask & (z == 1)])


def test_cigl_estimator_trains_on_the_fast_path_and_rigl_too() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 40, generator=g), torch.randint(0, 3, (64,), generator=g)
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    for est in (CigL(build_model("mlp", (40,), 3, width=0.25), 0.8, device="cpu"),
                CigL(build_model("mlp", (40,), 3, width=0.25), 0.8, drop_rate=0.0,
                     averaging=False, device="cpu")):
        est.fit(loader, epochs=1)
        assert est.trainer.last_path == "fast"
        assert set(est.trainer.last_masks) == set(est.bnn.mask_sites)
