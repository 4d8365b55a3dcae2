"""Shared data and checks of the GP-head / post-hoc baseline tests (SNGP, Laplace)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from hvgp.data import get_loaders
from hvgp.metrics import nll


def moons_loaders() -> tuple[Any, Any, Any, Any]:
    """Noisy two moons: 300 train / 100 val / 300 test points (loaders and info)."""
    return get_loaders("moons", batch_size=32, seed=0, n=400, n_test=300, noise=0.25,
                       val_fraction=0.25)


def assert_beats_class_frequency(est: Any, train: Any, test: Any) -> dict[str, float]:
    """``est`` on ``test`` beats always predicting the training class frequencies by 0.25 in
    accuracy and in NLL; returns its report."""
    report = est.evaluate(test)
    y_train, y_test = train.dataset.y, test.dataset.y
    k = int(y_train.max()) + 1
    freq = torch.bincount(y_train, minlength=k).double() / len(y_train)
    assert report["accuracy"] > float((y_test == freq.argmax()).double().mean()) + 0.25, report
    assert report["nll"] < nll(freq.expand(len(y_test), k), y_test) - 0.25, report
    return report


def assert_predict_refuses_bad_inputs(est: Any, x: torch.Tensor) -> None:
    """A fitted ``est`` (on 2-D inputs) names NaN, a wrong shape, a non-tensor and a bad
    sample count instead of predicting."""
    with pytest.raises(ValueError, match="NaN"):
        est.predict(torch.full_like(x, float("nan")))
    with pytest.raises(ValueError, match=r"shape \(3,\).*fitted on \(2,\)"):
        est.predict(torch.randn(4, 3))
    with pytest.raises(TypeError, match="torch.Tensor"):
        est.predict(x.tolist())
    with pytest.raises(ValueError, match="num_samples must be a positive int"):
        est.predict(x, num_samples=0)


def assert_fit_refuses_bad_data(make: Callable[[], Any]) -> None:
    """Fresh estimators from ``make()`` (2-D inputs, 2 classes) refuse (N, 1) labels, a loader
    without batches, NaN inputs, labels out of range and inputs of another shape, by name."""
    y = torch.zeros(8, dtype=torch.long)
    bad = [((torch.randn(8, 2), y[:, None]), {}, r"\(8, 1\).*\(N,\)"),
           ((torch.randn(8, 2), y), {"batch_size": 16, "drop_last": True}, "drop_last"),
           ((torch.full((8, 2), float("nan")), y), {}, "NaN"),
           ((torch.randn(8, 2), y + 2), {}, r"label|class"),
           ((torch.randn(8, 3), y), {}, r"\(3,\)")]
    for tensors, kw, match in bad:
        with pytest.raises(ValueError, match=match):
            make().fit(DataLoader(TensorDataset(*tensors), **{"batch_size": 8, **kw}), 1)
