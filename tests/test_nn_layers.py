"""Masked layers and architectures: mask buffers, stacked-sample forward, build_model."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.func import functional_call

from hvgp.nn import (
    MaskedConv1d,
    MaskedConv2d,
    MaskedLinear,
    build_model,
    masked_layers,
    to_masked,
)
from hvgp.sparsity import SparseTopology


def _layer_and_input(kind: str, n: int) -> tuple[nn.Module, torch.Tensor]:
    if kind == "linear":
        return MaskedLinear(5, 3), torch.randn(n, 5)
    if kind == "conv1d":
        return MaskedConv1d(2, 3, 3, padding=1, stride=2), torch.randn(n, 2, 9)
    return MaskedConv2d(2, 3, 3, padding=1), torch.randn(n, 2, 5, 5)


@settings(max_examples=15, deadline=None)
@given(kind=st.sampled_from(["linear", "conv1d", "conv2d"]), s=st.integers(1, 4),
       n=st.integers(1, 3))
def test_stacked_weight_samples_equal_one_network_per_sample(kind: str, s: int, n: int) -> None:
    torch.manual_seed(s * 10 + n)
    layer, x = _layer_and_input(kind, n)
    weights = torch.randn(s, 1, *layer.weight.shape)
    stacked = functional_call(layer, {"weight": weights}, (x.repeat(s, *[1] * (x.dim() - 1)),))
    for i in range(s):
        single = functional_call(layer, {"weight": weights[i, 0]}, (x,))
        torch.testing.assert_close(stacked[i * n:(i + 1) * n], single, atol=1e-5, rtol=1e-5)


def test_layers_carry_bool_mask_buffer_reused_by_topology() -> None:
    net = build_model("mlp", (8,), 3, width=0.1)
    buffers = {n: layer.weight_mask for n, layer in masked_layers(net).items()}
    assert all(b.dtype == torch.bool and bool(b.all()) for b in buffers.values())
    topo = SparseTopology(net, 0.5)
    for name, layer in masked_layers(net).items():
        assert layer.weight_mask is buffers[name]  # filled in place, not replaced
        assert topo.masks[f"{name}.weight"] is buffers[name]
    assert abs(topo.sparsity() - 0.5) < 1e-3


@pytest.mark.parametrize(
    "arch, shape", [("mlp", (40,)), ("cnn1d", (40,)), ("cnn1d", (2, 40)),
                    ("wrn-22-2", (3, 16, 16)), ("resnet18", (3, 16, 16))],
)
def test_build_model_outputs_one_logit_per_class(arch: str, shape: tuple[int, ...]) -> None:
    net = build_model(arch, shape, 7, width=0.25)
    out = net.eval()(torch.randn(2, *shape))
    assert out.shape == (2, 7)
    assert masked_layers(net)
    bn = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert not any(hasattr(m, "weight_mask") for m in bn)


def test_resnet50_uses_bottlenecks_of_masked_convs() -> None:
    net = build_model("resnet50", (3, 8, 8), 10, width=0.125)
    assert net.eval()(torch.randn(1, 3, 8, 8)).shape == (1, 10)
    assert len(masked_layers(net)) == 1 + 16 * 3 + 4 + 1  # stem, 3 per block, 4 shortcuts, fc


def test_build_model_reads_data_set_info() -> None:
    class Info:
        task, input_shape, num_classes = "classification", (40,), 10

    assert build_model("cnn1d", Info())(torch.randn(3, 40)).shape == (3, 10)
    Info.task = "regression"
    assert build_model("mlp", Info())(torch.randn(3, 40)).shape == (3, 1)


def test_build_model_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("vgg", (3, 32, 32), 10)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("mlp", (4,))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        build_model("resnet18", (40,), 10)
    with pytest.raises(ValueError, match="width"):
        build_model("mlp", (4,), 2, width=0)
    with pytest.raises(TypeError):
        build_model("mlp", "40", 2)


def test_cnn1d_rejects_wrong_input_shape() -> None:
    with pytest.raises(ValueError, match="CNN1d expects"):
        build_model("cnn1d", (40,), 10)(torch.randn(2, 3, 40))


def test_to_masked_converts_plain_layers_keeping_weights() -> None:
    net = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 6, 3))
    x = torch.randn(4, 1, 8)
    before = net(x)
    to_masked(net)
    assert isinstance(net[0], MaskedConv1d) and isinstance(net[2], MaskedLinear)
    torch.testing.assert_close(net(x), before)
