"""Small shared helpers: device resolution, seeding, a cheap finiteness check."""

from __future__ import annotations

import math
import random

import numpy as np
import torch

__all__ = ["all_finite", "resolve_device", "seed_everything"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto" | "cpu" | "cuda[:i]"`` into a :class:`torch.device`.

    ``auto`` picks CUDA when present. Asking for CUDA on a machine without it is an error
    that says so, rather than a silent fall-back to the CPU.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"device must be a string or torch.device, got {type(device).__name__}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"device={device!r} was requested but CUDA is not available on this machine "
                "(torch.cuda.is_available() is False); use --device cpu or --device auto."
            )
        return torch.device(device)
    if device == "cpu":
        return torch.device("cpu")
    raise ValueError(f"unknown device {device!r}; expected 'auto', 'cpu' or 'cuda[:index]'")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy, torch (all devices) and Pyro's RNGs in one call."""
    import pyro

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    pyro.set_rng_seed(seed)


def all_finite(x: torch.Tensor) -> bool:
    """Whether every entry of the float tensor ``x`` is finite.

    Why not ``torch.isfinite(x).all()`` alone: that is five kernels, run on every training
    batch and its targets (16 against 2 us on an MNIST-1D batch). A sum is finite only when
    every entry is; it is not finite when an entry is NaN/inf or when finite entries overflow
    it, and only then does the entry-wise check run.
    """
    return math.isfinite(float(x.sum())) or bool(torch.isfinite(x).all())
