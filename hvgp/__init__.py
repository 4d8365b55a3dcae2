"""hvgp: calibrated sparse neural networks as probabilistic programs (CigL in Pyro).

Public names are imported lazily so that ``import hvgp`` stays fast and each sub-package
(``sparsity``, ``nn``, ``infer``, ``metrics``, ``data``, ``baselines``) can be used alone.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "PredictiveSamples": "hvgp.predict",
    "resolve_device": "hvgp.utils",
    "seed_everything": "hvgp.utils",
    "RunConfig": "hvgp.config",
    "load_config": "hvgp.config",
    # sparse topology
    "SparseTopology": "hvgp.sparsity",
    "make_updater": "hvgp.sparsity",
    "allocate_counts": "hvgp.sparsity",
    # networks and inference
    "build_model": "hvgp.nn",
    "CigL": "hvgp.infer",
    "RigL": "hvgp.infer",
    "SparseBNN": "hvgp.infer",
    "NonFiniteLossError": "hvgp.infer",
    # data
    "get_dataset": "hvgp.data",
    "get_loaders": "hvgp.data",
    "list_datasets": "hvgp.data",
    "DatasetInfo": "hvgp.data",
    "ArrayDataset": "hvgp.data",
    # one estimator surface, one registry, the recipe objects
    "Estimator": "hvgp.estimator",
    "register_model": "hvgp.registry",
    "make_estimator": "hvgp.registry",
    "TopologyRecipe": "hvgp.infer",
    "OptimRecipe": "hvgp.infer",
    "AveragingRecipe": "hvgp.infer",
    "GaussianPrior": "hvgp.infer",
    # the shared experiment path
    "compare": "hvgp.experiment",
    "run": "hvgp.experiment",
    "load_run": "hvgp.experiment",
    # export, safety, scale-out
    "to_sparse": "hvgp.export",
    "save_model": "hvgp.export",
    "load_model": "hvgp.export",
    "ArchSpec": "hvgp.export",
    "CorruptCheckpointError": "hvgp.infer.checkpoint",
    "UnsafeCheckpointError": "hvgp.infer.checkpoint",
    "fit_distributed": "hvgp.distributed",
    # evaluation
    "classification_report": "hvgp.metrics",
    "regression_report": "hvgp.metrics",
    "TemperatureScaling": "hvgp.metrics",
}

#: sub-packages reachable as attributes (``hvgp.metrics`` etc.) without an explicit import
_SUBMODULES = ("sparsity", "nn", "infer", "data", "metrics", "plots", "baselines", "predict",
               "experiment", "registry", "estimator")


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"hvgp.{name}")
    raise AttributeError(f"module 'hvgp' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS) + list(_SUBMODULES))
