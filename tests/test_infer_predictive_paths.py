"""Monte Carlo prediction (#17): looped and vectorised paths, chunking, the automatic choice,
Z drawn on the active weights only and still a Pyro site."""

from __future__ import annotations

import pytest
import torch
from pyro import poutine
from torch.func import functional_call

from hvgp.infer import PointMassGuide, SparseBNN, mask_site, predictive_samples
from hvgp.infer import predictive as P
from hvgp.nn import build_model
from hvgp.sparsity import SparseTopology

KEEP = 0.7


def _bnn(arch: str = "mlp", likelihood: str = "categorical", outputs: int = 3,
         **kw) -> SparseBNN:
    torch.manual_seed(0)
    net = build_model(arch, (40,), outputs, width=0.25)
    SparseTopology(net, 0.8, seed=1)
    return SparseBNN(net, likelihood, 1 - KEEP, data_size=50, **kw).eval()


def _reference(bnn: SparseBNN, x: torch.Tensor, zs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The definition: per sample, the net with weights U * where(M, Z / (1 - p), 1)."""
    outs = []
    s = next(iter(zs.values())).shape[0]
    for i in range(s):
        used = {f"{n}.weight": bnn.layers[n].weight * torch.where(
            bnn.layers[n].weight_mask, z[i] / KEEP, torch.ones_like(z[i])) for n, z in zs.items()}
        outs.append(functional_call(bnn.net, used, (x,), strict=False))
    out = torch.stack(outs)
    return out if bnn.likelihood.is_classification else out.squeeze(-1)


def _masks(bnn: SparseBNN, s: int, seed: int = 3) -> dict[str, torch.Tensor]:
    """Explicit Z draws, 0/1 on *every* weight (inactive ones included)."""
    g = torch.Generator().manual_seed(seed)
    return {n: torch.bernoulli(torch.full((s, *layer.weight.shape), KEEP), generator=g)
            for n, layer in bnn.layers.items()}


@pytest.mark.parametrize("arch", ["mlp", "cnn1d"])
@pytest.mark.parametrize("vectorize", [True, False])
@pytest.mark.parametrize("chunk", [None, 1, 3])
def test_both_paths_compute_the_definition_for_given_masks(arch: str, vectorize: bool,
                                                          chunk: int | None) -> None:
    bnn = _bnn(arch)
    x = torch.randn(6, 40)
    zs = _masks(bnn, 5)
    with torch.no_grad():
        got = P._evaluate(bnn, x, zs, vectorize, chunk)
    ref = _reference(bnn, x, zs)
    assert got.shape == (5, 6, 3)
    torch.testing.assert_close(got, ref, atol=1e-6, rtol=1e-5)
    assert float((got[0] - got[1]).abs().max()) > 1e-4  # the masks really differ


def test_nonzero_inactive_weights_keep_factor_one() -> None:
    """Factor 1 off the mask M even when a weight there is not 0 (the general formula)."""
    bnn = _bnn()
    layer = bnn.net[1]
    with torch.no_grad():
        layer.weight[~layer.weight_mask] = 0.5
    x, zs = torch.randn(4, 40), _masks(bnn, 3)
    for vectorize in (True, False):
        with torch.no_grad():
            got = P._evaluate(bnn, x, zs, vectorize, None)
        torch.testing.assert_close(got, _reference(bnn, x, zs), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("arch", ["mlp", "cnn1d"])
def test_same_seed_gives_the_same_samples_on_every_path_and_chunking(arch: str) -> None:
    bnn = _bnn(arch)
    x = torch.randn(7, 40)
    outs = {}
    for key in [(True, None), (True, 2), (False, None), (None, None), (True, 5)]:
        torch.manual_seed(11)
        outs[key] = predictive_samples(bnn, x, 9, vectorize=key[0], chunk=key[1]).probs
    base = outs[(False, None)]
    assert base.shape == (9, 7, 3) and float(base.std(0).max()) > 1e-4
    for key, probs in outs.items():
        torch.testing.assert_close(probs, base, atol=1e-6, rtol=1e-5, msg=str(key))


def test_regression_samples_agree_on_both_paths() -> None:
    bnn = _bnn("mlp", "normal", 1, noise=0.3)
    x = torch.randn(5, 40)
    torch.manual_seed(2)
    a = predictive_samples(bnn, x, 4, vectorize=True)
    torch.manual_seed(2)
    b = predictive_samples(bnn, x, 4, vectorize=False)
    assert a.loc.shape == (4, 5) and torch.allclose(a.scale, torch.full((4, 5), 0.3))
    torch.testing.assert_close(a.loc, b.loc, atol=1e-6, rtol=1e-5)


def test_z_is_drawn_on_active_weights_only_and_is_a_pyro_site() -> None:
    bnn = _bnn()
    torch.manual_seed(5)
    tr = poutine.trace(bnn.sample_masks).get_trace(6)
    torch.manual_seed(5)
    for name, layer in bnn.layers.items():
        z = tr.nodes[mask_site(name)]["value"]
        m = layer.weight_mask
        assert z.shape == (6, *m.shape)
        assert torch.all(z[:, ~m] == 1)  # inactive: irrelevant, set to 1, nothing drawn
        # exactly the uniforms of the active entries, in order: nothing drawn elsewhere
        kept = torch.rand(6, int(m.sum())) < KEEP
        assert torch.equal(z.reshape(6, -1)[:, layer.active_index()], kept.float())
    fixed = torch.zeros(6, *bnn.net[1].weight.shape)
    tr_c = poutine.trace(poutine.condition(bnn.sample_masks, data={mask_site("1"): fixed}))
    assert torch.equal(tr_c.get_trace(6).nodes[mask_site("1")]["value"], fixed)
    assert mask_site("1") not in poutine.trace(
        poutine.block(bnn.sample_masks, hide=[mask_site("1")])).get_trace(6).nodes


def test_active_index_follows_in_place_mask_changes() -> None:
    bnn = _bnn()
    layer = bnn.net[1]
    first = layer.active_index()
    assert layer.active_index() is first  # cached
    with torch.no_grad():
        layer.weight_mask[0] = ~layer.weight_mask[0]
    assert torch.equal(layer.active_index(), layer.weight_mask.reshape(-1).nonzero().squeeze(1))


def test_the_choice_is_made_by_architecture_and_size(monkeypatch) -> None:
    mlp, cnn = _bnn("mlp"), _bnn("cnn1d")
    small, large = torch.randn(2, 40), torch.randn(256, 40)
    assert not P.choose_vectorize(mlp, small, 32)  # MLP on the CPU: the loop
    assert P.choose_vectorize(cnn, small, 4)  # small stacked convolutions: one pass
    assert not P.choose_vectorize(cnn, large, 32)  # large: grouped convolutions lose
    seen = []
    real = P._evaluate

    def spy(bnn, x, zs, vectorize, chunk):
        seen.append(vectorize)
        return real(bnn, x, zs, vectorize, chunk)

    monkeypatch.setattr(P, "_evaluate", spy)
    predictive_samples(cnn, small, 4)
    predictive_samples(cnn, large, 32)
    predictive_samples(mlp, small, 4)
    assert seen == [True, False, False]


def test_vectorised_pass_is_chunked_to_the_memory_budget(monkeypatch) -> None:
    bnn = _bnn("mlp")
    x = torch.randn(8, 40)
    per_sample = P._activation_bytes(bnn, x) * 8
    monkeypatch.setattr(P, "CPU_ACTIVATION_BUDGET_BYTES", 3 * per_sample)
    passes = []
    hook = bnn.net[1].register_forward_hook(lambda m, i, o: passes.append(o.shape[0]))
    torch.manual_seed(0)
    got = predictive_samples(bnn, x, 10, vectorize=True).probs
    hook.remove()
    passes = [p for p in passes if p != 1]  # the one-example activation probe
    assert passes == [24, 24, 24, 8]  # 3 + 3 + 3 + 1 samples of 8 points
    torch.manual_seed(0)
    torch.testing.assert_close(got, predictive_samples(bnn, x, 10, vectorize=False).probs)


def test_masks_are_drawn_in_chunks_bounded_by_their_memory(monkeypatch) -> None:
    bnn = _bnn("mlp")
    per_sample = sum(2 * layer.weight.numel() * 4 for layer in bnn.layers.values())
    monkeypatch.setattr(P, "MASK_BUDGET_BYTES", 4 * per_sample)
    sizes = []
    real = bnn.sample_masks
    monkeypatch.setattr(bnn, "sample_masks", lambda s: sizes.append(s) or real(s))
    assert predictive_samples(bnn, torch.randn(3, 40), 10).probs.shape == (10, 3, 3)
    assert sizes == [4, 4, 2]


def test_another_guide_runs_the_full_program() -> None:
    class NoisyGuide(PointMassGuide):
        """Not the point mass: prediction must not assume the weights are the parameters."""

    bnn = _bnn(guide=NoisyGuide)
    calls = []
    real = P._run
    try:
        P._run = lambda b, x: calls.append(1) or real(b, x)
        for vectorize in (True, False):
            assert predictive_samples(bnn, torch.randn(4, 40), 3,
                                      vectorize=vectorize).probs.shape == (3, 4, 3)
    finally:
        P._run = real
    assert len(calls) == 1 + 3


def test_no_random_mask_gives_one_pass_per_sample() -> None:
    """Without Z a deterministic net gives S equal samples, a random one (MC dropout) S draws."""
    torch.manual_seed(0)
    bnn = SparseBNN(build_model("mlp", (40,), 3, width=0.25), drop_rate=0.0).eval()
    x = torch.randn(4, 40)
    ps = predictive_samples(bnn, x, 3)
    assert ps.probs.shape == (3, 4, 3)
    for i in range(3):
        torch.testing.assert_close(ps.probs[i], bnn.net(x).softmax(-1))
    class AlwaysDropout(torch.nn.Module):
        def forward(self, v: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.dropout(v, 0.5, training=True)

    noisy = SparseBNN(torch.nn.Sequential(AlwaysDropout(), bnn.net), drop_rate=0.0)
    assert float(predictive_samples(noisy, x, 3).probs.std(0).max()) > 0
