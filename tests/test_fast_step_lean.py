"""#17: the leaner fast step does the same arithmetic as the formulas it replaces."""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from hvgp.infer import CigL, NegativeELBO, SparseBNN, mask_site
from hvgp.infer.model import RandomMask
from hvgp.infer.objective import FastTerms, SiteRecorder
from hvgp.nn import build_model
from hvgp.sparsity import SparseTopology


def _bnn(p: float = 0.3, prior_scale: float = 0.7) -> SparseBNN:
    torch.manual_seed(0)
    net = build_model("mlp", (12,), 3, width=0.2)
    SparseTopology(net, 0.6, seed=0)
    return SparseBNN(net, drop_rate=p, prior_scale=prior_scale, data_size=50)


def _old_draw(d: RandomMask, lead: tuple[int, ...] = ()) -> torch.Tensor:
    """The draw as it was built before: every active entry copied in from ``kept``."""
    kept = torch.rand(*lead, d.index.numel()) < d.keep
    z = torch.ones(*lead, d.mask.numel(), dtype=d.dtype)
    z.index_copy_(-1, d.index, kept.to(d.dtype))
    return z.reshape(*lead, *d.mask.shape)


@pytest.mark.parametrize("lead", [(), (4,)])
def test_cpu_draw_is_the_same_z_for_the_same_seed(lead: tuple[int, ...]) -> None:
    d = _bnn().mask_distribution("3")
    torch.manual_seed(5)
    want = _old_draw(d, lead)
    torch.manual_seed(5)
    got = d.sample(torch.Size(lead))
    assert torch.equal(got, want)
    z, kept, dropped = d.last_draw
    assert z is got
    if lead:
        assert dropped is None
    else:
        assert torch.equal(dropped, d.index[~kept])
        assert dropped.numel() > 0 and (got.view(-1)[dropped] == 0).all()


def _direct_prior(bnn: SparseBNN, zs: dict[str, torch.Tensor], n: int) -> float:
    """``-sum_kept log N(U; 0, s) / n`` summed entry by entry (float64)."""
    s = bnn.prior.scale
    total = 0.0
    for name, layer in bnn.layers.items():
        kept = layer.weight_mask & zs[name].bool() if name in zs else layer.weight_mask
        w = layer.weight.detach().double()[kept]
        total += float((w * w / (2 * s * s) + math.log(s) + 0.5 * math.log(2 * math.pi)).sum())
    return total / n


def _fast_terms(bnn: SparseBNN) -> FastTerms:
    x, y = torch.randn(8, 12), torch.randint(0, 3, (8,))
    with SiteRecorder(bnn.mask_sites):
        return NegativeELBO(bnn, 50).fast_terms(x, y)


def test_prior_term_by_index_and_by_mask_equal_the_direct_sum() -> None:
    bnn = _bnn()
    terms = _fast_terms(bnn)
    zs = {name: d[0] for name, d in terms.draws.items()}
    assert all(d[4] is not None for d in terms.draws.values())  # the CPU draw's indices
    want = _direct_prior(bnn, zs, 50)
    objective = NegativeELBO(bnn, 50)
    by_index, decay = objective._prior_term(terms.draws, 50)
    no_index = {name: (*d[:4], None) for name, d in terms.draws.items()}
    by_mask, _ = objective._prior_term(no_index, 50)  # the CUDA path (no host sync)
    for got in (by_index, by_mask):
        assert float(got) == pytest.approx(want, rel=1e-5)
    assert float(terms.prior) == pytest.approx(want, rel=1e-5)
    assert decay == pytest.approx(1 / (bnn.prior.scale ** 2 * 50))
    plain, _ = objective._prior_term({}, 50)  # no Z: every active weight
    assert float(plain) == pytest.approx(_direct_prior(bnn, {}, 50), rel=1e-5)


def test_prior_gradient_in_one_call_equals_the_per_layer_update() -> None:
    bnn = _bnn()
    terms = _fast_terms(bnn)
    first = next(iter(terms.draws))
    terms.draws.pop(first)  # one layer without a Z takes the plain branch
    for layer in bnn.layers.values():
        layer.weight.grad = torch.randn_like(layer.weight)
    want = {}
    for name, layer in bnn.layers.items():
        g, w = layer.weight.grad.clone(), layer.weight.detach()
        want[name] = (g.add_(w, alpha=terms.decay) if name not in terms.draws
                      else g.addcmul_(w, terms.draws[name][0], value=terms.decay))
    terms.add_prior_gradient(bnn.layers)
    for name, layer in bnn.layers.items():
        assert torch.equal(layer.weight.grad, want[name]), name


def test_mask_distribution_is_rebuilt_when_the_mask_or_rate_changes() -> None:
    bnn = _bnn()
    d = bnn.mask_distribution("3")
    assert bnn.mask_distribution("3") is d
    mask = bnn.layers["3"].weight_mask
    mask.view(-1)[0] = ~mask.view(-1)[0]  # in place: the version counter moves
    fresh = bnn.mask_distribution("3")
    assert fresh is not d and torch.equal(fresh.index, mask.view(-1).nonzero().squeeze(1))
    bnn.drop_rates["3"] = 0.5
    assert bnn.mask_distribution("3").keep == 0.5
    with pyro.plate("samples", 3, dim=-1):  # an expanded copy, never the cached one
        z = pyro.sample(mask_site("3"), bnn.mask_distribution("3"))
    assert z.shape == (3, *mask.shape) and not bnn.mask_distribution("3").batch_shape


def test_a_module_left_in_eval_mode_trains_again_on_the_next_step() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(32, 40), torch.randint(0, 10, (32,))
    est = CigL(build_model("cnn1d", (40,), 10, width=0.25), drop_rate=0.1, averaging=False,
               schedule="constant", device="cpu")
    est.fit(DataLoader(TensorDataset(x, y), batch_size=16), epochs=1)
    bn = est.trainer.bnn.net.features[1]
    bn.eval()
    before = bn.running_mean.clone()
    est.trainer.train_step(x[:16], y[:16])
    assert bn.training and not torch.equal(bn.running_mean, before)


def test_a_cached_distribution_lets_its_last_z_go_before_drawing_the_next(monkeypatch) -> None:
    """One Z per layer alive at a time, as when each step built a new distribution."""
    import weakref

    d = _bnn().mask_distribution("3")
    ref = weakref.ref(d.sample())  # only the distribution's last_draw holds it now
    alive_at_draw = []
    real_rand = torch.rand

    def rand(*args, **kwargs):
        alive_at_draw.append(ref() is not None)
        return real_rand(*args, **kwargs)

    monkeypatch.setattr(torch, "rand", rand)
    d.sample()
    assert alive_at_draw == [False]
