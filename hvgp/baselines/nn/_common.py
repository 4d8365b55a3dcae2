"""Small helpers shared by the neural baselines: fixed keyword arguments, sample stacking."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from hvgp.predict import PredictiveSamples

__all__ = ["fix_kwargs", "stack_samples"]


def fix_kwargs(kw: dict[str, Any], owner: str, **fixed: Any) -> dict[str, Any]:
    """Set the keyword arguments that *define* a baseline; a conflicting value is an error.

    Why: ``Dense(net, drop_rate=0.1)`` would silently be W-DP; saying so beats ignoring it.
    """
    for key, value in fixed.items():
        if key in kw and kw[key] != value:
            raise ValueError(f"{owner} fixes {key}={value!r}; got {key}={kw[key]!r}")
        kw[key] = value
    return kw


def stack_samples(parts: Sequence[PredictiveSamples]) -> PredictiveSamples:
    """Join predictives of several models along the *sample* axis S (an ensemble's mixture).

    >>> a = PredictiveSamples(probs=torch.tensor([[[1.0, 0.0]]]))
    >>> stack_samples([a, a]).num_samples
    2
    """
    if not parts:
        raise ValueError("nothing to stack")
    kinds = {p.is_classification for p in parts}
    if len(kinds) != 1:
        raise ValueError("cannot stack classification (probs) with regression (loc) samples")
    points = {p.num_points for p in parts}
    if len(points) != 1:
        raise ValueError(f"members predicted different numbers of points: {sorted(points)}")
    if parts[0].is_classification:
        return PredictiveSamples(probs=torch.cat([p.probs for p in parts], 0))
    return PredictiveSamples(loc=torch.cat([p.loc for p in parts], 0),
                             scale=torch.cat([p.scale for p in parts], 0))
