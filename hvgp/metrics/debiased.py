"""Debiased L2 calibration error of Kumar, Liang & Ma, "Verified Uncertainty Calibration" (2019).

The plug-in binned calibration error is biased upwards: even a perfectly calibrated predictor
shows a positive ECE on a finite test set, because each bin's accuracy is estimated from a
few points. For the *squared* L2 error the bias of one bin is exactly the variance of its
label mean, ``acc (1 - acc) / n_b``, and Kumar et al. subtract its unbiased estimate
``acc (1 - acc) / (n_b - 1)`` bin by bin:

``CE^2 = sum_b n_b / N * [ (conf_b - acc_b)^2 - acc_b (1 - acc_b) / (n_b - 1) ]``

(bins with fewer than 2 points contribute 0). The bins are equal-mass as in their
``get_equal_bins``: the sorted confidences are split into ``n_bins`` near-equal chunks
(``np.array_split``), each boundary is the midpoint between the last value of one chunk and
the first of the next, duplicate boundaries are merged, and bins are right-closed
``(lo, hi]`` with the last edge at 1.0. This reproduces the ``uncertainty-calibration``
package (``calibration.lower_bound_scaling_ce``; ``get_calibration_error`` calls it for
continuous outputs) to rounding, ties included.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from hvgp.metrics._validate import ProbsLike, as_probs_and_labels
from hvgp.metrics.calibration import _check_bins

__all__ = ["debiased_ece"]

Mode = Literal["top-label", "marginal"]


def _kumar_edges(values: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Right edges of Kumar et al.'s equal-mass bins (midpoints between chunks, last = 1.0)."""
    v = values.sort().values
    n = v.numel()
    k = min(n_bins, n)
    sizes = torch.full((k,), n // k, dtype=torch.int64)
    sizes[: n % k] += 1  # np.array_split: the first n % k chunks are one longer
    ends = sizes.cumsum(0)[:-1].to(v.device)  # start index of chunks 2..k
    mids = (v[ends - 1] + v[ends]) / 2.0
    one = torch.ones(1, dtype=v.dtype, device=v.device)
    return torch.unique(torch.cat([mids, one]))  # sorted, duplicates merged


def _squared_ce(values: torch.Tensor, hit: torch.Tensor, n_bins: int, debias: bool) -> float:
    """Plug-in or debiased squared L2 CE of one (value, outcome) column on Kumar's bins."""
    edges = _kumar_edges(values, n_bins)
    idx = torch.searchsorted(edges, values.contiguous())  # (lo, hi]: left side of equal values
    m = edges.numel()
    count = torch.zeros(m, dtype=torch.float64, device=values.device)
    count.index_add_(0, idx, torch.ones_like(values))
    s_conf = torch.zeros_like(count).index_add_(0, idx, values)
    s_hit = torch.zeros_like(count).index_add_(0, idx, hit)
    safe = count.clamp_min(1)
    acc = s_hit / safe
    err = (s_conf / safe - acc) ** 2
    if debias:
        err = torch.where(count >= 2, err - acc * (1 - acc) / (count - 1).clamp_min(1), 0.0)
    return float((count * err).sum() / values.numel())


def debiased_ece(
    probs: ProbsLike,
    labels: Any,
    n_bins: int = 15,
    *,
    mode: Mode = "top-label",
    squared: bool = False,
    debias: bool = True,
) -> float:
    """Kumar et al.'s debiased estimate of the L2 calibration error (equal-mass bins).

    Returns the *root* ``sqrt(max(CE^2, 0))`` by default, like
    ``calibration.get_calibration_error(probs, labels, p=2, debias=True)``: a number on the
    scale of the ECE whose expectation is close to 0 for a calibrated predictor (the plug-in
    ECE is not). ``squared=True`` returns the unbiased estimate of ``CE^2`` itself, unclipped
    (it can be slightly negative; averaged over test sets it is unbiased). ``mode="top-label"``
    bins the top-label confidence against "prediction is correct"; ``mode="marginal"`` bins
    every class column against ``y == k`` and returns ``sqrt(mean_k max(CE_k^2, 0))`` (the
    package's default mode; with ``squared=True`` the mean of the unclipped ``CE_k^2``).
    ``debias=False`` gives the plug-in L2 error on the same bins, for comparison.

    Two bins of 4 points, accuracy 0.75 at confidence 0.9 and 0.25 at 0.6, label-mean
    variance ``0.75 * 0.25 / 3 = 0.0625`` each: ``0.5 (0.15^2 - 0.0625) + 0.5 (0.35^2 - 0.0625)``.

    >>> probs = [[0.9, 0.1]] * 4 + [[0.6, 0.4]] * 4
    >>> round(debiased_ece(probs, [0, 0, 0, 1, 0, 1, 1, 1], n_bins=2, squared=True), 6)
    0.01
    """
    _check_bins(n_bins, "mass", "right")
    if mode not in ("top-label", "marginal"):
        raise ValueError(f"mode must be 'top-label' or 'marginal', got {mode!r}")
    p, y = as_probs_and_labels(probs, labels)
    if mode == "top-label":
        conf, pred = p.max(-1)
        sq = _squared_ce(conf, (pred == y).to(torch.float64), n_bins, debias)
        return sq if squared else max(sq, 0.0) ** 0.5
    per_class = [_squared_ce(p[:, k].contiguous(), (y == k).to(torch.float64), n_bins, debias)
                 for k in range(p.shape[1])]
    if squared:
        return sum(per_class) / len(per_class)
    return (sum(max(s, 0.0) for s in per_class) / len(per_class)) ** 0.5
