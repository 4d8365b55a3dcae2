"""Masked layers: ordinary torch layers that carry the deterministic mask M as a buffer.

Why plain torch (not ``PyroModule``): a ``PyroModule`` routes every ``nn.Parameter`` through
Pyro's *global* parameter store, so two models built in one process would share weights
unless a process-wide setting is flipped. Here the layers hold plain parameters and the
``weight_mask`` buffer the :mod:`hvgp.sparsity` engine fills in place; all sampling (the
random mask Z, the weight sites) lives in one place, :mod:`hvgp.infer.model`, which feeds
sampled weights back into the network with :func:`torch.func.functional_call`.

A layer also accepts a *batch* of weights with leading sample dimensions (shape
``(S, ..., *weight_shape)``), its input then being ``(S * N, ...)``: this is how predictions
over S random masks run as one vectorised pass rather than a Python loop.

A layer can also multiply its weight by a *factor* inside ``forward`` (``weight_factor``),
or use a given tensor instead of it (``weight_override``), both set for one block by
:func:`weight_factors`: the random mask's ``Z / (1 - p)`` is applied this way by the fast
training step and by prediction, without swapping parameters through ``functional_call``;
a stacked ``(S, *weight_shape)`` tensor gives the stacked pass above.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "MaskedConv1d",
    "MaskedConv2d",
    "MaskedLayer",
    "MaskedLinear",
    "masked_layers",
    "to_masked",
    "weight_factors",
]


class MaskedLayer:
    """Mixin: a ``weight_mask`` bool buffer (all True until a topology fills it)."""

    weight: torch.Tensor
    weight_mask: torch.Tensor
    #: multiplies the weight inside ``forward`` while set (see :func:`weight_factors`)
    weight_factor: torch.Tensor | None = None

    def _init_mask(self) -> None:
        mask = torch.ones(self.weight.shape, dtype=torch.bool, device=self.weight.device)
        self.register_buffer("weight_mask", mask)  # type: ignore[attr-defined]

    #: replaces the weight inside ``forward`` while set (see :func:`weight_factors`)
    weight_override: torch.Tensor | None = None

    def _used_weight(self) -> torch.Tensor:
        """The weight ``forward`` uses: the parameter (times ``weight_factor`` when set), or
        ``weight_override`` when set."""
        if self.weight_override is not None:
            return self.weight_override
        f = self.weight_factor
        return self.weight if f is None else self.weight * f

    def active_index(self) -> torch.Tensor:
        """Flat indices of the active weights (``weight_mask`` True), int64 on its device.

        Cached until the mask tensor is replaced or changed in place (its version counter
        moves; in-place changes through ``.data`` bypass it and are not seen).
        """
        m = self.weight_mask
        cache = self.__dict__.get("_active_cache")
        if cache is None or cache[0] is not m or cache[1] != m._version:
            cache = (m, m._version, m.reshape(-1).nonzero().squeeze(1))
            self.__dict__["_active_cache"] = cache
        return cache[2]

    def _num_weight_samples(self, weight: torch.Tensor) -> int:
        """How many weight samples ``weight`` stacks (1 for the plain parameter)."""
        base = self.weight_mask.numel()
        if weight.dim() == self.weight_mask.dim():
            return 1
        tail = weight.shape[-self.weight_mask.dim() :]
        if weight.numel() % base or tail != self.weight_mask.shape:
            raise ValueError(
                f"weight of shape {tuple(weight.shape)} does not end in the layer's weight shape "
                f"{tuple(self.weight_mask.shape)}"
            )
        return weight.numel() // base

    @staticmethod
    def _split_samples(x: torch.Tensor, s: int) -> torch.Tensor:
        if x.shape[0] % s:
            raise ValueError(
                f"input batch {x.shape[0]} is not a multiple of the {s} stacked weight samples"
            )
        return x.reshape(s, x.shape[0] // s, *x.shape[1:])


class MaskedLinear(nn.Linear, MaskedLayer):
    """``nn.Linear`` with a deterministic-mask buffer ``weight_mask`` of the weight's shape."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, **kw) -> None:
        super().__init__(in_features, out_features, bias=bias, **kw)
        self._init_mask()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self._used_weight()
        s = self._num_weight_samples(w)
        if s == 1:
            return F.linear(x, w.reshape(self.weight_mask.shape), self.bias)
        xs = self._split_samples(x, s)  # (S, n, ..., in)
        flat = xs.reshape(s, -1, self.in_features)
        wt = w.reshape(s, self.out_features, self.in_features).transpose(1, 2)
        out = (torch.matmul(flat, wt) if self.bias is None
               else torch.baddbmm(self.bias.view(1, 1, -1), flat, wt))  # bias fused in
        return out.reshape(x.shape[:-1] + (self.out_features,))


class _MaskedConvNd(MaskedLayer):
    """Shared forward of masked convolutions; stacked weight samples become conv groups."""

    _conv = staticmethod(F.conv2d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        w = self._used_weight()
        s = self._num_weight_samples(w)
        if s == 1:
            return self._conv_forward(x, w.reshape(self.weight_mask.shape), self.bias)
        if self.padding_mode != "zeros":
            raise ValueError("stacked weight samples need padding_mode='zeros'")
        xs = self._split_samples(x, s)  # (S, n, C, *spatial)
        n = xs.shape[1]
        grouped = xs.transpose(0, 1).reshape(n, s * self.in_channels, *x.shape[2:])
        out_c = self.out_channels
        weight = w.reshape(s * out_c, *self.weight_mask.shape[1:])
        bias = None if self.bias is None else self.bias.repeat(s)
        out = self._conv(
            grouped, weight, bias, self.stride, self.padding, self.dilation, self.groups * s
        )
        out = out.reshape(n, s, out_c, *out.shape[2:]).transpose(0, 1)
        return out.reshape(s * n, out_c, *out.shape[3:])


class MaskedConv1d(_MaskedConvNd, nn.Conv1d):
    """``nn.Conv1d`` with a deterministic-mask buffer ``weight_mask``."""

    _conv = staticmethod(F.conv1d)

    def __init__(self, *args, **kw) -> None:
        nn.Conv1d.__init__(self, *args, **kw)
        self._init_mask()


class MaskedConv2d(_MaskedConvNd, nn.Conv2d):
    """``nn.Conv2d`` with a deterministic-mask buffer ``weight_mask``."""

    _conv = staticmethod(F.conv2d)

    def __init__(self, *args, **kw) -> None:
        nn.Conv2d.__init__(self, *args, **kw)
        self._init_mask()


def masked_layers(net: nn.Module) -> dict[str, MaskedLayer]:
    """All masked layers of ``net`` by qualified module name (the Pyro site prefix)."""
    return {name: m for name, m in net.named_modules() if isinstance(m, MaskedLayer)}


@contextmanager
def weight_factors(layers: Mapping[str, MaskedLayer], factors: Mapping[str, torch.Tensor],
                   replace: bool = False) -> Iterator[None]:
    """Within the block, layer ``layers[name]`` multiplies its weight by ``factors[name]``
    (``replace=True``: uses ``factors[name]`` as its weight; no gradient reaches the
    parameter then).

    Why: applying the random mask inside the layer costs one multiply, where swapping the
    parameter for the product with ``functional_call`` costs a module walk per call.
    """
    attr = "weight_override" if replace else "weight_factor"
    try:
        for name, f in factors.items():
            setattr(layers[name], attr, f)
        yield
    finally:
        for name in factors:
            setattr(layers[name], attr, None)


_CONVERT = {nn.Linear: MaskedLinear, nn.Conv1d: MaskedConv1d, nn.Conv2d: MaskedConv2d}


def to_masked(net: nn.Module) -> nn.Module:
    """Replace (in place) every plain ``nn.Linear``/``Conv1d``/``Conv2d`` by its masked twin.

    Why: lets ``CigL(net)`` accept any ordinary torch network; weights and biases are kept.
    Returns ``net`` (or the converted layer when ``net`` itself is one of those layers).
    """
    kind = _CONVERT.get(type(net))
    if kind is not None:
        return _convert_one(net, kind)
    for name, child in list(net.named_children()):
        setattr(net, name, to_masked(child))
    return net


def _convert_one(layer: nn.Module, kind: type) -> nn.Module:
    if isinstance(layer, nn.Linear):
        new = kind(layer.in_features, layer.out_features, bias=layer.bias is not None)
    else:
        new = kind(
            layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
            padding=layer.padding, dilation=layer.dilation, groups=layer.groups,
            bias=layer.bias is not None, padding_mode=layer.padding_mode,
        )
    new = new.to(device=layer.weight.device, dtype=layer.weight.dtype)
    new.load_state_dict(layer.state_dict(), strict=False)
    return new
