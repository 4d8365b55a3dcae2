"""Masked layers and the architectures built from them (pure torch, no sampling here)."""

from hvgp.nn.architectures import ARCHITECTURES, build_model
from hvgp.nn.cnn import CNN1d
from hvgp.nn.layers import (
    MaskedConv1d,
    MaskedConv2d,
    MaskedLayer,
    MaskedLinear,
    masked_layers,
    to_masked,
)
from hvgp.nn.mlp import MLP
from hvgp.nn.resnet import ResNet, WideResNet, resnet18, resnet50, wrn_22_2

__all__ = [
    "ARCHITECTURES",
    "CNN1d",
    "MLP",
    "MaskedConv1d",
    "MaskedConv2d",
    "MaskedLayer",
    "MaskedLinear",
    "ResNet",
    "WideResNet",
    "build_model",
    "masked_layers",
    "resnet18",
    "resnet50",
    "to_masked",
    "wrn_22_2",
]
