"""Neural baselines on the package's own SVI trainer and estimator (no second training loop).

Dense, MC dropout, W-DP, label smoothing, mixup, temperature scaling and deep ensembles, each
with CigL's surface (``fit`` / ``predict`` / ``predict_loader`` / ``evaluate`` /
``sparsity``) and a registry :func:`make_estimator` the CLI and ``hvgp.compare`` call by name.
"""

from hvgp.baselines.nn._common import stack_samples
from hvgp.baselines.nn.dense import WDP, Dense
from hvgp.baselines.nn.dropout import DropoutBefore, MCDropout, add_mc_dropout
from hvgp.baselines.nn.ensemble import DeepEnsemble
from hvgp.baselines.nn.mixup import Mixup, MixupLoader
from hvgp.baselines.nn.registry import ESTIMATORS, make_estimator
from hvgp.baselines.nn.smoothing import (
    LabelSmoothing,
    LabelSmoothingLikelihood,
    SoftTargetCategorical,
    SoftTargetLikelihood,
)
from hvgp.baselines.nn.temperature import TemperatureScaled

__all__ = [
    "ESTIMATORS",
    "DeepEnsemble",
    "Dense",
    "DropoutBefore",
    "LabelSmoothing",
    "LabelSmoothingLikelihood",
    "MCDropout",
    "Mixup",
    "MixupLoader",
    "SoftTargetCategorical",
    "SoftTargetLikelihood",
    "TemperatureScaled",
    "WDP",
    "add_mc_dropout",
    "make_estimator",
    "stack_samples",
]
