"""One-call summaries: every metric of a predictive as a flat ``dict[str, float]`` (a table row)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hvgp.metrics._validate import ProbsLike, as_probs_and_labels, as_samples
from hvgp.metrics.calibration import adaptive_ece, classwise_ece, mce
from hvgp.metrics.classification import (
    accuracy,
    brier,
    mutual_information,
    nll,
    predictive_entropy,
)
from hvgp.metrics.consistency import consistency_floor
from hvgp.metrics.debiased import debiased_ece
from hvgp.metrics.regression import crps_samples, gaussian_nll, interval_coverage, rmse

__all__ = ["classification_report", "regression_report"]


def classification_report(
    samples: ProbsLike, labels: Any, n_bins: int = 10, n_resamples: int = 200, seed: int = 0
) -> dict[str, float]:
    """accuracy, ece, mce, classwise/adaptive ECE, nll, brier, entropy, MI, then the ECE's evidence.

    ``ece_floor`` is the mean ECE a perfectly calibrated predictor with the same confidences
    would show on this many points (:func:`~hvgp.metrics.consistency_floor`, ``n_resamples``
    label resamples from a fixed ``seed``, so the report is deterministic), ``ece_excess =
    ece - ece_floor`` and ``ece_p_value`` the p-value of "this model is calibrated".
    ``ece_debiased`` is Kumar et al.'s debiased L2 calibration error on 15 equal-mass bins
    (:func:`~hvgp.metrics.debiased_ece`, the root of the debiased squared error). ``entropy``
    and ``mutual_information`` are means over points (nats); mutual information is 0 for a
    deterministic predictive.
    """
    probs, y = as_probs_and_labels(samples, labels)  # validate once, reuse below
    floor = consistency_floor(probs, y, n_bins=n_bins, n_resamples=n_resamples, seed=seed)
    return {
        "accuracy": accuracy(probs, y),
        "ece": floor.ece,  # == ece(probs, y, n_bins=n_bins), bit for bit
        "mce": mce(probs, y, n_bins=n_bins),
        "classwise_ece": classwise_ece(probs, y, n_bins=n_bins),
        "adaptive_ece": adaptive_ece(probs, y, n_bins=n_bins),
        "nll": nll(probs, y),
        "brier": brier(probs, y),
        "entropy": float(predictive_entropy(samples).mean()),
        "mutual_information": float(mutual_information(samples).mean()),
        "ece_floor": floor.floor_mean,
        "ece_excess": floor.excess,
        "ece_p_value": floor.p_value,
        "ece_debiased": debiased_ece(probs, y),
    }


def regression_report(
    samples: Any, y: Any, levels: Sequence[float] = (0.5, 0.9, 0.95)
) -> dict[str, float]:
    """rmse, nll (moment-matched Gaussian), crps and ``coverage_<pct>`` for each level.

    ``nll`` is NaN when the predictive has zero variance somewhere (a deterministic model
    without a noise scale), rather than an error, so that such a model still gets a row.
    """
    s = as_samples(samples)
    try:
        nll_value = gaussian_nll(s, y)
    except ValueError as err:
        if "variance is zero" not in str(err):
            raise
        nll_value = float("nan")
    out = {"rmse": rmse(s, y), "nll": nll_value, "crps": crps_samples(s, y)}
    for level, cov in interval_coverage(s, y, levels).items():
        out[f"coverage_{round(level * 100):d}"] = cov
    return out
