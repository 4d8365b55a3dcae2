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
a stacked ``(S, *weight_shape)`` tensor gives the stacked pass above. The factor may also
be a :class:`DropFactor` (Z and the scale ``1 / (1 - p)``): a linear layer on a 2-D batch or
a zero-padded convolution then runs through one autograd function that holds no
weight-sized tensor of its own between forward and backward (see :class:`DropFactor`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "DropFactor",
    "MaskedConv1d",
    "MaskedConv2d",
    "MaskedLayer",
    "MaskedLinear",
    "masked_layers",
    "to_masked",
    "weight_factors",
]


@lru_cache(maxsize=64)
def drop_scale(p: float, dtype: torch.dtype) -> float:
    """``1 / (1 - p)`` exactly as ``dtype`` arithmetic gives it (``ones / (1 - p)``), so a
    product with it equals the product with a factor tensor built that way, bit for bit."""
    return float(torch.ones((), dtype=dtype) / (1.0 - p))


@lru_cache(maxsize=64)
def _scalar(value: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A one-element tensor holding ``value`` (built once per value, dtype and device: a
    training step expands it instead of allocating it; never written to)."""
    with torch.inference_mode(False):  # a normal tensor even when first made in inference
        return torch.full((1,), value, dtype=dtype, device=device)


class DropFactor(NamedTuple):
    """The factor ``where(M, Z / (1 - p), 1)`` held as Z itself, M's flat active indices and
    ``scale = 1 / (1 - p)`` (:func:`drop_scale`); Z must be 1 off the active entries.

    Why: the factor is never built as a weight-sized float tensor, and the layer (through
    :class:`_DropConnect`) rebuilds the used weight in backward instead of keeping it for
    the whole pass, so CigL's step holds no more memory than RigL's (#17).
    """

    z: torch.Tensor
    index: torch.Tensor
    scale: float
    #: ``scale`` expanded to the index's length in Z's dtype (:meth:`of` builds it once per
    #: step, so the three scalings of a step do not each build it)
    src: torch.Tensor | None = None

    @classmethod
    def of(cls, z: torch.Tensor, index: torch.Tensor, scale: float) -> DropFactor:
        """The factor with its expanded scale built once (what the training step uses)."""
        return cls(z, index, scale, _scalar(scale, z.dtype, z.device).expand(index.numel()))

    @property
    def shape(self) -> torch.Size:
        """The weight's shape (Z's), as a factor tensor's."""
        return self.z.shape

    def dim(self) -> int:
        """Z's number of dims, as a factor tensor's (a DropFactor is never stacked)."""
        return self.z.dim()

    def apply_(self, t: torch.Tensor) -> torch.Tensor:
        """``t *= factor`` in place, equal bit for bit to the product with :meth:`dense`.

        ``t * Z`` is exact (Z is 0 or 1), then only the active entries are scaled, by a
        scatter of an expanded scalar (no index-sized temporary).
        """
        return self._scale_active_(t.mul_(self.z))

    def _scale_active_(self, t: torch.Tensor) -> torch.Tensor:
        """``t[active] *= scale`` in place (``t`` contiguous)."""
        src = self.src
        if src is None or src.dtype != t.dtype or src.device != t.device:
            src = torch.full((1,), self.scale, dtype=t.dtype, device=t.device)
            src = src.expand(self.index.numel())
        t.view(-1).scatter_reduce_(0, self.index, src, "prod")
        return t

    def dense(self) -> torch.Tensor:
        """The factor as a tensor of the weight's shape."""
        return self.apply_(torch.ones_like(self.z, memory_format=torch.contiguous_format))

    def times(self, weight: torch.Tensor) -> torch.Tensor:
        """``weight * factor`` as a new contiguous tensor (no graph): one pass for ``* Z``."""
        return self._scale_active_(torch.mul(weight.detach(), self.z).contiguous())


class _DropConnect(torch.autograd.Function):
    """``layer(x)`` with the weight times a :class:`DropFactor`, saving only the input and
    the parameter: backward rebuilds the used weight for the input gradient and frees it
    before the weight gradient is made, which it then scales in place (the gradient of
    inactive weights keeps factor 1: RigL's grow step reads it).

    The gradients are the ones autograd computes for ``layer`` on ``weight * factor``, by
    the same ATen formulas (tests/test_infer_fast_step.py, tests/test_memory_17.py).
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                layer: MaskedLayer, factor: DropFactor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.layer, ctx.factor, ctx.has_bias = layer, factor, bias is not None
        return layer._plain_forward(x, factor.times(weight), bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        layer, factor = ctx.layer, ctx.factor
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx = gw = gb = None
        if need_x:
            used = factor.times(weight)
            gx = layer._input_grad(grad, x, used)
            del used
        if need_w or (need_b and ctx.has_bias):
            gw, gb = layer._weight_bias_grad(grad, x, weight, need_w, need_b and ctx.has_bias)
            if gw is not None:
                gw = factor.apply_(gw.contiguous())
        return gx, gw, gb, None, None


class MaskedLayer:
    """Mixin: a ``weight_mask`` bool buffer (all True until a topology fills it)."""

    weight: torch.Tensor
    weight_mask: torch.Tensor
    bias: torch.Tensor | None
    #: multiplies the weight inside ``forward`` while set (see :func:`weight_factors`)
    weight_factor: torch.Tensor | DropFactor | None = None

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
        if isinstance(f, DropFactor):
            f = f.dense()
        return self.weight if f is None else self.weight * f

    def _plain(self) -> bool:
        """True when ``forward`` is the plain layer: no factor, no override, one weight
        (``functional_call`` may swap in a stacked one)."""
        return (self.weight_factor is None and self.weight_override is None
                and self.weight.shape == self.weight_mask.shape)

    def _drop_connect(self, x: torch.Tensor) -> torch.Tensor | None:
        """The output through :class:`_DropConnect` when the factor is a :class:`DropFactor`
        and the layer supports it for this input (:meth:`_fusable`); else None."""
        f = self.weight_factor
        if not isinstance(f, DropFactor) or self.weight_override is not None \
                or not self._fusable(x) or torch.is_autocast_enabled(x.device.type):
            return None  # autocast: the fused function's explicit ops would mix dtypes
        return _DropConnect.apply(x, self.weight, self.bias, self, f)

    def _fusable(self, x: torch.Tensor) -> bool:
        """Whether :class:`_DropConnect` reproduces this layer on input ``x``."""
        return False

    def _plain_forward(self, x: torch.Tensor, weight: torch.Tensor,
                       bias: torch.Tensor | None) -> torch.Tensor:
        """The layer's op on one weight (no factor, no stacking)."""
        raise NotImplementedError

    def _input_grad(self, grad: torch.Tensor, x: torch.Tensor,
                    weight: torch.Tensor) -> torch.Tensor:
        """Gradient wrt the input of :meth:`_plain_forward` (``weight``: the used weight)."""
        raise NotImplementedError

    def _weight_bias_grad(self, grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                          need_w: bool, need_b: bool,
                          ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Gradients wrt the weight and the bias of :meth:`_plain_forward`."""
        raise NotImplementedError

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

    def _fusable(self, x: torch.Tensor) -> bool:
        return x.dim() == 2 and x.layout == torch.strided

    def _plain_forward(self, x: torch.Tensor, weight: torch.Tensor,
                       bias: torch.Tensor | None) -> torch.Tensor:
        return F.linear(x, weight, bias)

    def _input_grad(self, grad: torch.Tensor, x: torch.Tensor,
                    weight: torch.Tensor) -> torch.Tensor:
        # autograd's mm_mat1_backward for addmm(b, x, weight.t()), both branches
        if x.stride(0) == 1 and x.stride(1) == x.shape[0]:
            return weight.t().mm(grad.t()).t()
        return grad.mm(weight)

    def _weight_bias_grad(self, grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                          need_w: bool, need_b: bool,
                          ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        # mm_mat2_backward (weight.t() of a contiguous weight: the transposed branch), and
        # the bias's broadcast reduced as autograd's sum_to does
        return (grad.t().mm(x) if need_w else None), (grad.sum(0) if need_b else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._plain():
            return F.linear(x, self.weight, self.bias)  # the plain layer (RigL's step)
        out = self._drop_connect(x)
        if out is not None:
            return out
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

    def _fusable(self, x: torch.Tensor) -> bool:
        return (self.padding_mode == "zeros" and not isinstance(self.padding, str)
                and x.dim() == self.weight.dim() and x.layout == torch.strided)

    def _plain_forward(self, x: torch.Tensor, weight: torch.Tensor,
                       bias: torch.Tensor | None) -> torch.Tensor:
        return self._conv(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def _conv_backward(self, grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                       mask: list[bool]) -> tuple[torch.Tensor, ...]:
        """ATen's convolution backward, the one autograd runs for ``_plain_forward``."""
        return torch.ops.aten.convolution_backward(
            grad, x, weight, [weight.shape[0]] if mask[2] else None, list(self.stride),
            list(self.padding), list(self.dilation), False, [0] * (weight.dim() - 2),
            self.groups, mask)

    def _input_grad(self, grad: torch.Tensor, x: torch.Tensor,
                    weight: torch.Tensor) -> torch.Tensor:
        return self._conv_backward(grad, x, weight, [True, False, False])[0]

    def _weight_bias_grad(self, grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                          need_w: bool, need_b: bool,
                          ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        _, gw, gb = self._conv_backward(grad, x, weight.detach(), [False, need_w, need_b])
        return (gw if need_w else None), (gb if need_b else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if self._plain():
            return self._conv_forward(x, self.weight, self.bias)  # the plain layer
        out = self._drop_connect(x)
        if out is not None:
            return out
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
    # plain attributes (never parameters, buffers or modules): set past nn.Module's
    # __setattr__ bookkeeping, which costs more than a small layer's multiply
    try:
        for name, f in factors.items():
            object.__setattr__(layers[name], attr, f)
        yield
    finally:
        for name in factors:
            object.__setattr__(layers[name], attr, None)


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
