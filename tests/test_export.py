"""Sparse export: CSR twins predict like the masked dense net; save/load keeps masks exactly."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, TensorDataset

from hvgp.export import (
    ArchSpec,
    SparseConv1d,
    SparseLinear,
    csr_from_mask,
    load_model,
    save_model,
    sparse_layers,
    to_sparse,
)
from hvgp.infer import CigL
from hvgp.nn import MaskedConv1d, MaskedConv2d, MaskedLinear, build_model, masked_layers
from hvgp.sparsity import SparseTopology


def _sparse_net(arch: str, shape: tuple[int, ...], sparsity: float = 0.9) -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_model(arch, shape, 10, width=0.25)
    SparseTopology(net, sparsity, seed=1)
    for m in net.modules():  # non-trivial BatchNorm statistics
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.mark.parametrize("arch,shape", [("mlp", (40,)), ("cnn1d", (40,)), ("wrn-22-2", (3, 8, 8))])
def test_sparse_export_predicts_like_masked_dense_net(arch: str, shape: tuple[int, ...]) -> None:
    net = _sparse_net(arch, shape)
    x = torch.randn(7, *shape)
    sparse = to_sparse(net)
    assert set(sparse_layers(sparse)) == set(masked_layers(net))
    torch.testing.assert_close(sparse(x), net(x), rtol=1e-4, atol=1e-5)
    # the original is untouched and the twins store only the active weights
    assert masked_layers(net)
    nnz = sum(int(m.weight_mask.sum()) for m in masked_layers(net).values())
    assert sum(m.nnz() for m in sparse_layers(sparse).values()) == nnz


def test_csr_structure_follows_the_mask_not_the_values() -> None:
    w = torch.tensor([[0.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False], [False, False, True]])  # active 0s, inactive 3, 4
    csr = csr_from_mask(w, mask)
    assert csr.values().tolist() == [0.0, 2.0, 0.0]
    layer = MaskedLinear(3, 2)
    with torch.no_grad():
        layer.weight.copy_(w * mask)
        layer.weight_mask.copy_(mask)
    assert torch.equal(SparseLinear.from_masked(layer).mask(), mask)


@settings(max_examples=25, deadline=None)
@given(
    dims=st.sampled_from([1, 2]),
    groups=st.sampled_from([1, 2]),
    kernel=st.integers(1, 3),
    stride=st.integers(1, 2),
    dilation=st.integers(1, 2),
    padding=st.integers(0, 2),
    mode=st.sampled_from(["zeros", "circular", "replicate", "reflect"]),
    bias=st.booleans(),
    density=st.floats(0.0, 1.0),
)
def test_sparse_convolution_equals_masked_convolution(
    dims: int, groups: int, kernel: int, stride: int, dilation: int, padding: int, mode: str,
    bias: bool, density: float,
) -> None:
    cls = MaskedConv1d if dims == 1 else MaskedConv2d
    conv = cls(4, 6, kernel, stride=stride, dilation=dilation, padding=padding, groups=groups,
               bias=bias, padding_mode=mode)
    with torch.no_grad():
        conv.weight_mask.copy_(torch.rand(conv.weight.shape) < density)
        conv.weight.mul_(conv.weight_mask)
    x = torch.randn(3, 4, *([9] * dims))
    sparse = to_sparse(conv)
    torch.testing.assert_close(sparse(x), conv(x), rtol=1e-4, atol=1e-5)
    assert torch.equal(sparse.mask(), conv.weight_mask)
    assert torch.equal(sparse.dense_weight(), conv.weight.detach())


def test_sparse_conv_handles_same_padding() -> None:
    conv = MaskedConv1d(2, 3, 4, padding="same", dilation=2)
    x = torch.randn(2, 2, 11)
    torch.testing.assert_close(to_sparse(conv)(x), conv(x), rtol=1e-4, atol=1e-5)
    assert isinstance(to_sparse(conv), SparseConv1d)


@pytest.mark.parametrize("sparse", [True, False])
def test_save_and_load_round_trip_keeps_masks_and_predictions(tmp_path, sparse: bool) -> None:
    net = _sparse_net("cnn1d", (40,))
    path = save_model(tmp_path / "m.pt", net, ArchSpec("cnn1d", (40,), 10, 0.25), sparse=sparse)
    dense = load_model(path, sparse=False)
    for name, layer in masked_layers(net).items():
        other = masked_layers(dense)[name]
        assert torch.equal(other.weight_mask, layer.weight_mask)
        assert torch.equal(other.weight, layer.weight)
    x = torch.randn(5, 40)
    torch.testing.assert_close(load_model(path)(x), net(x), rtol=1e-4, atol=1e-5)
    raw = torch.load(path, weights_only=True)  # plain data only
    assert raw["arch"] == {"arch": "cnn1d", "input_shape": [40], "num_classes": 10,
                           "width": 0.25}


def test_sparse_file_is_smaller_than_dense_masked_file(tmp_path) -> None:
    net = _sparse_net("mlp", (40,), sparsity=0.95)
    spec = ArchSpec("mlp", (40,), 10, 0.25)
    s = save_model(tmp_path / "s.pt", net, spec)
    d = save_model(tmp_path / "d.pt", net, spec, sparse=False)
    assert os.path.getsize(s) < 0.5 * os.path.getsize(d)


def test_exported_cigl_averaged_model_predicts_like_the_estimator(tmp_path) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 40, generator=g)
    y = (x[:, :5].sum(1) > 0).long()
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    est = CigL(build_model("cnn1d", (40,), 2, width=0.25), sparsity=0.9, drop_rate=0.1,
               device="cpu", delta_t=2, average_start=0.5).fit(loader, epochs=2)
    assert est.averaged_ is not None
    path = save_model(tmp_path / "cigl.pt", est, ArchSpec("cnn1d", (40,), 2, 0.25))
    probs = load_model(path)(x).softmax(-1)
    torch.testing.assert_close(probs, est.predict(x).probs[0], rtol=1e-4, atol=1e-5)


def test_save_needs_an_arch_spec() -> None:
    with pytest.raises(TypeError, match="arch=ArchSpec"):
        save_model("unused.pt", _sparse_net("mlp", (40,)))
    assert not os.path.exists("unused.pt")


def test_to_sparse_rejects_network_without_masked_layers() -> None:
    with pytest.raises(ValueError, match="no masked layers"):
        to_sparse(torch.nn.Sequential(torch.nn.ReLU()))
