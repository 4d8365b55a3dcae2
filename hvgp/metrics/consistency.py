"""Consistency floor of the ECE: what a perfectly calibrated predictor would show on this test set.

The binned ECE of a finite test set is positive even for a perfectly calibrated model, and on
1000 points at 97 % accuracy this floor (about 0.008) is as large as the differences between
methods. *Consistency resampling* (Bröcker & Smith 2007, "Increasing the reliability of
reliability diagrams"; used for calibration tests by Vaicenavicius et al., AISTATS 2019)
measures it: keep the model's predicted probabilities, draw the labels from those
probabilities (a predictor that is calibrated by construction), and compute the ECE of each
resampled set with the same bins. The distribution of those ECEs is the floor; the share of
resamples at least as large as the observed ECE is the p-value of "this model is calibrated".

Only the top-label correctness enters the top-label ECE, and under the calibrated null
``P(y = argmax p) = max p``, so drawing ``correct ~ Bernoulli(confidence)`` per point is exactly
equivalent in distribution to drawing ``y ~ Categorical(p)`` and is much cheaper. The bins are
fixed by the confidences alone (also for equal-mass bins), so all resamples share one bin
index and the ECEs of all resamples are one vectorised pass.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from hvgp.metrics._validate import ProbsLike
from hvgp.metrics.calibration import (
    Binning,
    Closed,
    _bin_index,
    _ce,
    _check_bins,
    _edges,
    _top_label,
)

__all__ = ["ConsistencyFloor", "consistency_floor"]

_CHUNK_ELEMENTS = 4_000_000  # resampled outcomes held in memory at once (32 MB of float64)
_TIE_TOL = 1e-12  # a resampled ECE this close to the observed one counts as ">="


@dataclass(frozen=True)
class ConsistencyFloor:
    """Observed ECE against the ECE distribution of a calibrated predictor with its confidences.

    ``floor_mean``/``floor_std``/``floor_q95``: mean, standard deviation and 95th percentile
    of the resampled ECEs; ``p_value``: ``(k + 1) / (n_resamples + 1)`` with ``k`` the number
    of resampled ECEs ``>=`` the observed one (small: miscalibration is detectable);
    ``excess``: ``ece - floor_mean``, the part of the ECE that sampling noise does not explain.
    """

    ece: float
    floor_mean: float
    floor_std: float
    floor_q95: float
    p_value: float
    excess: float
    n_resamples: int

    def as_dict(self) -> dict[str, float]:
        """The fields as a flat dict (a table row)."""
        return {k: float(v) for k, v in asdict(self).items()}


def _row_eces(hits: torch.Tensor, idx: torch.Tensor, s_conf: torch.Tensor) -> torch.Tensor:
    """ECE of each row of ``hits (R, N)`` on fixed bins ``idx`` with confidence sums ``s_conf``."""
    s_hit = torch.zeros(hits.shape[0], s_conf.numel(), dtype=torch.float64, device=hits.device)
    s_hit.index_add_(1, idx, hits)
    return (s_hit - s_conf).abs().sum(1) / hits.shape[1]


def consistency_floor(
    probs: ProbsLike,
    labels: Any,
    n_bins: int = 10,
    n_resamples: int = 200,
    seed: int = 0,
    binning: Binning = "width",
    closed: Closed = "right",
) -> ConsistencyFloor:
    """ECE consistency floor and calibration p-value by resampling labels from ``probs``.

    Same bins as :func:`~hvgp.metrics.ece` with the same arguments. Deterministic given
    ``seed`` (a CPU generator, so the same draws on every device). Cost is ``n_resamples * N``
    Bernoulli draws: about 0.1 s for ``N = 20 000`` and 200 resamples on one CPU thread.

    >>> f = consistency_floor([[0.9, 0.1]] * 1000, [0] * 900 + [1] * 100, n_resamples=99)
    >>> f.ece < f.floor_q95 and f.p_value > 0.05  # 90 % right at 90 % confidence: calibrated
    True
    """
    _check_bins(n_bins, binning, closed)
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) \
            or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    conf, hit = _top_label(probs, labels)
    n = conf.numel()
    idx = _bin_index(conf, _edges(conf, n_bins, binning), closed)
    s_conf = torch.zeros(n_bins, dtype=torch.float64, device=conf.device).index_add_(0, idx, conf)
    observed = _ce(conf, hit, n_bins, binning, closed, "l1")  # bit-identical to ece()
    gen = torch.Generator().manual_seed(int(seed))
    chunk = max(1, _CHUNK_ELEMENTS // n)
    floors = []
    for start in range(0, n_resamples, chunk):
        rows = min(chunk, n_resamples - start)
        u = torch.rand(rows, n, generator=gen, dtype=torch.float64).to(conf.device)
        floors.append(_row_eces((u < conf).to(torch.float64), idx, s_conf).cpu())
    f = torch.cat(floors)
    k = int((f >= observed - _TIE_TOL).sum())
    mean = float(f.mean())
    return ConsistencyFloor(
        ece=observed,
        floor_mean=mean,
        floor_std=float(f.std()) if n_resamples > 1 else 0.0,
        floor_q95=float(torch.quantile(f, 0.95)),
        p_value=(k + 1) / (n_resamples + 1),
        excess=observed - mean,
        n_resamples=int(n_resamples),
    )
