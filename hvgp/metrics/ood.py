"""Out-of-distribution detection: how well an uncertainty score separates OOD from test data.

A calibrated model should also *know when it does not know*; the AUROC of its uncertainty as
an in-vs-out classifier is the standard single number for that.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from hvgp.metrics._validate import ProbsLike, _as_tensor
from hvgp.metrics.classification import _sample_probs, mutual_information, predictive_entropy
from hvgp.predict import PredictiveSamples

__all__ = ["ood_scores", "ood_auroc"]

Score = Literal["entropy", "mutual_information", "max_prob"]


def ood_scores(samples: ProbsLike, score: Score = "entropy") -> torch.Tensor:
    """Per-point OOD score ``(N,)``, larger = more likely out-of-distribution.

    ``entropy`` (total uncertainty), ``mutual_information`` (epistemic part) or ``max_prob``
    (one minus the top-label confidence of the mean predictive).
    """
    if score == "entropy":
        return predictive_entropy(samples)
    if score == "mutual_information":
        return mutual_information(samples)
    if score == "max_prob":
        return 1.0 - _sample_probs(samples).mean(0).max(-1).values
    raise ValueError(f"score must be 'entropy', 'mutual_information' or 'max_prob', got {score!r}")


def _scores(x: ProbsLike, name: str, score: Score) -> torch.Tensor:
    """A 1-D input is taken as precomputed scores; anything else as a predictive."""
    if not isinstance(x, PredictiveSamples):
        t = _as_tensor(x, name)
        if t.dim() == 1:
            return t
    return ood_scores(x, score)


def ood_auroc(in_dist: ProbsLike, out_dist: ProbsLike, score: Score = "entropy") -> float:
    """AUROC of detecting ``out_dist`` points among ``in_dist`` points by an uncertainty score.

    Each argument is a predictive (probs ``(N, C)``, ``(S, N, C)`` or PredictiveSamples) or an
    already computed 1-D score. 0.5 = chance, 1.0 = every OOD point is more uncertain than
    every in-distribution point; ties count one half (Mann-Whitney).
    """
    parts = []
    for name, x in (("in_dist", in_dist), ("out_dist", out_dist)):
        s = _scores(x, name, score)
        if s.numel() == 0:
            raise ValueError(f"{name} is empty")
        if not torch.isfinite(s).all():
            raise ValueError(f"{name} scores contain NaN or inf")
        parts.append(s.cpu().numpy())
    truth = np.concatenate([np.zeros(len(parts[0])), np.ones(len(parts[1]))])
    return float(roc_auc_score(truth, np.concatenate(parts)))
