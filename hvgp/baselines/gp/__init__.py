"""Gaussian-process baselines (GPyTorch), each with the neural models' estimator surface.

``fit(x, y, epochs=...) -> self``, ``predict(x, num_samples=64) -> PredictiveSamples``,
``evaluate(x, y) -> dict``. Inside, GPyTorch's model / likelihood / objective stay separate
(``est.model``, ``est.likelihood``).

- :class:`ExactGPRegressor` — exact GP regression, RBF/Matérn + ARD, marginal likelihood.
- :class:`SVGPClassifier` — multi-class SVGP, softmax likelihood, k-means inducing points.
- :class:`DeepGPRegressor`, :class:`DeepGPClassifier` — two-layer doubly-stochastic deep GP
  (:class:`DeepGPModel`).
- :class:`DSPPRegressor`, :class:`DSPPClassifier` — deep sigma-point process.
- :class:`NNGPKernel`, :class:`NNGPRegressor`, :class:`NNGPClassifier` — the GP limit of a
  randomly masked ReLU MLP (what a CigL network approximates).
- :class:`DKLClassifier` — deep kernel learning: SVGP on a network's last hidden features,
  trained jointly by the ELBO (registered as the network model ``dkl``).
- :class:`SNGPClassifier` — SNGP: spectral-normalised network and a random-feature GP output
  layer (:class:`RandomFeatureGP`) with a Laplace covariance (registered as ``sngp``).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "ExactGPModel": "hvgp.baselines.gp.exact",
    "ExactGPRegressor": "hvgp.baselines.gp.exact",
    "NNGPRegressor": "hvgp.baselines.gp.exact",
    "SVGPModel": "hvgp.baselines.gp.svgp",
    "SVGPClassifier": "hvgp.baselines.gp.svgp",
    "NNGPClassifier": "hvgp.baselines.gp.svgp",
    "DeepGPModel": "hvgp.baselines.gp.deep",
    "DeepGPRegressor": "hvgp.baselines.gp.deep",
    "DeepGPClassifier": "hvgp.baselines.gp.deep",
    "DSPPModel": "hvgp.baselines.gp.dspp",
    "DSPPRegressor": "hvgp.baselines.gp.dspp",
    "DSPPClassifier": "hvgp.baselines.gp.dspp",
    "NNGPKernel": "hvgp.baselines.gp.nngp",
    "effective_weight_var": "hvgp.baselines.gp.nngp",
    "GPEstimator": "hvgp.baselines.gp._common",
    "DKLClassifier": "hvgp.baselines.gp.dkl",
    "SNGPClassifier": "hvgp.baselines.gp.sngp",
    "RandomFeatureGP": "hvgp.baselines.gp.sngp",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hvgp.baselines.gp' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))
