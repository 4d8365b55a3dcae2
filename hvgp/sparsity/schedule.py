"""Cosine-decayed drop fraction for topology updates (RigL, Evci et al. 2020)."""

from __future__ import annotations

import math

__all__ = ["DropFractionSchedule"]


class DropFractionSchedule:
    """``alpha_t = alpha / 2 * (1 + cos(pi * t / t_end))`` for ``t <= t_end``, else 0.

    Why cosine: large rewiring early, when the mask is far from good, then a smooth
    annealing to a frozen topology at ``t_end``.

    >>> s = DropFractionSchedule(alpha=0.3, t_end=100)
    >>> s(0), round(s(50), 6), s(100), s(101)
    (0.3, 0.15, 0.0, 0.0)
    """

    def __init__(self, alpha: float = 0.3, t_end: int | None = None) -> None:
        if t_end is None:
            raise ValueError("DropFractionSchedule needs t_end (the step at which updates stop)")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
            raise TypeError(f"alpha must be a float in [0, 1], got {type(alpha).__name__}")
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"drop fraction alpha must be in [0, 1], got {alpha!r}")
        if isinstance(t_end, bool) or not isinstance(t_end, int) or t_end <= 0:
            raise ValueError(f"t_end must be a positive integer step, got {t_end!r}")
        self.alpha = float(alpha)
        self.t_end = t_end

    def __call__(self, step: int) -> float:
        """Drop fraction at ``step`` (0 once ``step >= t_end``)."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        if step >= self.t_end:
            return 0.0
        return self.alpha / 2.0 * (1.0 + math.cos(math.pi * step / self.t_end))

    def __repr__(self) -> str:
        return f"DropFractionSchedule(alpha={self.alpha}, t_end={self.t_end})"
