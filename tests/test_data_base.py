"""Behaviour of the shared data pieces: split carving, standardisation, containers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hvgp.data import ArrayDataset, DatasetInfo, Standardizer, build_splits, split_indices


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 300), fraction=st.floats(0.0, 0.9), seed=st.integers(0, 2**31 - 1),
       stratified=st.booleans())
def test_split_indices_partition_range_with_requested_size(n, fraction, seed, stratified):
    labels = np.arange(n) % 3 if stratified else None
    if int(round(fraction * n)) >= n:
        with pytest.raises(ValueError, match="nothing to keep"):
            split_indices(n, fraction, seed, labels)
        return
    kept, held = split_indices(n, fraction, seed, labels)
    assert len(np.intersect1d(kept, held)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([kept, held])), np.arange(n))
    assert len(held) == int(round(fraction * n))
    again = split_indices(n, fraction, seed, labels)
    np.testing.assert_array_equal(again[0], kept)
    np.testing.assert_array_equal(again[1], held)


def test_split_indices_stratifies_by_label():
    y = np.repeat(np.arange(4), 50)
    _, held = split_indices(len(y), 0.2, seed=3, stratify=y)
    np.testing.assert_array_equal(np.bincount(y[held]), [10, 10, 10, 10])


def test_split_indices_differs_between_seeds():
    a = split_indices(1000, 0.1, seed=0)[1]
    b = split_indices(1000, 0.1, seed=1)[1]
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5, float("nan")])
def test_split_indices_rejects_bad_fraction(fraction):
    with pytest.raises(ValueError, match="fraction"):
        split_indices(10, fraction, seed=0)


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(2, 50), cols=st.integers(1, 6), seed=st.integers(0, 10_000),
       chunk=st.integers(1, 64))
def test_standardizer_matches_numpy_and_maps_train_to_zero_mean_unit_std(rows, cols, seed, chunk):
    rng = np.random.default_rng(seed)
    x = rng.normal(5.0, 3.0, size=(rows, cols)) * rng.uniform(0.5, 100, size=cols)
    s = Standardizer.fit(x, (0,), chunk=chunk)
    np.testing.assert_allclose(s.mean.ravel(), x.mean(0), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(s.std.ravel(), x.std(0), rtol=1e-8)
    z = s.transform(x, chunk=chunk)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.std(0), 1.0, atol=1e-4)
    np.testing.assert_allclose(s.inverse_transform(z), x, rtol=1e-5, atol=1e-4)


def test_standardizer_per_channel_on_uint8_images():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(7, 3, 4, 4), dtype=np.uint8)
    s = Standardizer.fit(x, (0, 2, 3), chunk=3)
    assert s.mean.shape == (1, 3, 1, 1)
    np.testing.assert_allclose(s.mean.ravel(), x.astype(float).mean((0, 2, 3)))
    np.testing.assert_allclose(s.std.ravel(), x.astype(float).std((0, 2, 3)))


def test_standardizer_leaves_constant_feature_finite():
    x = np.array([[1.0, 7.0], [3.0, 7.0], [5.0, 7.0]])
    z = Standardizer.fit(x).transform(x)
    assert np.isfinite(z).all()
    np.testing.assert_array_equal(z[:, 1], 0.0)


def _info(**kw):
    base = dict(name="t", task="classification", input_shape=(2,), num_classes=3, n_train=4)
    return DatasetInfo(**{**base, **kw})


def test_array_dataset_casts_dtypes_and_applies_transform():
    info = _info()
    ds = ArrayDataset(np.ones((4, 2)), np.array([0, 1, 2, 1]), info)
    assert ds.x.dtype == torch.float32 and ds.y.dtype == torch.int64 and len(ds) == 4
    doubled = ds.with_transform(lambda t: 2 * t)
    x0, y0 = doubled[0]
    assert torch.equal(x0, torch.full((2,), 2.0)) and int(y0) == 0
    assert doubled.x is ds.x  # a view, no copy
    reg = ArrayDataset(np.ones((3, 2)), np.array([0.5, 1, 2]),
                       _info(task="regression", num_classes=None))
    assert reg.y.dtype == torch.float32


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [(np.ones((4, 2)), np.zeros(3), "disagree on N"),
     (np.ones((4, 3)), np.zeros(4), "input_shape"),
     (np.ones((4, 2)), np.zeros((4, 1)), r"shape \(N,\)")],
)
def test_array_dataset_rejects_inconsistent_arrays(x, y, match):
    with pytest.raises(ValueError, match=match):
        ArrayDataset(x, y, _info())


def test_dataset_info_validates_task_and_classes():
    with pytest.raises(ValueError, match="task"):
        _info(task="ranking")
    with pytest.raises(ValueError, match="num_classes"):
        _info(num_classes=None)
    with pytest.raises(ValueError, match="num_classes=None"):
        _info(task="regression", num_classes=2)
    assert _info().output_dim == 3
    assert _info(task="regression", num_classes=None).output_dim == 1


def test_build_splits_fits_standardisation_on_train_rows_only():
    rng = np.random.default_rng(0)
    x_pool = rng.normal(size=(100, 3))
    y_pool = rng.integers(0, 2, size=100)
    x_test = rng.normal(50.0, 1.0, size=(20, 3))  # far away: would move the mean if used
    splits = build_splits((x_pool, y_pool), (x_test, np.zeros(20, dtype=int)), name="t",
                          task="classification", num_classes=2, seed=0, val_fraction=0.2,
                          standardize_axes=(0,))
    tr = splits["train"]
    raw_train = x_pool[tr.source_index.numpy()]
    np.testing.assert_allclose(tr.info.stats["x_mean"], raw_train.mean(0), rtol=1e-10)
    np.testing.assert_allclose(tr.info.stats["x_std"], raw_train.std(0), rtol=1e-8)
    assert splits["test"].x.mean() > 10  # test standardised with train stats, not its own
    assert tr.info.n_train == 80 and tr.info.n_val == 20 and tr.info.n_test == 20
    idx = [set(splits[k].source_index.tolist()) for k in ("train", "val", "test")]
    assert not (idx[0] & idx[1]) and not (idx[0] & idx[2]) and not (idx[1] & idx[2])
