"""One-call summaries: every metric of a predictive as a flat ``dict[str, float]`` (a table row)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hvgp.metrics._validate import ProbsLike, as_probs_and_labels, as_samples
from hvgp.metrics.calibration import adaptive_ece, classwise_ece, ece, mce
from hvgp.metrics.classification import (
    accuracy,
    brier,
    mutual_information,
    nll,
    predictive_entropy,
)
from hvgp.metrics.regression import crps_samples, gaussian_nll, interval_coverage, rmse

__all__ = ["classification_report", "regression_report"]


def classification_report(samples: ProbsLike, labels: Any, n_bins: int = 10) -> dict[str, float]:
    """accuracy, ece, mce, classwise_ece, adaptive_ece, nll, brier, entropy, mutual_information.

    ``entropy`` and ``mutual_information`` are means over points (nats); mutual information
    is 0 for a deterministic predictive.
    """
    probs, y = as_probs_and_labels(samples, labels)  # validate once, reuse below
    return {
        "accuracy": accuracy(probs, y),
        "ece": ece(probs, y, n_bins=n_bins),
        "mce": mce(probs, y, n_bins=n_bins),
        "classwise_ece": classwise_ece(probs, y, n_bins=n_bins),
        "adaptive_ece": adaptive_ece(probs, y, n_bins=n_bins),
        "nll": nll(probs, y),
        "brier": brier(probs, y),
        "entropy": float(predictive_entropy(samples).mean()),
        "mutual_information": float(mutual_information(samples).mean()),
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
