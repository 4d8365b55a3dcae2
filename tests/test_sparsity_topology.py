"""Registry of maskable parameters, mask buffers, summary and state handling."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from hvgp.sparsity import SparseTopology, maskable_parameters


def small_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv1d(4, 4, 2),
        nn.Flatten(), nn.Linear(16, 12), nn.LayerNorm(12), nn.Linear(12, 5),
    )


def test_default_registry_picks_linear_and_conv_weights_only() -> None:
    names = list(maskable_parameters(small_net()))
    assert names == ["0.weight", "3.weight", "5.weight", "7.weight"]


def test_types_include_and_exclude_select_by_type_and_name() -> None:
    net = small_net()
    assert list(maskable_parameters(net, types=(nn.Linear,))) == ["5.weight", "7.weight"]
    assert list(maskable_parameters(net, types=(), include=r"[03]\.weight")) == [
        "0.weight", "3.weight"
    ]
    assert list(maskable_parameters(net, exclude=["0.weight", r"7\..*"])) == [
        "3.weight", "5.weight"
    ]


def test_biases_and_norm_parameters_are_never_masked_even_if_included() -> None:
    net = small_net()
    picked = maskable_parameters(net, types=(), include=[r".*"])
    assert all(not n.endswith("bias") for n in picked)
    assert "1.weight" not in picked and "6.weight" not in picked  # BatchNorm, LayerNorm


def test_model_without_maskable_layers_is_a_value_error() -> None:
    net = nn.Sequential(nn.BatchNorm1d(3), nn.ReLU())
    with pytest.raises(ValueError, match="no maskable parameters"):
        maskable_parameters(net)
    with pytest.raises(ValueError, match="no maskable parameters"):
        SparseTopology(net, 0.5)


def test_invalid_regex_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not a valid regex"):
        maskable_parameters(small_net(), include="[")


def test_masks_are_bool_buffers_in_state_dict_and_weights_are_zeroed() -> None:
    net = small_net()
    topo = SparseTopology(net, 0.7, seed=1)
    sd = net.state_dict()
    for name, mask in topo.masks.items():
        key = name[: -len("weight")] + "weight_mask"
        assert mask.dtype == torch.bool and sd[key].data_ptr() == mask.data_ptr()
        assert torch.all(topo.params[name][~mask] == 0)
        assert int(mask.sum()) == topo.counts[name]


def test_existing_mask_buffer_is_filled_in_place() -> None:
    class MaskedLinear(nn.Linear):
        def __init__(self, i: int, o: int) -> None:
            super().__init__(i, o)
            self.register_buffer("weight_mask", torch.ones(o, i, dtype=torch.bool))

    net = nn.Sequential(MaskedLinear(10, 20), MaskedLinear(20, 3))
    buf = net[0].weight_mask
    ptr = buf.data_ptr()
    topo = SparseTopology(net, 0.6)
    assert topo.masks["0.weight"] is buf and buf.data_ptr() == ptr
    assert int(buf.sum()) == topo.counts["0.weight"] < buf.numel()
    assert [k for k in net.state_dict() if k.endswith("mask")] == ["0.weight_mask", "1.weight_mask"]


def test_existing_mask_buffer_of_wrong_dtype_or_shape_is_rejected() -> None:
    lin = nn.Linear(4, 3)
    lin.register_buffer("weight_mask", torch.ones(3, 4))
    with pytest.raises(TypeError, match="torch.bool"):
        SparseTopology(lin, 0.5)
    lin.weight_mask = torch.ones(4, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="shape"):
        SparseTopology(lin, 0.5)


def test_pyro_modules_are_masked_including_constrained_pyro_params() -> None:
    from pyro.nn import PyroModule, PyroParam

    net = PyroModule[nn.Sequential](PyroModule[nn.Linear](6, 8), PyroModule[nn.Linear](8, 2))
    net[1].weight = PyroParam(torch.randn(2, 8))
    topo = SparseTopology(net, 0.5, method="uniform")
    assert list(topo.masks) == ["0.weight", "1.weight_unconstrained"]
    assert net[1].weight_mask is topo.masks["1.weight_unconstrained"]
    assert abs(sum(topo.nnz().values()) - 0.5 * 64) <= 1


def test_dense_first_last_keeps_those_layers_dense_at_exact_global_density() -> None:
    net = nn.Sequential(nn.Linear(4, 30), nn.Linear(30, 30), nn.Linear(30, 30), nn.Linear(30, 3))
    topo = SparseTopology(net, 0.5, method="uniform", dense_first_last=True)
    nnz = topo.nnz()
    assert nnz["0.weight"] == 120 and nnz["3.weight"] == 90
    assert sum(nnz.values()) == round(0.5 * (120 + 900 + 900 + 90))
    with pytest.raises(ValueError, match="dense_first_last"):
        SparseTopology(net, 0.5, dense_first_last="middle")


def test_same_seed_same_masks_different_seed_different_masks() -> None:
    a = SparseTopology(small_net(), 0.8, seed=3).masks
    b = SparseTopology(small_net(), 0.8, seed=3).masks
    c = SparseTopology(small_net(), 0.8, seed=4).masks
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert any(not torch.equal(a[n], c[n]) for n in a)


def test_masks_round_trip_through_module_and_topology_state_dicts() -> None:
    net = small_net()
    topo = SparseTopology(net, 0.8, seed=0)
    other = small_net()
    other_topo = SparseTopology(other, 0.8, seed=99)
    other.load_state_dict(net.state_dict())
    assert all(torch.equal(topo.masks[n], other_topo.masks[n]) for n in topo.masks)
    third_topo = SparseTopology(small_net(), 0.8, seed=7)
    third_topo.load_state_dict(topo.state_dict())
    assert all(torch.equal(topo.masks[n], third_topo.masks[n]) for n in topo.masks)
    with pytest.raises(ValueError, match="missing"):
        third_topo.load_state_dict({})


def test_apply_and_mask_grads_zero_masked_entries_in_place() -> None:
    net = small_net()
    topo = SparseTopology(net, 0.9)
    for p in topo.params.values():
        ptr = p.data_ptr()
        with torch.no_grad():
            p.fill_(1.0)
        p.grad = torch.ones_like(p)
        topo.apply_()
        topo.mask_grads_()
        assert p.data_ptr() == ptr
    for n, p in topo.params.items():
        assert torch.equal(p.detach() != 0, topo.masks[n])
        assert torch.equal(p.grad != 0, topo.masks[n])


def test_summary_lists_every_layer_and_the_global_sparsity() -> None:
    topo = SparseTopology(small_net(), 0.75)
    text = topo.summary()
    for name, mask in topo.masks.items():
        line = next(ln for ln in text.splitlines() if ln.startswith(name))
        assert str(tuple(mask.shape)) in line and str(int(mask.sum())) in line
    assert f"global sparsity: {topo.sparsity():.4f}" in text
    assert topo.sparsity() == pytest.approx(0.75, abs=1 / topo.numel())


layer_st = st.one_of(
    st.tuples(st.just("linear"), st.integers(1, 24), st.integers(1, 24)),
    st.tuples(st.just("conv"), st.integers(1, 6), st.integers(1, 6)),
)


def build(layers: list[tuple[str, int, int]]) -> nn.ModuleList:
    return nn.ModuleList(
        nn.Linear(i, o) if kind == "linear" else nn.Conv2d(i, o, 3) for kind, i, o in layers
    )


@settings(max_examples=60, deadline=None)
@given(
    layers=st.lists(layer_st, min_size=1, max_size=5),
    sparsity=st.floats(0.0, 0.999, exclude_max=True),
    method=st.sampled_from(["erk", "er", "uniform"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_topology_global_count_is_exact_within_one_weight(
    layers: list[tuple[str, int, int]], sparsity: float, method: str, seed: int
) -> None:
    net = build(layers)
    topo = SparseTopology(net, sparsity, method=method, seed=seed)
    total = topo.numel()
    assert abs(sum(topo.nnz().values()) - total * (1 - sparsity)) <= 1.0
    assert topo.nnz() == topo.counts
    assert math.isclose(topo.density() + topo.sparsity(), 1.0)
