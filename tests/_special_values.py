"""Test helper: random tensors with NaN, inf, signed zeros and other edge values mixed in."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def with_special_values(x: torch.Tensor, values: Sequence[float], frac: float,
                        generator: torch.Generator) -> torch.Tensor:
    """``x`` (contiguous) with about ``frac`` of its entries replaced, in place, by entries
    drawn from ``values``; returns ``x``."""
    flat = x.view(-1)
    picks = torch.randint(0, len(values), (flat.numel(),), generator=generator)
    chosen = torch.rand(flat.numel(), generator=generator) < frac
    flat[chosen] = torch.tensor(values, dtype=x.dtype)[picks[chosen]]
    return x
