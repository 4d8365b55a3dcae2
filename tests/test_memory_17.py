"""#17 acceptance: one CigL training step holds no more memory than RigL's (+ 2 %), and the
fused random-mask layer gives the gradients autograd gives on the masked weight."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

from overhead import peak_bytes  # noqa: E402
from step_overhead import mnist1d_steps  # noqa: E402

from hvgp.nn import MaskedConv1d, MaskedLinear  # noqa: E402
from hvgp.nn.layers import DropFactor, drop_scale, weight_factors  # noqa: E402

CPU = torch.device("cpu")


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread (the allocation pattern of some kernels depends on it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _peaks(arch: str) -> tuple[int, int]:
    """Peak bytes of one hvgp CigL (p = 0.01) and one RigL step, same network and batch."""
    steps = mnist1d_steps(arch, CPU)
    return peak_bytes(steps["cigl"], CPU), peak_bytes(steps["rigl"], CPU)


@pytest.mark.parametrize("arch", ["mlp", "cnn1d"])
def test_cigl_step_peak_memory_is_rigls(arch: str, one_thread: None) -> None:
    cigl, rigl = _peaks(arch)
    assert rigl > 100_000  # the measurement sees the step at all
    assert cigl <= 1.02 * rigl, (cigl, rigl, cigl / rigl)


def test_peak_bytes_sees_what_a_step_frees_of_the_last_one() -> None:
    """A step that replaces a held tensor costs nothing above what was live before it."""
    held = {"z": torch.ones(50_000)}

    def replace() -> None:
        held["z"] = None
        held["z"] = torch.ones(50_000)

    def grow() -> None:
        held.setdefault("keep", []).append(torch.ones(50_000))

    assert peak_bytes(replace, CPU) <= 1_000
    assert peak_bytes(grow, CPU) >= 200_000


def _layer_grads(layer: torch.nn.Module, x: torch.Tensor, factor: object,
                 ) -> list[torch.Tensor]:
    """Output and the gradients (input, weight, bias) of ``layer`` under ``factor``."""
    layer.zero_grad()
    x = x.detach().requires_grad_(True)
    with weight_factors({"l": layer}, {"l": factor}):
        out = layer(x)
    out.backward(torch.randn(out.shape, generator=torch.Generator().manual_seed(3)))
    return [out.detach(), x.grad, layer.weight.grad.clone(), layer.bias.grad.clone()]


@pytest.mark.parametrize("build", ["plain", "of"])
@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_drop_factor_layer_equals_the_dense_factor_bit_for_bit(kind: str, build: str) -> None:
    """Also with the expanded scale built once (``DropFactor.of``, the training step's)."""
    torch.manual_seed(0)
    if kind == "linear":
        layer, x = MaskedLinear(12, 7), torch.randn(5, 12)
    else:
        layer, x = MaskedConv1d(3, 4, 3, stride=2, padding=1), torch.randn(5, 3, 11)
    with torch.no_grad():
        layer.weight_mask.copy_(torch.rand(layer.weight.shape) < 0.6)
        layer.weight.mul_(layer.weight_mask)  # inactive weights are 0, as a topology keeps
    idx = layer.active_index()
    p = 0.3
    z = torch.ones_like(layer.weight)
    z.view(-1)[idx] = (torch.rand(idx.numel()) < 1 - p).float()
    dense = torch.where(layer.weight_mask, z / (1 - p), torch.ones_like(z))
    make = DropFactor.of if build == "of" else DropFactor
    compact = make(z, idx, drop_scale(p, z.dtype))
    assert (compact.src is not None) == (build == "of")
    assert torch.equal(compact.dense(), dense)
    got, want = _layer_grads(layer, x, compact), _layer_grads(layer, x, dense)
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)
    inactive = ~layer.weight_mask
    assert inactive.any() and got[2][inactive].abs().sum() > 0  # dense grads for RigL's grow
    assert (got[2][layer.weight_mask & (z == 0)] == 0).all()  # dropped weights get none


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_drop_factor_under_autocast_takes_the_dense_path(kind: str) -> None:
    """bfloat16 autocast (gpu_check's AMP section on CPU): the fused function would mix
    dtypes, so the layer applies the factor densely there, as autocast expects."""
    torch.manual_seed(0)
    layer, x = ((MaskedLinear(12, 7), torch.randn(5, 12)) if kind == "linear"
                else (MaskedConv1d(3, 4, 3, padding=1), torch.randn(5, 3, 11)))
    idx = layer.active_index()
    z = torch.ones_like(layer.weight)
    z.view(-1)[idx] = (torch.rand(idx.numel()) < 0.7).float()
    compact = DropFactor(z, idx, drop_scale(0.3, z.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = _layer_grads(layer, x, compact)
        want = _layer_grads(layer, x, compact.dense())
    assert got[0].dtype == torch.bfloat16
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)
