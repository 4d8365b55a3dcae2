"""scikit-learn's bundled data sets (no download): digits, breast_cancer, wine, iris, diabetes.

They come without a test split, so one is carved with a *fixed* ``test_seed`` (stratified for
classification): every training seed is evaluated on the same test rows. Inputs are
standardised per feature with train-split statistics only; diabetes targets too (the
original units are ``y * info.stats["y_std"] + info.stats["y_mean"]``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .base import ArrayDataset, build_splits, split_indices

__all__ = ["SKLEARN_SETS", "load_sklearn"]


def _loader(fn_name: str) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    def load() -> tuple[np.ndarray, np.ndarray]:
        import sklearn.datasets

        x, y = getattr(sklearn.datasets, fn_name)(return_X_y=True)
        return np.asarray(x, dtype=np.float64), np.asarray(y)

    return load


# name -> (loader, task, num_classes)
SKLEARN_SETS: dict[str, tuple[Callable[[], tuple[np.ndarray, np.ndarray]], str, int | None]] = {
    "digits": (_loader("load_digits"), "classification", 10),
    "breast_cancer": (_loader("load_breast_cancer"), "classification", 2),
    "wine": (_loader("load_wine"), "classification", 3),
    "iris": (_loader("load_iris"), "classification", 3),
    "diabetes": (_loader("load_diabetes"), "regression", None),
}


def load_sklearn(
    name: str,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    test_seed: int = 0,
) -> dict[str, ArrayDataset]:
    """Train / val / test splits of a scikit-learn bundled data set, standardised on train.

    :param name: one of :data:`SKLEARN_SETS`.
    :param seed: seed of the validation carve.
    :param val_fraction: share of the train pool held out for validation.
    :param test_fraction: share of all rows held out as the test split.
    :param test_seed: seed of the test split (fixed by default so all seeds share it).
    """
    if name not in SKLEARN_SETS:
        raise ValueError(f"unknown scikit-learn data set {name!r}; valid: {sorted(SKLEARN_SETS)}")
    load, task, num_classes = SKLEARN_SETS[name]
    x, y = load()
    if task == "classification":
        y = y.astype(np.int64)
    pool_idx, test_idx = split_indices(len(y), test_fraction, test_seed,
                                       y if task == "classification" else None)
    if len(test_idx) == 0:
        raise ValueError(f"test_fraction={test_fraction} leaves no test rows for {name!r}")
    stats: dict[str, Any] = {"test_fraction": float(test_fraction), "test_seed": int(test_seed)}
    return build_splits((x[pool_idx], y[pool_idx]), (x[test_idx], y[test_idx]), name=name,
                        task=task, num_classes=num_classes, seed=seed,
                        val_fraction=val_fraction, standardize_axes=(0,),
                        standardize_y=task == "regression", pool_index=pool_idx,
                        test_index=test_idx, stats=stats)
