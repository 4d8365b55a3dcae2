"""``score(samples, labels)``: the one scorer every estimator and run reports with.

Dispatches on the predictive: class probabilities get :func:`classification_report`, a
location/scale predictive :func:`regression_report`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from hvgp.metrics.report import classification_report, regression_report
from hvgp.predict import PredictiveSamples

__all__ = ["score"]


def score(samples: PredictiveSamples, labels: Any) -> dict[str, float]:
    """The classification or regression report of ``samples`` against ``labels``."""
    if isinstance(labels, (np.ndarray, list, tuple)):
        labels = torch.as_tensor(np.asarray(labels))
    if samples.is_classification:
        return classification_report(samples, labels)
    return regression_report(samples, labels)
