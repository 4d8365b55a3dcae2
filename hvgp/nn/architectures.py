"""``build_model``: one call from an architecture name and a data set to a masked network."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from hvgp.nn.cnn import CNN1d
from hvgp.nn.mlp import MLP
from hvgp.nn.resnet import resnet18, resnet50, wrn_22_2

__all__ = ["ARCHITECTURES", "build_model"]


def _image(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    def make(shape: tuple[int, ...], k: int, width: float) -> nn.Module:
        if len(shape) != 3:
            raise ValueError(f"this architecture needs (C, H, W) inputs, got input_shape {shape}")
        return factory(k, shape[0], width)

    return make


def _cnn1d(shape: tuple[int, ...], k: int, width: float) -> nn.Module:
    if len(shape) not in (1, 2):
        raise ValueError(f"cnn1d needs (L,) or (C, L) inputs, got input_shape {shape}")
    return CNN1d(shape[-1], k, in_channels=1 if len(shape) == 1 else shape[0], width=width)


ARCHITECTURES: dict[str, Callable[[tuple[int, ...], int, float], nn.Module]] = {
    "mlp": lambda shape, k, width: MLP(shape, k, width=width),
    "cnn1d": _cnn1d,
    "wrn-22-2": _image(wrn_22_2),
    "resnet18": _image(resnet18),
    "resnet50": _image(resnet50),
}


def build_model(
    arch: str,
    info_or_input_shape: Any,
    num_classes: int | None = None,
    width: float = 1.0,
) -> nn.Module:
    """Build a masked network for a data set.

    :param arch: one of ``mlp``, ``cnn1d``, ``wrn-22-2``, ``resnet18``, ``resnet50``.
    :param info_or_input_shape: a data-set info object (with ``input_shape`` and
        ``num_classes``; regression tasks get one output) or the shape of one input.
    :param num_classes: outputs; overrides the info's. Required with a bare shape.
    :param width: channel / hidden-width multiplier.

    >>> build_model("mlp", (40,), 10, width=0.25)[1]
    MaskedLinear(in_features=40, out_features=64, bias=True)
    """
    key = str(arch).lower().replace("_", "-")
    if key not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose from {sorted(ARCHITECTURES)}")
    if not (isinstance(width, (int, float)) and width > 0):
        raise ValueError(f"width must be a positive number, got {width!r}")
    if hasattr(info_or_input_shape, "input_shape"):
        info = info_or_input_shape
        shape = tuple(int(d) for d in info.input_shape)
        if num_classes is None:
            task = getattr(info, "task", "classification")
            num_classes = 1 if task == "regression" else getattr(info, "num_classes", None)
    elif isinstance(info_or_input_shape, (Sequence, int)) and not isinstance(
        info_or_input_shape, (str, bool)
    ):
        shape = (info_or_input_shape,) if isinstance(info_or_input_shape, int) else tuple(
            int(d) for d in info_or_input_shape
        )
    else:
        raise TypeError(
            "info_or_input_shape must be a data-set info (with .input_shape) or a shape tuple, "
            f"got {type(info_or_input_shape).__name__}"
        )
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    return ARCHITECTURES[key](shape, num_classes, float(width))
