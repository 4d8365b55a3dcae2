"""``Estimator``: the one surface every hvgp model has, written once.

``fit`` (on a loader, or arrays for the GPs), ``predict -> PredictiveSamples``,
``predict_loader``, ``evaluate``, ``sparsity``, ``nonzero``, ``state_dict`` /
``load_state_dict``. :func:`hvgp.experiment.run` uses only these, so a new model needs no
special case there. Subclasses implement ``fit``, ``predict`` and say which networks they
predict with (:meth:`Estimator.prediction_nets`); the rest follows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from hvgp.predict import PredictiveSamples

__all__ = ["Estimator", "loader_arrays", "net_sparsity"]


def loader_arrays(loader: Iterable) -> tuple[torch.Tensor, torch.Tensor]:
    """All batches of ``loader`` joined: inputs flattened to ``(N, D)``, and the targets."""
    xs, ys = zip(*[(x.flatten(1), y) for x, y in loader])
    return torch.cat(xs), torch.cat(ys)


def net_sparsity(net: nn.Module) -> float:
    """Fraction of maskable weights outside the deterministic mask M (0 for unmasked nets).

    An active weight that happens to be zero (e.g. grown and never updated) still counts as
    active: it is stored and computed with, so it is part of the model's size.
    """
    from hvgp.nn.layers import masked_layers

    layers = masked_layers(net).values()
    total = sum(layer.weight_mask.numel() for layer in layers)
    return sum(int((~layer.weight_mask).sum()) for layer in layers) / total if total else 0.0


class Estimator:
    """Base of every model; see the module docstring for the surface."""

    def fit(self, data: Any, epochs: int, **kw: Any) -> Estimator:
        """Train on ``data`` (a loader of ``(x, y)`` batches) for ``epochs`` epochs."""
        raise NotImplementedError

    def predict(self, x: torch.Tensor, num_samples: int | None = None,
                **kw: Any) -> PredictiveSamples:
        """Predictive samples at inputs ``x``."""
        raise NotImplementedError

    def prediction_nets(self) -> list[nn.Module]:
        """The networks ``predict`` uses (none for a GP; one per member for an ensemble)."""
        return []

    def predict_loader(self, loader: Iterable, num_samples: int | None = None,
                       **kw: Any) -> tuple[PredictiveSamples, torch.Tensor]:
        """Predictions for every batch of ``loader`` joined along N (on the CPU), with targets."""
        parts, ys = [], []
        for x, y in loader:
            parts.append(self.predict(x, num_samples, **kw).to("cpu"))
            ys.append(y.cpu())
        return PredictiveSamples.concat(parts), torch.cat(ys)

    def evaluate(self, loader: Iterable, num_samples: int | None = None,
                 **kw: Any) -> dict[str, float]:
        """Accuracy/ECE/NLL/Brier... (classification) or RMSE/NLL/CRPS (regression)."""
        from hvgp.metrics.score import score

        return score(*self.predict_loader(loader, num_samples, **kw))

    def run_samples(self, requested: int) -> int | None:
        """Predictive samples a run asking for ``requested`` uses (networks: 1 means the
        deterministic prediction, ``None``)."""
        return None if requested <= 1 else requested

    def sparsity(self) -> float:
        """Mean structural sparsity of the prediction networks (0 without any)."""
        nets = self.prediction_nets()
        return sum(net_sparsity(n) for n in nets) / len(nets) if nets else 0.0

    def nonzero(self) -> int:
        """Non-zero parameters of the prediction network(s): the model's stored size."""
        return sum(int((p != 0).sum()) for n in self.prediction_nets() for p in n.parameters())

    def state_dict(self) -> dict[str, Any]:
        """What ``load_state_dict`` needs to predict again (saved as a run's ``model.pt``)."""
        raise NotImplementedError(f"{type(self).__name__} has no state_dict")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the prediction state that :meth:`state_dict` returned."""
        raise ValueError(f"re-evaluating a saved {type(self).__name__} is not supported; its "
                         "metrics.json has the scores")
