"""Proper scores and uncertainty decompositions for classification predictives.

Accuracy, NLL and Brier judge the mean predictive; entropy and mutual information split its
uncertainty into total and epistemic parts, which is what separates a Bayesian sparse net
from a deterministic one with the same accuracy.
"""

from __future__ import annotations

from typing import Any

import torch

from hvgp.metrics._validate import ProbsLike, _as_tensor, as_probs, as_probs_and_labels
from hvgp.predict import PredictiveSamples

__all__ = ["accuracy", "nll", "brier", "predictive_entropy", "mutual_information"]

_LOG_FLOOR = 1e-12  # probabilities are floored here before the log: NLL <= 27.6 nats per point


def accuracy(probs: ProbsLike, labels: Any) -> float:
    """Fraction of points whose arg-max class is the label (ties go to the first class)."""
    p, y = as_probs_and_labels(probs, labels)
    return float((p.argmax(-1) == y).to(torch.float64).mean())


def nll(probs: ProbsLike, labels: Any) -> float:
    """Mean negative log predictive probability of the label (nats), ``-mean log p[y]``.

    For PredictiveSamples this is the NLL of the Bayesian model average ``E_s p_s``.
    """
    p, y = as_probs_and_labels(probs, labels)
    return float(-p.gather(1, y[:, None]).clamp_min(_LOG_FLOOR).log().mean())


def brier(probs: ProbsLike, labels: Any) -> float:
    """Multi-class Brier score ``mean_n sum_c (p_nc - 1[y_n = c])^2`` (range [0, 2])."""
    p, y = as_probs_and_labels(probs, labels)
    onehot = torch.nn.functional.one_hot(y, p.shape[1]).to(p)
    return float(((p - onehot) ** 2).sum(-1).mean())


def _sample_probs(samples: Any) -> torch.Tensor:
    """``(S, N, C)`` float64 probabilities from PredictiveSamples, a 3-D array or ``(N, C)``."""
    if isinstance(samples, PredictiveSamples):
        if not samples.is_classification:
            raise ValueError("expected classification samples (probs=), got regression")
        p = samples.probs.detach().to(torch.float64)
    else:
        p = _as_tensor(samples, "probs")
        if p.dim() == 3:
            p = PredictiveSamples(probs=p).probs  # reuse its validation
        elif p.dim() == 2:
            p = as_probs(p)[None]
        else:
            raise ValueError(f"probs must have shape (N, C) or (S, N, C), got {tuple(p.shape)}")
    return p.clamp(0.0, 1.0)


def _entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy over the last axis in nats, with ``0 log 0 = 0``."""
    return -torch.special.xlogy(p, p).sum(-1)


def predictive_entropy(samples: ProbsLike) -> torch.Tensor:
    """Entropy of the mean predictive per point, ``(N,)`` nats: total uncertainty."""
    return _entropy(_sample_probs(samples).mean(0))


def mutual_information(samples: ProbsLike) -> torch.Tensor:
    """BALD mutual information ``H[E_s p_s] - E_s H[p_s]`` per point, ``(N,)`` nats.

    The epistemic part of the uncertainty: zero for a deterministic predictive (``S = 1`` or
    plain ``(N, C)`` probabilities), large where the samples disagree.
    """
    p = _sample_probs(samples)
    return (_entropy(p.mean(0)) - _entropy(p).mean(0)).clamp_min(0.0)
