"""The topology multiplies by a bool mask viewed as uint8: the same bits as the bool product."""

from __future__ import annotations

import pytest
import torch
from _special_values import with_special_values
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from hvgp.sparsity import SparseTopology
from hvgp.sparsity.topology import mask_multiplier

SPECIAL = [float("nan"), float("inf"), -float("inf"), -0.0, 0.0, -1.5, 3e-39, -3e-39]


def _bits(t: torch.Tensor) -> torch.Tensor:
    """The raw bits (so -0.0 differs from 0.0 and NaN equals itself)."""
    return t.contiguous().view(torch.int64 if t.dtype == torch.float64 else torch.int32)


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 9), cols=st.integers(1, 9), seed=st.integers(0, 2**31 - 1),
       transpose=st.booleans(), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_uint8_view_product_equals_the_bool_product_bit_for_bit(
        rows: int, cols: int, seed: int, transpose: bool, dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(seed)
    t = with_special_values(torch.randn(rows, cols, generator=g, dtype=dtype), SPECIAL, 0.3, g)
    mask = torch.rand(rows, cols, generator=g) < 0.5
    if transpose:  # strided views of both
        t, mask = t.t(), mask.t()
    want = t.clone().mul_(mask)
    got = t.clone().mul_(mask_multiplier(mask))
    assert torch.equal(_bits(got), _bits(want))


def test_a_non_bool_mask_is_returned_as_it_is() -> None:
    m = torch.tensor([0.0, 1.0, 0.5])
    assert mask_multiplier(m) is m
    assert mask_multiplier(torch.tensor([True, False])).dtype == torch.uint8


@pytest.mark.parametrize("part", ["apply_", "mask_grads_"])
def test_topology_masking_gives_the_bool_products_bits(part: str) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(7, 16), nn.ReLU(), nn.Conv1d(1, 3, 3), nn.Flatten())
    topo = SparseTopology(net, 0.7, seed=1)
    for site in topo.sites.values():
        p = site.param
        with torch.no_grad():
            p.copy_(torch.randn_like(p))
            p.view(-1)[:4] = torch.tensor([-0.0, float("inf"), -2.0, float("nan")])
        p.grad = torch.randn_like(p)
        p.grad.view(-1)[:3] = torch.tensor([-1.0, float("-inf"), -0.0])
    target = {n: (s.param if part == "apply_" else s.param.grad) for n, s in topo.sites.items()}
    want = {n: t.detach().clone().mul_(topo.sites[n].mask) for n, t in target.items()}
    getattr(topo, part)()
    for n, t in target.items():
        assert torch.equal(_bits(t.detach()), _bits(want[n])), n
