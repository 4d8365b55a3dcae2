"""Multi-layer perceptron of masked linear layers."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from hvgp.nn.layers import MaskedLinear

__all__ = ["MLP"]


class MLP(nn.Sequential):
    """Flatten, then masked ``Linear``-ReLU blocks and a masked output layer.

    :param input_shape: shape of one input (flattened internally).
    :param num_outputs: classes (or 1 for regression).
    :param hidden: hidden widths before the ``width`` multiplier.
    :param width: multiplier applied to every hidden width.
    """

    def __init__(
        self,
        input_shape: Sequence[int] | int,
        num_outputs: int,
        hidden: Sequence[int] = (256, 256),
        width: float = 1.0,
    ) -> None:
        dims = [int(math.prod([input_shape] if isinstance(input_shape, int) else input_shape))]
        dims += [max(1, round(h * width)) for h in hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [MaskedLinear(a, b), nn.ReLU()]
        layers.append(MaskedLinear(dims[-1], num_outputs))
        super().__init__(*layers)
