"""scikit-learn bundled sets: shapes, fixed test split, standardisation fitted on train only."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn.datasets
import torch

from hvgp.data import load_splits

EXPECTED = {  # name -> (n_features, num_classes, n_rows, sklearn loader)
    "digits": (64, 10, 1797, sklearn.datasets.load_digits),
    "breast_cancer": (30, 2, 569, sklearn.datasets.load_breast_cancer),
    "wine": (13, 3, 178, sklearn.datasets.load_wine),
    "iris": (4, 3, 150, sklearn.datasets.load_iris),
    "diabetes": (10, None, 442, sklearn.datasets.load_diabetes),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sklearn_set_shapes_dtypes_and_disjoint_splits(name):
    d, k, n, _ = EXPECTED[name]
    s = load_splits(name, seed=0)
    info = s["train"].info
    assert info.input_shape == (d,) and info.num_classes == k
    assert info.task == ("regression" if k is None else "classification")
    assert sum(len(s[sp]) for sp in ("train", "val", "test")) == n
    assert len(s["test"]) == round(0.2 * n) and info.n_train == len(s["train"])
    for sp in ("train", "val", "test"):
        assert s[sp].x.dtype == torch.float32 and s[sp].x.shape[1:] == (d,)
        assert s[sp].y.dtype == (torch.float32 if k is None else torch.int64)
    idx = [set(s[sp].source_index.tolist()) for sp in ("train", "val", "test")]
    assert not (idx[0] & idx[1]) and not (idx[0] & idx[2]) and not (idx[1] & idx[2])
    assert set().union(*idx) == set(range(n))


@pytest.mark.parametrize("name", ["breast_cancer", "diabetes"])
def test_sklearn_standardisation_uses_train_statistics_only(name):
    raw_x, raw_y = EXPECTED[name][3](return_X_y=True)
    s = load_splits(name, seed=0)
    tr = s["train"]
    train_rows = raw_x[tr.source_index.numpy()]
    mean, std = train_rows.mean(0), train_rows.std(0)
    np.testing.assert_allclose(tr.info.stats["x_mean"], mean, rtol=1e-9)
    np.testing.assert_allclose(tr.info.stats["x_std"], std, rtol=1e-9)
    for sp in ("train", "val", "test"):
        expected = (raw_x[s[sp].source_index.numpy()] - mean) / std
        np.testing.assert_allclose(s[sp].x.numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tr.x.mean(0).numpy(), 0.0, atol=1e-5)
    # the test split's own mean is not exactly zero: its statistics were not used
    assert s["test"].x.mean(0).abs().max() > 1e-3
    if name == "diabetes":
        y_train = raw_y[tr.source_index.numpy()]
        assert tr.info.stats["y_mean"] == pytest.approx(y_train.mean())
        assert tr.info.stats["y_std"] == pytest.approx(y_train.std())
        back = s["test"].y.numpy() * tr.info.stats["y_std"] + tr.info.stats["y_mean"]
        np.testing.assert_allclose(back, raw_y[s["test"].source_index.numpy()], rtol=1e-5)


def test_sklearn_digits_constant_pixels_stay_finite():
    s = load_splits("digits")
    assert all(torch.isfinite(s[k].x).all() for k in s)


def test_sklearn_test_split_is_fixed_across_training_seeds_and_val_moves():
    a, b = load_splits("wine", seed=0), load_splits("wine", seed=1)
    assert torch.equal(a["test"].source_index, b["test"].source_index)
    assert not torch.equal(a["val"].source_index, b["val"].source_index)
    again = load_splits("wine", seed=0)
    assert torch.equal(again["val"].x, a["val"].x) and torch.equal(again["train"].y, a["train"].y)
    other_test = load_splits("wine", test_seed=5)
    assert not torch.equal(other_test["test"].source_index, a["test"].source_index)


def test_sklearn_splits_are_stratified():
    s = load_splits("iris", seed=0)
    assert torch.bincount(s["test"].y).tolist() == [10, 10, 10]
    assert torch.bincount(s["val"].y).tolist() == [4, 4, 4]
