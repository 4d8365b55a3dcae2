"""Input checks shared by every metric: turn user input into float64 tensors or fail clearly.

Metrics are compared across methods at the 0.01 level, so a silently mis-shaped label vector
or a row of logits passed as probabilities must be an error that names the problem, not a
plausible-looking number.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from hvgp.predict import PredictiveSamples

__all__ = ["ProbsLike", "as_probs", "as_labels", "as_probs_and_labels", "as_samples", "as_targets"]

ProbsLike = Any  # torch.Tensor | np.ndarray | PredictiveSamples | nested lists

_SUM_TOL = 1e-3  # same tolerance as PredictiveSamples
_NEG_TOL = 1e-6


def _as_tensor(x: Any, name: str, device: torch.device | None = None) -> torch.Tensor:
    """Any array-like -> float64 tensor (kept on its device unless ``device`` is given)."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
    elif isinstance(x, (np.ndarray, list, tuple, float, int, np.number)):
        try:
            t = torch.as_tensor(np.asarray(x, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must be numeric array-like, got {type(x).__name__}") from err
    else:
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must be real-valued, got dtype {t.dtype}")
    t = t.to(torch.float64)
    return t if device is None else t.to(device)


def as_probs(probs: ProbsLike, name: str = "probs") -> torch.Tensor:
    """Class probabilities ``(N, C)`` as float64; PredictiveSamples are reduced by ``.mean()``.

    :raises ValueError: wrong shape, NaN/inf, negative entries, rows not summing to 1.
    """
    if isinstance(probs, PredictiveSamples):
        if not probs.is_classification:
            raise ValueError(f"{name}: expected classification samples (probs=), got regression")
        probs = probs.mean()
    p = _as_tensor(probs, name)
    if p.dim() != 2:
        raise ValueError(f"{name} must have shape (N, C), got {tuple(p.shape)}")
    if p.shape[0] == 0:
        raise ValueError(f"{name} is empty (N = 0)")
    if p.shape[1] < 2:
        raise ValueError(f"{name} needs at least 2 classes (C >= 2), got C = {p.shape[1]}")
    if not torch.isfinite(p).all():
        raise ValueError(f"{name} contain NaN or inf")
    if (p < -_NEG_TOL).any():
        raise ValueError(f"{name} contain negative entries (min {p.min().item():.3g})")
    worst = (p.sum(-1) - 1).abs().max().item()
    if worst > _SUM_TOL:
        raise ValueError(
            f"{name} rows must sum to 1 (worst row is off by {worst:.3g}); "
            "did you pass logits? apply softmax first"
        )
    return p.clamp(0.0, 1.0)


def as_labels(labels: Any, n: int, num_classes: int, device: torch.device) -> torch.Tensor:
    """Integer class labels ``(N,)`` in ``[0, C)`` as int64 on ``device``.

    :raises ValueError: wrong length/shape, non-integer values, labels out of range.
    """
    if isinstance(labels, torch.Tensor):
        y = labels.detach()
    else:
        y = torch.as_tensor(np.asarray(labels))
    if y.dtype == torch.bool or y.is_complex():
        raise TypeError(f"labels must be integers, got dtype {y.dtype}")
    if y.dim() != 1:
        raise ValueError(f"labels must have shape (N,), got {tuple(y.shape)}")
    if y.shape[0] != n:
        raise ValueError(f"labels have {y.shape[0]} entries but probs have N = {n} rows")
    if y.is_floating_point():
        if not torch.isfinite(y).all() or (y != y.round()).any():
            raise ValueError("labels must be integer class indices (found non-integer values)")
    y = y.to(device=device, dtype=torch.int64)
    if n and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}); "
            f"found range [{y.min().item()}, {y.max().item()}]"
        )
    return y


def as_probs_and_labels(probs: ProbsLike, labels: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a (probs, labels) pair together (same N, labels within the C classes)."""
    p = as_probs(probs)
    return p, as_labels(labels, p.shape[0], p.shape[1], p.device)


def as_samples(samples: Any, name: str = "samples") -> PredictiveSamples:
    """Regression predictive: PredictiveSamples(loc=...), a ``(loc, scale)`` pair or means ``(N,)``.

    A bare tensor/array is a deterministic predictive (``S = 1``, zero scale).
    """
    if isinstance(samples, PredictiveSamples):
        if samples.is_classification:
            raise ValueError(f"{name}: expected regression samples (loc=), got classification")
        loc, scale = samples.loc, samples.scale
    elif isinstance(samples, tuple) and len(samples) == 2:
        loc, scale = (_as_tensor(s, name) for s in samples)
        if scale.dim() == 1 and loc.dim() == 1:
            scale = scale.unsqueeze(0)
    else:
        loc, scale = _as_tensor(samples, name), None
    loc = _as_tensor(loc, name)
    scale = None if scale is None else _as_tensor(scale, name, loc.device)
    if scale is not None and (scale < 0).any():
        raise ValueError(f"{name}: scale must be non-negative")
    return PredictiveSamples(loc=loc, scale=scale)


def as_targets(y: Any, n: int, device: torch.device) -> torch.Tensor:
    """Regression targets ``(N,)`` float64 on ``device``; finite, same N as the predictive."""
    t = _as_tensor(y, "y", device)
    if t.dim() == 2 and t.shape[1] == 1:
        t = t.squeeze(1)
    if t.dim() != 1:
        raise ValueError(f"y must have shape (N,), got {tuple(t.shape)}")
    if t.shape[0] != n:
        raise ValueError(f"y has {t.shape[0]} entries but the predictive has N = {n} points")
    if not torch.isfinite(t).all():
        raise ValueError("y contains NaN or inf")
    return t
