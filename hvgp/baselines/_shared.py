"""Checks and recipe plumbing shared by the GP-head and post-hoc network baselines.

Why one place: every estimator must turn a wrong type, an empty batch, a shape other than the
fitted one, NaN, or a bad setting into the same named ``TypeError`` / ``ValueError`` before a
torch traceback (issue #16), classifier-only baselines must refuse regression runs up front,
and a baseline with its own training loop takes the run's optimizer recipe the same way.
(:mod:`hvgp.baselines.gp.dkl` predates this module and has its own copies.)
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import torch
from torch import nn

__all__ = ["batch_inputs", "check_positive", "network_outputs", "require_classifier",
           "run_optim"]


def check_positive(integer: bool = False, **values: Any) -> None:
    """Refuse any of ``values`` (name -> value) that is not a positive finite number (with
    ``integer``: a positive int; ``bool`` never counts as one).

    :raises ValueError: naming the first bad setting and its value.
    """
    for name, value in values.items():
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not (
                math.isfinite(value) and value > 0):
            what = "int" if integer else "number"
            raise ValueError(f"{name} must be a positive {what}, got {value!r}")


def run_optim(optim: Any, lr: float | None, weight_decay: float | None) -> Any:
    """The run's :class:`~hvgp.infer.recipes.OptimRecipe` (default one if ``None``) with
    ``lr`` / ``weight_decay`` written in where given."""
    from hvgp.infer.recipes import OptimRecipe

    optim = optim or OptimRecipe()
    changes = {k: v for k, v in (("lr", lr), ("weight_decay", weight_decay)) if v is not None}
    return replace(optim, **changes) if changes else optim


def require_classifier(name: str, likelihood: Any) -> None:
    """Refuse a non-categorical likelihood: ``name`` is a classification-only baseline.

    :raises ValueError: naming the model and the likelihood it was given.
    """
    if likelihood != "categorical":
        raise ValueError(f"{name} is a classifier; likelihood={likelihood!r} (regression data?) "
                         "is not supported")


def batch_inputs(x: Any, input_shape: tuple[int, ...] | None,
                 device: torch.device) -> torch.Tensor:
    """``x`` as a finite float32 batch on ``device`` with per-example shape ``input_shape``.

    :raises TypeError: ``x`` is not a tensor.
    :raises ValueError: not a non-empty batch, another per-example shape, or NaN/inf.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty batch (N, ...), got {tuple(x.shape)}")
    if input_shape is not None and tuple(x.shape[1:]) != tuple(input_shape):
        raise ValueError(f"x has inputs of shape {tuple(x.shape[1:])} but the model was "
                         f"fitted on {tuple(input_shape)}")
    x = x.to(device=device, dtype=torch.float32)
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or inf")
    return x


def network_outputs(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``net(x)``; an input the network cannot take is a ``ValueError`` naming its shape."""
    try:
        return net(x)
    except RuntimeError as err:
        raise ValueError(f"inputs of shape {tuple(x.shape[1:])} do not fit "
                         f"{type(net).__name__}: {err}") from err
