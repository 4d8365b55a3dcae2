"""Soft-target cross-entropy as a Pyro observation site: label smoothing and mixup's loss.

Both baselines train on *soft* targets: label smoothing mixes the one-hot label with the
uniform distribution, mixup mixes the one-hot labels of two points. One distribution,
:class:`SoftTargetCategorical`, covers both: its ``log_prob`` of a target ``t`` (a class
index, or a probability vector) is ``sum_c t'_c log p_c`` with ``t' = (1 - eps) t + eps / C``.

These are **not proper likelihoods**: ``exp(log_prob)`` summed over classes is below 1 for
``eps > 0`` and a probability vector is not an outcome of a categorical. Training still maximises
"ELBO-shaped" objectives (data term + weight decay), so the rest of the package (SVI trainer,
N/B scaling of the minibatch, topology updates) is reused unchanged; prediction ignores the
training loss and reads the plain Categorical ``softmax(logits)`` off the network output, as
:func:`hvgp.infer.predictive_samples` does for every classifier.

>>> import torch
>>> d = SoftTargetCategorical(logits=torch.zeros(1, 4), smoothing=0.1)
>>> round(float(d.log_prob(torch.tensor([2]))), 4)  # uniform logits: log(1/4) for any eps
-1.3863
"""

from __future__ import annotations

import math
from typing import Any

import pyro.distributions as dist
import torch
from torch import nn

from hvgp.infer import RigL
from hvgp.infer.likelihood import Likelihood
from hvgp.registry import register_model

__all__ = [
    "LabelSmoothing",
    "LabelSmoothingLikelihood",
    "SoftTargetCategorical",
    "SoftTargetLikelihood",
]


def _check_smoothing(smoothing: float, low_open: bool = False) -> float:
    ok = isinstance(smoothing, (int, float)) and not isinstance(smoothing, bool)
    ok = ok and math.isfinite(smoothing) and (0.0 < smoothing if low_open else 0.0 <= smoothing)
    if not (ok and smoothing < 1.0):
        interval = "(0, 1)" if low_open else "[0, 1)"
        raise ValueError(f"smoothing must be a number in {interval}, got {smoothing!r}")
    return float(smoothing)


class SoftTargetCategorical(dist.Categorical):
    """Categorical whose ``log_prob`` accepts class indices *or* soft targets, smoothed.

    Integer values are class indices; floating values are soft targets ``(..., C)``.

    Sampling, ``probs`` and ``logits`` are the plain Categorical's; only the training
    log-density changes (see the module docstring: not a normalised density).

    :param logits: ``(..., C)`` unnormalised log-probabilities.
    :param smoothing: label-smoothing ``eps`` in ``[0, 1)`` (0: plain soft-target CE).
    """

    def __init__(self, logits: torch.Tensor, smoothing: float = 0.0, validate_args=None) -> None:
        self.smoothing = _check_smoothing(smoothing)
        super().__init__(logits=logits, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):  # keep ``smoothing`` through expand
        new = self._get_checked_instance(SoftTargetCategorical, _instance)
        new.smoothing = self.smoothing
        return super().expand(batch_shape, _instance=new)

    def soft_target(self, value: torch.Tensor) -> torch.Tensor:
        """The smoothed target ``(1 - eps) t + eps / C`` of shape ``(..., C)``."""
        c = self.logits.shape[-1]
        if value.is_floating_point():  # soft targets: probability vectors over the classes
            if value.dim() == 0 or value.shape[-1] != c:
                raise ValueError(f"float targets are soft targets and need shape (..., {c}), got "
                                 f"{tuple(value.shape)}; pass class labels as integers")
            if (value < 0).any() or ((value.sum(-1) - 1).abs() > 1e-4).any():
                raise ValueError("soft targets must be non-negative and sum to 1 over classes")
            target = value.to(self.logits.dtype)
        else:
            labels = value.long()
            if labels.numel() and (labels.min() < 0 or labels.max() >= c):
                raise ValueError(f"class labels must lie in [0, {c}), got range "
                                 f"[{int(labels.min())}, {int(labels.max())}]")
            target = torch.nn.functional.one_hot(labels, c).to(self.logits.dtype)
        eps = self.smoothing
        return target if eps == 0.0 else (1.0 - eps) * target + eps / c

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``sum_c t'_c log softmax(logits)_c``: minus the (smoothed) soft-target CE."""
        log_p = self.logits.log_softmax(-1)  # Categorical already normalised, stay safe
        target = self.soft_target(value)
        log_p, target = torch.broadcast_tensors(log_p, target)
        return (target * log_p).sum(-1)


class SoftTargetLikelihood(Likelihood):
    """Classification likelihood trained with soft-target cross-entropy (mixup's targets).

    Observes ``y`` given as class indices ``(N,)`` or probability vectors ``(N, C)``; with
    ``smoothing=0`` and hard labels it equals :class:`hvgp.infer.CategoricalLikelihood`.

    :param smoothing: label-smoothing ``eps`` in ``[0, 1)``.
    """

    is_classification = True

    def __init__(self, smoothing: float = 0.0) -> None:
        super().__init__()
        self.smoothing = _check_smoothing(smoothing)

    def distribution(self, out: torch.Tensor) -> dist.Distribution:
        return SoftTargetCategorical(logits=out, smoothing=self.smoothing)

    def extra_repr(self) -> str:
        return f"smoothing={self.smoothing}"


class LabelSmoothingLikelihood(SoftTargetLikelihood):
    """Label smoothing (Szegedy et al. 2016): train on ``(1 - eps) onehot(y) + eps / C``.

    The training log-density of a label ``y`` is ``(1 - eps) log p_y + (eps / C) sum_c log p_c``,
    i.e. minus torch's ``cross_entropy(..., label_smoothing=eps)``. It is no longer a
    proper likelihood (it does not normalise over ``y``; it is a likelihood tempered towards
    the uniform), so the "ELBO" it trains is a regularised objective, not a bound. Prediction
    uses the plain Categorical ``softmax(logits)``.

    :param smoothing: ``eps`` in ``(0, 1)``.
    """

    def __init__(self, smoothing: float = 0.1) -> None:
        super().__init__(_check_smoothing(smoothing, low_open=True))


@register_model("label-smoothing", aliases=("ls",), options=("smoothing",),
                help="cross-entropy on smoothed labels")
class LabelSmoothing(RigL):
    """Label-smoothing baseline: the network trained with :class:`LabelSmoothingLikelihood`.

    :param net: the network.
    :param smoothing: ``eps`` in ``(0, 1)``.
    :param sparsity: global sparsity of the RigL mask (0: dense network).
    :param kw: keywords of :class:`hvgp.infer.CigL`; ``likelihood`` is fixed.
    """

    def __init__(self, net: nn.Module, smoothing: float = 0.1, *, sparsity: float = 0.0,
                 **kw: Any) -> None:
        if "likelihood" in kw:
            raise ValueError("LabelSmoothing fixes the likelihood; pass smoothing= instead")
        self.smoothing = _check_smoothing(smoothing, low_open=True)
        super().__init__(net, sparsity, likelihood=LabelSmoothingLikelihood(smoothing), **kw)
