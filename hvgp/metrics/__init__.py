"""Calibration and predictive metrics shared by every hvgp model.

Every function takes plain probabilities ``(N, C)`` (torch or NumPy) or
:class:`~hvgp.predict.PredictiveSamples`, and validates its input: NaN/inf, wrong shapes,
rows not summing to 1 and labels out of range raise ``ValueError`` naming the problem.
Computation is float64 on the input's device.

Evidence for a calibration claim: :func:`consistency_floor` (the ECE a perfectly calibrated
predictor with the same confidences shows on this many points, and the p-value of "this model
is calibrated"), :func:`debiased_ece` (Kumar et al. 2019's debiased L2 calibration error) and,
across seeds, :func:`paired_difference` / :func:`paired_table` (paired mean difference with a
t interval, paired t and Wilcoxon tests, wins per seed), which take per-seed numbers instead.
"""

from hvgp.metrics.calibration import (
    adaptive_ece,
    bootstrap_ece,
    bootstrap_ece_diff,
    classwise_ece,
    confidence_histogram,
    ece,
    mce,
    reliability_bins,
)
from hvgp.metrics.classification import (
    accuracy,
    brier,
    mutual_information,
    nll,
    predictive_entropy,
)
from hvgp.metrics.consistency import ConsistencyFloor, consistency_floor
from hvgp.metrics.debiased import debiased_ece
from hvgp.metrics.ood import ood_auroc, ood_scores
from hvgp.metrics.regression import (
    crps_samples,
    gaussian_nll,
    interval_coverage,
    pit_histogram,
    pit_values,
    predictive_quantiles,
    rmse,
)
from hvgp.metrics.report import classification_report, regression_report
from hvgp.metrics.significance import (
    PairedDifference,
    paired_difference,
    paired_differences,
    paired_table,
)
from hvgp.metrics.temperature import TemperatureScaling

__all__ = [
    "accuracy",
    "adaptive_ece",
    "bootstrap_ece",
    "bootstrap_ece_diff",
    "brier",
    "classification_report",
    "classwise_ece",
    "confidence_histogram",
    "consistency_floor",
    "ConsistencyFloor",
    "crps_samples",
    "debiased_ece",
    "ece",
    "gaussian_nll",
    "interval_coverage",
    "mce",
    "mutual_information",
    "nll",
    "ood_auroc",
    "ood_scores",
    "paired_difference",
    "paired_differences",
    "paired_table",
    "PairedDifference",
    "pit_histogram",
    "pit_values",
    "predictive_entropy",
    "predictive_quantiles",
    "regression_report",
    "reliability_bins",
    "rmse",
    "TemperatureScaling",
]
