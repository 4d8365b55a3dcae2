"""MNIST-1D: generated offline, cached atomically, split without overlap, shift variant."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from hvgp.data import get_dataset, load_splits, shifted_args
from hvgp.data.mnist1d import default_args, generate_mnist1d

pytestmark = pytest.mark.usefixtures("private_hvgp_cache")  # never the user's cache


@pytest.fixture(scope="module")
def clean():
    return load_splits("mnist1d", seed=0)


def _rows(t: torch.Tensor) -> set[bytes]:
    return {r.tobytes() for r in t.numpy()}


def test_mnist1d_has_package_default_shapes_and_dtypes(clean):
    tr, va, te = clean["train"], clean["val"], clean["test"]
    assert (len(tr), len(va), len(te)) == (3600, 400, 1000)
    assert tr.x.shape == (3600, 40) and tr.x.dtype == torch.float32
    assert tr.y.dtype == torch.int64 and set(tr.y.unique().tolist()) == set(range(10))
    info = tr.info
    assert (info.task, info.input_shape, info.num_classes) == ("classification", (40,), 10)
    assert (info.n_train, info.n_val, info.n_test) == (3600, 400, 1000)


def test_mnist1d_equals_the_package_generator_output(clean):
    from mnist1d.data import get_dataset_args, make_dataset

    ref = make_dataset(get_dataset_args())
    tr, va, te = clean["train"], clean["val"], clean["test"]
    np.testing.assert_allclose(te.x.numpy(), ref["x_test"], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(te.y.numpy(), ref["y_test"])
    for split in (tr, va):
        idx = split.source_index.numpy()
        np.testing.assert_allclose(split.x.numpy(), ref["x"][idx], rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(split.y.numpy(), ref["y"][idx])


def test_mnist1d_splits_do_not_overlap(clean):
    tr, va, te = (_rows(clean[k].x) for k in ("train", "val", "test"))
    assert len(tr) == 3600 and not (tr & va) and not (tr & te) and not (va & te)


def test_mnist1d_is_deterministic_by_seed_and_seed_moves_only_validation(clean):
    again = load_splits("mnist1d", seed=0)
    other = load_splits("mnist1d", seed=1)
    for k in ("train", "val", "test"):
        assert torch.equal(again[k].x, clean[k].x) and torch.equal(again[k].y, clean[k].y)
    assert not torch.equal(other["val"].x, clean["val"].x)
    assert torch.equal(other["test"].x, clean["test"].x)
    assert _rows(other["train"].x) | _rows(other["val"].x) == (
        _rows(clean["train"].x) | _rows(clean["val"].x))


def test_mnist1d_validation_fraction_is_honoured():
    ds = get_dataset("mnist1d", "val", val_fraction=0.25)
    assert len(ds) == 1000 and ds.info.n_train == 3000


def test_mnist1d_never_downloads(monkeypatch, tmp_path):
    import mnist1d.data
    import requests

    def refuse(*a, **k):
        raise AssertionError("hvgp.data must not download MNIST-1D")

    monkeypatch.setattr(requests, "get", refuse)
    monkeypatch.setattr(mnist1d.data, "get_dataset", refuse)
    monkeypatch.setenv("HVGP_CACHE", str(tmp_path))
    d = generate_mnist1d({"num_samples": 200})
    assert d["x"].shape == (160, 40)


def test_mnist1d_cache_is_written_atomically_and_reused(monkeypatch, tmp_path):
    monkeypatch.setenv("HVGP_CACHE", str(tmp_path))
    first = generate_mnist1d({"num_samples": 200})
    files = list((tmp_path / "mnist1d").iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"  # no temp file left behind
    import hvgp.data.mnist1d as m

    monkeypatch.setattr(m, "_make", lambda args: pytest.fail("cache was not reused"))
    second = generate_mnist1d({"num_samples": 200})
    for k in first:
        np.testing.assert_array_equal(first[k], second[k])


def test_mnist1d_corrupt_cache_is_rebuilt(monkeypatch, tmp_path):
    monkeypatch.setenv("HVGP_CACHE", str(tmp_path))
    good = generate_mnist1d({"num_samples": 200})
    (path,) = (tmp_path / "mnist1d").iterdir()
    path.write_bytes(b"not a zip file")
    rebuilt = generate_mnist1d({"num_samples": 200})
    np.testing.assert_array_equal(rebuilt["x"], good["x"])


def test_mnist1d_generation_leaves_global_rngs_untouched(monkeypatch, tmp_path):
    monkeypatch.setenv("HVGP_CACHE", str(tmp_path))
    np.random.seed(123)
    random.seed(123)
    expected = (np.random.rand(), random.random())
    np.random.seed(123)
    random.seed(123)
    generate_mnist1d({"num_samples": 200}, cache=False)
    assert (np.random.rand(), random.random()) == expected


def test_mnist1d_rejects_unknown_generator_argument():
    with pytest.raises(ValueError, match="unknown MNIST-1D generator arguments"):
        generate_mnist1d({"num_sample": 10}, cache=False)


def test_shift_zero_reproduces_clean_data(clean):
    zero = get_dataset("mnist1d-shift", "test", shift=0.0)
    assert torch.equal(zero.x, clean["test"].x)


def test_shift_variant_differs_from_clean_and_grows_with_severity(clean):
    clean_x = clean["test"].x
    dist = []
    for s in (0.5, 1.0, 2.0):
        shifted = get_dataset("mnist1d-shift", "test", shift=s)
        assert shifted.x.shape == clean_x.shape
        assert torch.equal(shifted.y, clean["test"].y)  # same underlying samples, corrupted
        assert shifted.info.name == "mnist1d-shift" and shifted.info.stats["shift"] == s
        dist.append(float((shifted.x - clean_x).pow(2).mean()))
    assert dist[0] > 0.01 and dist[0] < dist[1] < dist[2]


def test_shifted_args_scale_the_nuisance_knobs():
    base = default_args()
    a = shifted_args(1.0)
    assert a["iid_noise_scale"] == pytest.approx(3 * base["iid_noise_scale"])
    assert a["corr_noise_scale"] == pytest.approx(1.5 * base["corr_noise_scale"])
    assert a["shear_scale"] == pytest.approx(2 * base["shear_scale"])
    assert a["scale_coeff"] == pytest.approx(2 * base["scale_coeff"])
    assert shifted_args(100.0)["scale_coeff"] < 2.0  # amplitude factor stays positive
    assert "url" not in a


@pytest.mark.parametrize("bad", [-0.5, float("inf"), float("nan"), "big", True])
def test_shift_rejects_bad_severity(bad):
    with pytest.raises(ValueError, match="shift"):
        shifted_args(bad)
