"""Baselines that hvgp's sparse Bayesian networks are compared against.

``hvgp.baselines.gp``: GPyTorch GPs (exact, SVGP, deep GP, DSPP, NNGP kernel).
``hvgp.baselines.nn``: dense, MC dropout, W-DP, label smoothing, mixup, temperature scaling,
deep ensembles — each a thin layer on the CigL/RigL estimator. Names are
imported lazily so that importing this package does not import GPyTorch.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "ExactGPRegressor": "hvgp.baselines.gp",
    "SVGPClassifier": "hvgp.baselines.gp",
    "DeepGPModel": "hvgp.baselines.gp",
    "DeepGPRegressor": "hvgp.baselines.gp",
    "DeepGPClassifier": "hvgp.baselines.gp",
    "DSPPRegressor": "hvgp.baselines.gp",
    "DSPPClassifier": "hvgp.baselines.gp",
    "NNGPKernel": "hvgp.baselines.gp",
    "NNGPRegressor": "hvgp.baselines.gp",
    "NNGPClassifier": "hvgp.baselines.gp",
    "make_estimator": "hvgp.baselines.nn",
    "ESTIMATORS": "hvgp.baselines.nn",
    "Dense": "hvgp.baselines.nn",
    "WDP": "hvgp.baselines.nn",
    "MCDropout": "hvgp.baselines.nn",
    "LabelSmoothing": "hvgp.baselines.nn",
    "Mixup": "hvgp.baselines.nn",
    "TemperatureScaled": "hvgp.baselines.nn",
    "DeepEnsemble": "hvgp.baselines.nn",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hvgp.baselines' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))
