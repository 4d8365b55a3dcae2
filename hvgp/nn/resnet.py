"""CIFAR ResNet-18/50 and Wide-ResNet-22-2 from masked convolutions (BatchNorm unmasked)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hvgp.nn.layers import MaskedConv2d, MaskedLinear

__all__ = ["ResNet", "WideResNet", "resnet18", "resnet50", "wrn_22_2"]


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> MaskedConv2d:
    return MaskedConv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)


class _Basic(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv(cin, planes, 3, stride), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = _conv(planes, planes, 3), nn.BatchNorm2d(planes)
        self.shortcut = _shortcut(cin, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        out = planes * 4
        self.conv1, self.bn1 = _conv(cin, planes, 1), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = _conv(planes, planes, 3, stride), nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = _conv(planes, out, 1), nn.BatchNorm2d(out)
        self.shortcut = _shortcut(cin, out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        return F.relu(self.bn3(self.conv3(out)) + self.shortcut(x))


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(_conv(cin, cout, 1, stride), nn.BatchNorm2d(cout))


class ResNet(nn.Module):
    """CIFAR-style ResNet (3x3 stem, no max-pool), as in the RigL/CigL CIFAR experiments."""

    def __init__(
        self,
        block: type[nn.Module],
        num_blocks: Sequence[int],
        num_outputs: int = 10,
        in_channels: int = 3,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        planes = [max(1, round(p * width)) for p in (64, 128, 256, 512)]
        self.conv1, self.bn1 = _conv(in_channels, planes[0], 3), nn.BatchNorm2d(planes[0])
        cin, stages = planes[0], []
        for i, (p, n) in enumerate(zip(planes, num_blocks)):
            blocks = []
            for j in range(n):
                blocks.append(block(cin, p, 2 if (i > 0 and j == 0) else 1))
                cin = p * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*stages)
        self.fc = MaskedLinear(cin, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def resnet18(num_outputs: int = 10, in_channels: int = 3, width: float = 1.0) -> ResNet:
    """CIFAR ResNet-18 of masked layers."""
    return ResNet(_Basic, (2, 2, 2, 2), num_outputs, in_channels, width)


def resnet50(num_outputs: int = 10, in_channels: int = 3, width: float = 1.0) -> ResNet:
    """CIFAR ResNet-50 (bottleneck blocks) of masked layers."""
    return ResNet(_Bottleneck, (3, 4, 6, 3), num_outputs, in_channels, width)


class _WideBlock(nn.Module):
    """Pre-activation wide block (BN-ReLU-conv twice) with a 1x1 shortcut on shape change."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), _conv(cin, cout, 3, stride)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), _conv(cout, cout, 3)
        self.shortcut = None if (stride == 1 and cin == cout) else _conv(cin, cout, 1, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = F.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(o)
        out = self.conv2(F.relu(self.bn2(self.conv1(o))))
        return out + skip


class WideResNet(nn.Module):
    """WRN-depth-k for CIFAR (Zagoruyko & Komodakis); WRN-22-2 is ``depth=22, k=2``."""

    def __init__(
        self,
        depth: int = 22,
        widen: int = 2,
        num_outputs: int = 10,
        in_channels: int = 3,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        chans = [max(1, round(c * width)) for c in (16, 16 * widen, 32 * widen, 64 * widen)]
        self.conv1 = _conv(in_channels, chans[0], 3)
        blocks, cin = [], chans[0]
        for i, c in enumerate(chans[1:]):
            for j in range(n):
                blocks.append(_WideBlock(cin, c, 2 if (i > 0 and j == 0) else 1))
                cin = c
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(cin)
        self.fc = MaskedLinear(cin, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.blocks(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def wrn_22_2(num_outputs: int = 10, in_channels: int = 3, width: float = 1.0) -> WideResNet:
    """WRN-22-2 of masked layers."""
    return WideResNet(22, 2, num_outputs, in_channels, width)
