"""Baselines that hvgp's sparse Bayesian networks are compared against.

``hvgp.baselines.gp``: GPyTorch GPs (exact, SVGP, deep GP, DSPP, NNGP kernel). Names are
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
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hvgp.baselines' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))
