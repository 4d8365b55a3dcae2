"""RigL / SET / Static: count preservation, drop/grow rules, optimizer resets, schedule."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from hvgp.sparsity import (
    SET,
    DropFractionSchedule,
    RigL,
    SparseTopology,
    Static,
    TopologyUpdater,
    make_updater,
)


def drift(topo: SparseTopology, gen: torch.Generator) -> None:
    """Make every weight non-zero and give every weight a random gradient.

    Inactive weights are non-zero on purpose (as weight decay/momentum could make them), so a
    'grown weight is zero' check can fail if the updater forgets to zero it.
    """
    with torch.no_grad():
        for p in topo.params.values():
            p.copy_(torch.randn(p.shape, generator=gen) + 3.0 * torch.sign(torch.randn(p.shape)))
            p.grad = torch.randn(p.shape, generator=gen)


layer_st = st.one_of(
    st.tuples(st.just("linear"), st.integers(1, 24), st.integers(1, 24)),
    st.tuples(st.just("conv"), st.integers(1, 5), st.integers(1, 5)),
)


@settings(max_examples=60, deadline=None)
@given(
    layers=st.lists(layer_st, min_size=1, max_size=4),
    sparsity=st.floats(0.0, 0.999, exclude_max=True),
    kind=st.sampled_from(["rigl", "set"]),
    steps=st.lists(st.integers(0, 800), min_size=1, max_size=4),
    alpha=st.floats(0.0, 1.0),
    seed=st.integers(0, 1000),
)
def test_updates_keep_counts_zero_masked_weights_and_reset_born_weights_and_momentum(
    layers: list[tuple[str, int, int]],
    sparsity: float,
    kind: str,
    steps: list[int],
    alpha: float,
    seed: int,
) -> None:
    net = nn.ModuleList(
        nn.Linear(i, o) if k == "linear" else nn.Conv2d(i, o, 3) for k, i, o in layers
    )
    topo = SparseTopology(net, sparsity, seed=seed)
    counts = topo.nnz()
    updater = make_updater(kind, topo, total_steps=1000, delta_t=1, alpha=alpha, seed=seed)
    opt = torch.optim.SGD(topo.params.values(), lr=0.1, momentum=0.9)
    gen = torch.Generator().manual_seed(seed)
    for step in sorted(steps):
        drift(topo, gen)
        for p in topo.params.values():  # non-zero momentum everywhere
            opt.state[p]["momentum_buffer"] = torch.randn(p.shape, generator=gen) + 5.0
        before = {n: m.clone() for n, m in topo.masks.items()}
        stats = updater.update(step, opt)
        assert topo.nnz() == counts
        for n, p in topo.params.items():
            mask = topo.masks[n]
            born = mask & ~before[n]
            assert torch.all(p[~mask] == 0), "masked weight non-zero after update"
            assert torch.all(p[born] == 0), "grown weight not zero at birth"
            assert torch.all(opt.state[p]["momentum_buffer"][born] == 0), "momentum not reset"
            assert stats["grown"][n] == int(born.sum()) == int((before[n] & ~mask).sum())
            nnz = counts[n]
            want_k = math.ceil(round(updater.drop_fraction(step) * nnz, 9))
            assert stats["k"][n] == (min(want_k, nnz) if 0 < nnz < p.numel() else 0)
            assert stats["grown"][n] <= stats["k"][n]


@settings(max_examples=100, deadline=None)
@given(alpha=st.floats(0.0, 1.0), t_end=st.integers(1, 10_000), frac=st.floats(0.0, 2.0))
def test_drop_fraction_follows_the_cosine_formula(alpha: float, t_end: int, frac: float) -> None:
    step = int(frac * t_end)
    want = alpha / 2 * (1 + math.cos(math.pi * step / t_end)) if step <= t_end else 0.0
    assert DropFractionSchedule(alpha, t_end)(step) == pytest.approx(want, abs=1e-12)


def test_updater_schedule_uses_t_end_fraction_of_total_steps() -> None:
    topo = SparseTopology(nn.Linear(10, 10), 0.5)
    up = RigL(topo, total_steps=1000, delta_t=100, t_end=0.75, alpha=0.3)
    assert [s for s in range(0, 1001) if up.should_update(s)] == [100, 200, 300, 400, 500, 600, 700]
    assert up.drop_fraction(0) == pytest.approx(0.3)
    assert up.drop_fraction(375) == pytest.approx(0.15)
    assert up.drop_fraction(750) == 0.0 and up.drop_fraction(900) == 0.0


def test_rigl_drops_smallest_magnitudes_and_grows_largest_gradients() -> None:
    lin = nn.Linear(5, 2, bias=False)  # 10 weights
    topo = SparseTopology(lin, 0.5, method="uniform")
    active = torch.tensor([1, 1, 1, 1, 1, 0, 0, 0, 0, 0], dtype=torch.bool)
    topo.masks["weight"].copy_(active.view(2, 5))
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([5.0, -0.1, 4.0, 0.2, -3.0, 9, 9, 9, 9, 9]).view(2, 5))
    lin.weight.grad = torch.tensor([9.0, 0.0, 9, 0.0, 9, 0.1, -7.0, 0.3, 6.0, 0.2]).view(2, 5)
    up = RigL(topo, total_steps=100, alpha=0.4)  # k = ceil(0.4 * 5) = 2 at step 0
    stats = up.update(0)
    # drop |w| = 0.1, 0.2 (positions 1, 3); grow |g| = 7, 6 (positions 6, 8)
    assert stats["k"]["weight"] == 2 and stats["grown"]["weight"] == 2
    want = torch.tensor([1, 0, 1, 0, 1, 0, 1, 0, 1, 0], dtype=torch.bool)
    assert torch.equal(topo.masks["weight"].view(-1), want)
    w = lin.weight.detach().view(-1)
    assert w[6] == 0 and w[8] == 0 and w[0] == 5.0 and w[1] == 0 and w[3] == 0


def test_rigl_may_regrow_a_just_dropped_weight_which_keeps_its_value() -> None:
    # As google-research/rigl: growth is among weights inactive *after* the drop.
    lin = nn.Linear(4, 1, bias=False)
    topo = SparseTopology(lin, 0.5, method="uniform")
    topo.masks["weight"].copy_(torch.tensor([[True, True, False, False]]))
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[2.0, 0.5, 0.0, 0.0]]))
    lin.weight.grad = torch.tensor([[0.0, 9.0, 1.0, 0.0]])  # dropped weight has largest grad
    stats = RigL(topo, total_steps=100, alpha=0.5).update(0)  # k = 1: drop pos 1, regrow it
    assert stats["k"]["weight"] == 1 and stats["grown"]["weight"] == 0
    assert torch.equal(lin.weight.detach(), torch.tensor([[2.0, 0.5, 0.0, 0.0]]))


def test_rigl_without_gradient_is_an_error_naming_the_parameter() -> None:
    topo = SparseTopology(nn.Sequential(nn.Linear(4, 4)), 0.5)
    with pytest.raises(RuntimeError, match=r"'0\.weight'.*grad is None"):
        RigL(topo, total_steps=10).update(0)


def test_adam_moments_of_grown_weights_are_reset() -> None:
    net = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 4))
    topo = SparseTopology(net, 0.8)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    x, y = torch.randn(16, 20), torch.randn(16, 4)
    nn.functional.mse_loss(net(x), y).backward()
    topo.mask_grads_()
    opt.step()
    for p in topo.params.values():  # make moments non-zero everywhere
        opt.state[p]["exp_avg"].add_(1.0)
        opt.state[p]["exp_avg_sq"].add_(1.0)
    before = {n: m.clone() for n, m in topo.masks.items()}
    net.zero_grad()
    nn.functional.mse_loss(net(x), y).backward()
    RigL(topo, total_steps=1000).update(100, opt)
    for n, p in topo.params.items():
        born = topo.masks[n] & ~before[n]
        assert born.any()
        assert torch.all(opt.state[p]["exp_avg"][born] == 0)
        assert torch.all(opt.state[p]["exp_avg_sq"][born] == 0)
        kept = topo.masks[n] & before[n]
        assert torch.all(opt.state[p]["exp_avg_sq"][kept] > 0)


def test_ties_are_broken_deterministically_by_seed() -> None:
    def run(seed: int) -> torch.Tensor:
        lin = nn.Linear(40, 40, bias=False)
        topo = SparseTopology(lin, 0.9, seed=0)
        with torch.no_grad():
            lin.weight.fill_(1.0)
        topo.apply_()
        lin.weight.grad = torch.ones_like(lin.weight)  # every score tied
        RigL(topo, total_steps=10, seed=seed).update(1)
        return topo.masks["weight"].clone()

    assert torch.equal(run(5), run(5))
    assert not torch.equal(run(5), run(6))


def test_set_grows_at_random_and_rigl_follows_the_gradient() -> None:
    def run(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
        lin = nn.Linear(30, 30, bias=False)
        topo = SparseTopology(lin, 0.9, seed=0)
        grad = torch.zeros(30, 30)
        grad[:3] = 1.0  # only the first 3 rows have gradient
        lin.weight.grad = grad
        before = topo.masks["weight"].clone()
        make_updater(kind, topo, total_steps=10).update(0)
        return topo.masks["weight"] & ~before, grad

    born, grad = run("rigl")
    assert born.any() and torch.all(grad[born] == 1.0)
    born, grad = run("set")
    assert born.any() and not torch.all(grad[born] == 1.0)


def test_static_never_changes_the_mask() -> None:
    topo = SparseTopology(nn.Linear(10, 10), 0.5)
    before = topo.masks["weight"].clone()
    up = make_updater("static", topo, total_steps=100, delta_t=1)
    assert not any(up.should_update(s) for s in range(100))
    assert up.update(10)["grown"] == {"weight": 0}
    assert torch.equal(before, topo.masks["weight"])


def test_make_updater_rejects_unknown_names_listing_valid_ones() -> None:
    topo = SparseTopology(nn.Linear(4, 4), 0.5)
    with pytest.raises(ValueError, match="unknown topology updater 'snip'.*rigl, set, static"):
        make_updater("snip", topo, total_steps=10)
    assert isinstance(make_updater("RigL", topo, total_steps=10), RigL)
    assert isinstance(make_updater("set", topo, total_steps=10), SET)
    assert isinstance(make_updater("static", topo, total_steps=10), Static)


@pytest.mark.parametrize(
    "kw, match",
    [({"total_steps": 0}, "total_steps"), ({"total_steps": 10, "delta_t": 0}, "delta_t"),
     ({"total_steps": 10, "t_end": 1.5}, "t_end"), ({"total_steps": 10, "alpha": 2.0}, "alpha")],
)
def test_bad_updater_configuration_is_a_value_error(kw: dict, match: str) -> None:
    topo = SparseTopology(nn.Linear(4, 4), 0.5)
    with pytest.raises(ValueError, match=match):
        RigL(topo, **kw)


def test_resume_from_state_dict_reproduces_the_next_update() -> None:
    def setup() -> tuple[nn.Linear, SparseTopology, TopologyUpdater]:
        lin = nn.Linear(30, 30, bias=False)
        topo = SparseTopology(lin, 0.9, seed=0)
        lin.weight.grad = torch.zeros(30, 30)  # all tied: outcome depends only on the RNG
        return lin, topo, SET(topo, total_steps=1000, delta_t=10, seed=1)

    lin, topo, up = setup()
    up.update(10)
    mask_state, up_state = lin.state_dict(), up.state_dict()
    up.update(20)
    want = topo.masks["weight"].clone()
    lin2, topo2, up2 = setup()
    lin2.load_state_dict(mask_state)
    up2.load_state_dict(up_state)
    up2.update(20)
    assert torch.equal(topo2.masks["weight"], want)


def test_sparse_training_loop_keeps_invariants_and_learns() -> None:
    torch.manual_seed(0)
    x = torch.randn(256, 10)
    y = (x[:, :3].sum(1) > 0).long()
    net = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 2))
    topo = SparseTopology(net, 0.8, method="erk")
    counts = topo.nnz()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    up = RigL(topo, total_steps=200, delta_t=10)
    losses = []
    for step in range(200):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        if up.should_update(step):
            up.update(step, opt)
        topo.mask_grads_()
        opt.step()
        topo.apply_()
        losses.append(loss.item())
        assert all(torch.all(p[~topo.masks[n]] == 0) for n, p in topo.params.items())
    assert topo.nnz() == counts
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_update_matches_cpu_update() -> None:
    def run(device: str) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(3, 16, 3), nn.Conv2d(16, 16, 3)).to(device)
        topo = SparseTopology(net, 0.9, seed=0)
        gen = torch.Generator().manual_seed(1)
        for p in topo.params.values():
            p.grad = torch.randn(p.shape, generator=gen).to(device)
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        RigL(topo, total_steps=100).update(10, opt)
        assert all(m.device.type == device for m in topo.masks.values())
        return {n: m.cpu() for n, m in topo.masks.items()}

    cpu, gpu = run("cpu"), run("cuda")
    assert all(torch.equal(cpu[n], gpu[n]) for n in cpu)
