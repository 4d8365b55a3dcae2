"""A small 1-D CNN for MNIST-1D style signals (N, L) or (N, C, L)."""

from __future__ import annotations

import torch
from torch import nn

from hvgp.nn.layers import MaskedConv1d, MaskedLinear

__all__ = ["CNN1d"]


def _ch(c: int, width: float) -> int:
    return max(1, round(c * width))


class CNN1d(nn.Module):
    """Three masked conv-BN-ReLU blocks (32-64-64 channels x ``width``), two masked FC layers.

    Why this shape: MNIST-1D digits are position-dependent templates, so the features are
    flattened (not globally pooled) before the classifier; BatchNorm is never masked.

    :param length: signal length (40 for MNIST-1D).
    :param num_outputs: number of classes.
    :param in_channels: input channels (a 2-D input ``(N, L)`` is treated as one channel).
    :param width: channel multiplier.
    """

    def __init__(
        self, length: int, num_outputs: int, in_channels: int = 1, width: float = 1.0
    ) -> None:
        super().__init__()
        c1, c2, c3, h = _ch(32, width), _ch(64, width), _ch(64, width), _ch(128, width)
        self.in_channels = in_channels
        self.features = nn.Sequential(
            MaskedConv1d(in_channels, c1, 5, padding=2, bias=False),
            nn.BatchNorm1d(c1),
            nn.ReLU(),
            MaskedConv1d(c1, c2, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm1d(c2),
            nn.ReLU(),
            MaskedConv1d(c2, c3, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm1d(c3),
            nn.ReLU(),
        )
        out_len = (length + 1) // 2
        out_len = (out_len + 1) // 2
        self.classifier = nn.Sequential(
            nn.Flatten(), MaskedLinear(c3 * out_len, h), nn.ReLU(), MaskedLinear(h, num_outputs)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(1)
        if x.dim() != 3 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"CNN1d expects (N, L) or (N, {self.in_channels}, L) input, got {tuple(x.shape)}"
            )
        return self.classifier(self.features(x))
