"""Genuinely sparse inference layers: the masked weights stored as torch sparse CSR matrices.

Why: a trained CigL/RigL model has exactly the target sparsity, but the masked layers of
:mod:`hvgp.nn` still hold (and multiply) dense weight tensors. Here each masked layer becomes
a twin whose weight is a CSR matrix holding only the entries inside its mask M, so memory
and, at high sparsity, CPU time scale with the number of active weights.

- ``Linear``: ``(W_csr @ x^T)^T + b`` (sparse @ dense on the transposed input batch).
- ``Conv1d`` / ``Conv2d``: im2col. The input is padded (with the layer's ``padding_mode``),
  unfolded (``Tensor.unfold`` per spatial dim) into columns
  ``(C/groups * prod(kernel), N * L_out)`` per group, multiplied by the group's CSR matrix
  ``(O/groups, C/groups * prod(kernel))`` and folded back. Every stride / padding (incl.
  ``"same"``) / dilation / groups / padding-mode combination of ``nn.Conv1d``/``nn.Conv2d``
  is covered; no dense fallback is needed. The unfolded input is ``prod(kernel)`` times the
  input, so convolutions gain less than linear layers.

The CSR structure is built from the mask M, not from the non-zero values, so an active
weight that happens to be exactly 0 (e.g. just grown) stays in the structure and the mask is
recovered exactly by :meth:`SparseLayer.mask`.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hvgp.nn.layers import MaskedConv1d, MaskedConv2d, MaskedLayer, MaskedLinear, masked_layers

__all__ = [
    "SparseConv1d",
    "SparseConv2d",
    "SparseLayer",
    "SparseLinear",
    "csr_from_mask",
    "sparse_layers",
    "to_sparse",
]


def csr_tensor(*args, **kw) -> torch.Tensor:
    """``torch.sparse_csr_tensor`` without torch's "beta" warning (nothing to act on)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(*args, **kw)


def csr_from_mask(weight: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """CSR matrix ``(rows, cols)`` of a 2-D ``weight`` keeping exactly the entries where ``mask``.

    Why not ``weight.to_sparse_csr()``: that drops active weights equal to 0 and keeps
    inactive ones that are not 0; the mask is the structure.
    """
    if weight.dim() != 2 or mask.shape != weight.shape:
        raise ValueError(
            f"need a 2-D weight and a mask of its shape, got {tuple(weight.shape)} and "
            f"{tuple(mask.shape)}"
        )
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor, got {mask.dtype}")
    rows, cols = mask.nonzero(as_tuple=True)  # row-major order, as CSR needs
    crow = torch.zeros(weight.shape[0] + 1, dtype=torch.int64, device=weight.device)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=weight.shape[0]), 0)
    return csr_tensor(
        crow, cols, weight.detach()[rows, cols], weight.shape, dtype=weight.dtype,
        device=weight.device, check_invariants=False,  # valid by construction
    )


class SparseLayer(nn.Module):
    """Base of the sparse twins: ``weight`` is a list of CSR matrices (one per conv group).

    :param weight_shape: shape of the dense weight the layer replaces.
    :param blocks: CSR matrices, one per group, each ``(out/groups, rest)``.
    :param bias: dense bias or ``None``.
    """

    def __init__(
        self, weight_shape: Sequence[int], blocks: Sequence[torch.Tensor], bias: torch.Tensor | None
    ) -> None:
        super().__init__()
        self.weight_shape = torch.Size(weight_shape)
        for i, block in enumerate(blocks):
            if block.layout != torch.sparse_csr:
                raise TypeError(f"block {i} must be a sparse CSR tensor, got {block.layout}")
            self.register_buffer(f"weight_csr_{i}", block)
        self.num_blocks = len(blocks)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(),
                                                           requires_grad=False)

    @property
    def blocks(self) -> list[torch.Tensor]:
        """The CSR matrices, in group order."""
        return [getattr(self, f"weight_csr_{i}") for i in range(self.num_blocks)]

    def nnz(self) -> int:
        """Number of stored (active) weights."""
        return sum(int(b.values().numel()) for b in self.blocks)

    def dense_weight(self) -> torch.Tensor:
        """The dense weight (zeros outside the mask), in the replaced layer's shape."""
        return torch.cat([b.to_dense() for b in self.blocks], 0).reshape(self.weight_shape)

    def mask(self) -> torch.Tensor:
        """The deterministic mask M recovered from the CSR structure."""
        parts = []
        for b in self.blocks:
            m = torch.zeros(b.shape, dtype=torch.bool, device=b.device)
            rows = torch.repeat_interleave(
                torch.arange(b.shape[0], device=b.device), b.crow_indices().diff()
            )
            m[rows, b.col_indices()] = True
            parts.append(m)
        return torch.cat(parts, 0).reshape(self.weight_shape)

    def extra_repr(self) -> str:
        n = math.prod(self.weight_shape)
        return (f"weight_shape={tuple(self.weight_shape)}, nnz={self.nnz()}, "
                f"density={self.nnz() / max(1, n):.4f}")


class SparseLinear(SparseLayer):
    """Linear layer with a CSR weight: ``y = x W^T + b``."""

    @classmethod
    def from_masked(cls, layer: MaskedLinear) -> SparseLinear:
        """The sparse twin of a masked linear layer (weights outside the mask dropped)."""
        return cls(layer.weight.shape, [csr_from_mask(layer.weight, layer.weight_mask)],
                   layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.weight_shape[1]:
            raise ValueError(
                f"input has {x.shape[-1]} features, the layer expects {self.weight_shape[1]}"
            )
        flat = x.reshape(-1, x.shape[-1])
        # W @ x^T with a contiguous x^T: on CPU several times faster than F.linear(x, W_csr)
        out = torch.sparse.mm(self.weight_csr_0, flat.t().contiguous()).t()
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], self.weight_shape[0])


def _pad_amounts(conv: nn.modules.conv._ConvNd) -> list[int]:
    """Explicit ``F.pad`` amounts (last dim first) for the conv's padding, incl. ``"same"``."""
    k, d = conv.kernel_size, conv.dilation
    if isinstance(conv.padding, str):
        if conv.padding == "valid":
            return [0, 0] * len(k)
        totals = [di * (ki - 1) for ki, di in zip(k, d)]  # "same" (stride 1 only)
        pairs = [(t // 2, t - t // 2) for t in totals]
    else:
        pairs = [(p, p) for p in conv.padding]
    return [a for pair in reversed(pairs) for a in pair]


class _SparseConvNd(SparseLayer):
    """im2col convolution with one CSR matrix per group (see the module docstring)."""

    spatial_dims = 2

    def __init__(
        self,
        conv: nn.modules.conv._ConvNd,
        blocks: Sequence[torch.Tensor],
    ) -> None:
        super().__init__(conv.weight.shape, blocks, conv.bias)
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size, self.stride = tuple(conv.kernel_size), tuple(conv.stride)
        self.dilation, self.groups = tuple(conv.dilation), conv.groups
        self.pad = _pad_amounts(conv)
        self.padding_mode = conv.padding_mode

    @classmethod
    def from_masked(cls, layer: MaskedLayer) -> _SparseConvNd:
        """The sparse twin of a masked convolution (one CSR block per group)."""
        w, m = layer.weight, layer.weight_mask
        g = layer.groups  # type: ignore[attr-defined]
        rows = w.shape[0] // g
        blocks = [
            csr_from_mask(w[i * rows:(i + 1) * rows].reshape(rows, -1),
                          m[i * rows:(i + 1) * rows].reshape(rows, -1))
            for i in range(g)
        ]
        return cls(layer, blocks)  # type: ignore[arg-type]

    def _columns(self, x: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
        """im2col of the padded input: ``(groups, C/groups * prod(k), N * prod(out))``.

        ``Tensor.unfold`` per spatial dim gives strided windows as views (dilation by
        slicing them), so the one copy is the final reshape; ``F.unfold`` is 2-D only and,
        for 1-D signals, several times slower.
        """
        nd = self.spatial_dims
        v = x
        for i, (k, d, s) in enumerate(zip(self.kernel_size, self.dilation, self.stride)):
            v = v.unfold(2 + i, d * (k - 1) + 1, s)  # window dim appended last
        v = v[(slice(None),) * (2 + nd) + tuple(slice(None, None, d) for d in self.dilation)]
        out_shape = list(v.shape[2:2 + nd])
        v = v.permute(1, *range(2 + nd, 2 + 2 * nd), 0, *range(2, 2 + nd))  # (C, *k, N, *out)
        cin = self.in_channels // self.groups * math.prod(self.kernel_size)
        return v.reshape(self.groups, cin, -1), out_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        expected = self.spatial_dims + 2
        if x.dim() != expected or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected input (N, {self.in_channels}, ...) with {expected} dims, "
                f"got {tuple(x.shape)}"
            )
        if any(self.pad):
            mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
            x = F.pad(x, self.pad, mode=mode)
        n = x.shape[0]
        cols, out_shape = self._columns(x)
        outs = [torch.sparse.mm(b, cols[i]) for i, b in enumerate(self.blocks)]
        out = torch.cat(outs, 0) if len(outs) > 1 else outs[0]  # (O, N * prod(out))
        if self.bias is not None:
            out = out + self.bias[:, None]
        out = out.reshape(self.out_channels, n, *out_shape)
        return out.transpose(0, 1).contiguous()


class SparseConv2d(_SparseConvNd):
    """2-D convolution with CSR weights, computed by im2col."""

    spatial_dims = 2


class SparseConv1d(_SparseConvNd):
    """1-D convolution with CSR weights, computed by im2col."""

    spatial_dims = 1


_TWINS: dict[type, type] = {
    MaskedLinear: SparseLinear,
    MaskedConv1d: SparseConv1d,
    MaskedConv2d: SparseConv2d,
}


def _twin(layer: nn.Module) -> SparseLayer:
    for kind, twin in _TWINS.items():
        if isinstance(layer, kind):
            return twin.from_masked(layer)  # type: ignore[attr-defined]
    raise TypeError(f"no sparse twin for masked layer type {type(layer).__name__}")


@torch.no_grad()
def to_sparse(net: nn.Module) -> nn.Module:
    """A copy of ``net`` for inference, every masked layer replaced by its CSR twin.

    The copy is in ``eval()`` mode with gradients off; ``net`` is left unchanged. Anything
    that is not a masked layer (BatchNorm, activations, pooling, the architecture's own
    ``forward``) is kept as is, so predictions equal ``net.eval()(x)`` to float rounding.
    """
    if not isinstance(net, nn.Module):
        raise TypeError(f"net must be a torch.nn.Module, got {type(net).__name__}")
    if not masked_layers(net):
        raise ValueError("the network has no masked layers (build it with hvgp.nn)")
    if isinstance(net, MaskedLayer):
        return _twin(net).eval()
    out = copy.deepcopy(net)
    for name, layer in list(masked_layers(out).items()):
        parent_name, _, attr = name.rpartition(".")
        parent = out.get_submodule(parent_name) if parent_name else out
        setattr(parent, attr, _twin(layer))
    for p in out.parameters():
        p.requires_grad_(False)
    return out.eval()


def sparse_layers(net: nn.Module) -> dict[str, SparseLayer]:
    """All sparse twins of ``net`` by qualified module name."""
    return {name: m for name, m in net.named_modules() if isinstance(m, SparseLayer)}
