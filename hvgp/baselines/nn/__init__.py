"""Neural baselines on the package's own SVI trainer and estimator (no second training loop).

Dense, MC dropout, W-DP, label smoothing, mixup, temperature scaling, deep ensembles and
last-layer Laplace (laplace-torch, on a RigL network), each
with CigL's surface (``fit`` / ``predict`` / ``predict_loader`` / ``evaluate`` /
``sparsity``), each registered by name in :mod:`hvgp.registry` (``make_estimator`` builds
one by name; ``ESTIMATORS`` lists the network and wrapper names).
"""

from typing import Any

from hvgp.baselines.nn._common import stack_samples
from hvgp.baselines.nn.dense import WDP, Dense
from hvgp.baselines.nn.dropout import DropoutBefore, MCDropout, add_mc_dropout
from hvgp.baselines.nn.ensemble import DeepEnsemble
from hvgp.baselines.nn.laplace_approx import LastLayerLaplace
from hvgp.baselines.nn.mixup import Mixup, MixupLoader
from hvgp.baselines.nn.smoothing import (
    LabelSmoothing,
    LabelSmoothingLikelihood,
    SoftTargetCategorical,
    SoftTargetLikelihood,
)
from hvgp.baselines.nn.temperature import TemperatureScaled
from hvgp.registry import make_estimator

__all__ = [
    "ESTIMATORS",
    "DeepEnsemble",
    "Dense",
    "DropoutBefore",
    "LabelSmoothing",
    "LabelSmoothingLikelihood",
    "LastLayerLaplace",
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


def __getattr__(name: str) -> Any:
    if name == "ESTIMATORS":  # read lazily: the registry fills while this package imports
        from hvgp.registry import model_names

        return model_names("network") + model_names("wrapper")
    raise AttributeError(f"module 'hvgp.baselines.nn' has no attribute {name!r}")
