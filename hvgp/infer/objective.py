"""The training objective: negative ELBO per data point of a sparse BNN.

Shaped like GPyTorch's ``VariationalELBO(likelihood, model, num_data)``: the objective
knows N (the data plate is scaled to it, and the loss is divided by it so learning rates
mean the usual thing); the model and guide stay the program's.
"""

from __future__ import annotations

import warnings
from typing import Any

import pyro
import torch
from pyro.infer import Trace_ELBO

__all__ = ["NegativeELBO"]


class NegativeELBO:
    """``-ELBO / N`` of ``bnn`` (model and guide) on a minibatch.

    :param bnn: a :class:`hvgp.infer.SparseBNN` (anything with ``model`` and ``guide``).
    :param num_data: N, the training-set size; ``None``: ``bnn.data_size`` if set, else the
        minibatch is the data set.
    """

    def __init__(self, bnn: Any, num_data: int | None = None) -> None:
        self.bnn, self.num_data = bnn, num_data
        self._elbo = Trace_ELBO(max_plate_nesting=1)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Differentiable loss (a 0-d tensor)."""
        # Pyro's argument validation is off here (8 % of a CNN step on CPU): the trainer and
        # the likelihood check inputs and labels themselves, and every distribution of the
        # program is built from valid parameters. Non-finite logits still stop training
        # (NonFiniteLossError) through the loss value.
        n = self.num_data if self.num_data is not None else getattr(self.bnn, "data_size", None)
        with warnings.catch_warnings(), pyro.validation_enabled(False):
            # Z is model-only by design (q(Z) = p(Z)); Pyro's validation would warn about it.
            warnings.filterwarnings("ignore", "Found vars in model but not guide")
            elbo = self._elbo.differentiable_loss(self.bnn.model, self.bnn.guide, x, y, n)
        return elbo / (n or x.shape[0])
