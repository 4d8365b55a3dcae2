"""Weight priors of the sparse BNN, as objects the Pyro program asks for a distribution.

:class:`hvgp.infer.SparseBNN` masks the prior to the kept active weights and makes it an
event (``.mask(keep).to_event(k)``); a prior only says what the per-weight distribution is,
so a new prior is one class passed as ``prior=``, with no edit to the model.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch

__all__ = ["GaussianPrior", "Prior", "prior_scale_from_weight_decay"]


def prior_scale_from_weight_decay(weight_decay: float, data_size: int) -> float:
    """Prior std ``s`` whose ELBO / N equals mean NLL + (weight_decay / 2) ||w||^2.

    ELBO loss / N = (N/B) sum_batch NLL / N + ||w||^2 / (2 s^2 N) + const
                  = mean NLL + (1 / (2 s^2 N)) ||w||^2 + const,
    whose gradient is that of mean NLL plus ``lambda w`` when ``lambda = 1 / (s^2 N)``.
    ``weight_decay = 0`` (no decay) is the limit ``s = inf``: a flat prior.
    """
    if not (weight_decay >= 0 and math.isfinite(weight_decay)):
        raise ValueError(f"weight_decay must be >= 0 and finite, got {weight_decay!r}")
    if int(data_size) < 1:
        raise ValueError(f"data_size must be a positive integer, got {data_size!r}")
    if weight_decay == 0:
        return math.inf
    return 1.0 / math.sqrt(weight_decay * int(data_size))


class Prior:
    """Base class: ``distribution(name, shape, zero)`` is the prior of one layer's weight."""

    def distribution(self, name: str, shape: torch.Size, zero: torch.Tensor
                     ) -> dist.Distribution:
        """Per-weight prior of layer ``name`` (batch shape ``shape``; ``zero`` sets the
        device and dtype)."""
        raise NotImplementedError


class GaussianPrior(Prior):
    """``Normal(0, scale)`` on every weight.

    :param scale: prior std; :meth:`from_weight_decay` picks the one that matches SGD
        weight decay. ``inf`` (weight decay 0) is the flat prior: its log density is taken
        as 0, so it adds nothing to the ELBO and pulls no weight towards 0.
    """

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = float(scale)
        if not self.scale > 0:  # NaN fails too
            raise ValueError(f"prior_scale must be positive (inf: flat), got {scale!r}")

    @classmethod
    def from_weight_decay(cls, weight_decay: float, num_data: int) -> GaussianPrior:
        """The prior whose ELBO / N gradient is weight decay ``weight_decay`` on N points."""
        return cls(prior_scale_from_weight_decay(weight_decay, num_data))

    def distribution(self, name: str, shape: torch.Size, zero: torch.Tensor
                     ) -> dist.Distribution:
        if math.isinf(self.scale):  # flat: a unit Normal whose log density is masked out
            return dist.Normal(zero, zero + 1.0).expand(shape).mask(False)
        return dist.Normal(zero, zero + self.scale).expand(shape)

    def __repr__(self) -> str:
        return f"GaussianPrior(scale={self.scale:.6g})"
