"""MNIST-1D large held-out splits: same distribution, disjoint from training, cached safely."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hvgp.data import get_loaders, list_datasets, load_splits
from hvgp.data.mnist1d import (
    TEST_SEED,
    VAL_SEED,
    _raw_signals,
    default_args,
    generate_mnist1d,
    generate_pool,
)

SMALL = {"val_size": 300, "test_size": 700}  # small pools: the same code path, seconds


pytestmark = pytest.mark.usefixtures("private_hvgp_cache")  # never the user's cache


@pytest.fixture(scope="module")
def large():
    return load_splits("mnist1d", seed=0, **SMALL)


def _rows(t: torch.Tensor) -> set[bytes]:
    return {r.tobytes() for r in t.numpy()}


def test_raw_generator_mirror_reproduces_the_package_exactly():
    args = {**default_args(), "num_samples": 500}
    x, y = _raw_signals(args)
    d = generate_mnist1d(args, cache=False)
    xs = ((x - x.mean()) / x.std()).astype(np.float32)
    assert np.array_equal(xs[:400], d["x"]) and np.array_equal(xs[400:], d["x_test"])
    assert np.array_equal(y[:400], d["y"])


def test_large_training_split_is_todays_standard_4000(large):
    standard = load_splits("mnist1d", seed=0, val_fraction=0.0)
    assert torch.equal(large["train"].x, standard["train"].x)
    assert torch.equal(large["train"].y, standard["train"].y)
    assert len(large["val"]) == SMALL["val_size"] and len(large["test"]) == SMALL["test_size"]
    info = large["train"].info
    assert (info.n_train, info.n_val, info.n_test) == (4000, 300, 700)
    assert info.stats["val_pool_seed"] == VAL_SEED and info.stats["test_pool_seed"] == TEST_SEED


def test_large_splits_are_pairwise_disjoint_and_disjoint_from_the_standard_test(large):
    standard_test = load_splits("mnist1d", seed=0)["test"]
    rows = {k: _rows(v.x) for k, v in large.items()}
    rows["standard_test"] = _rows(standard_test.x)
    names = list(rows)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not rows[a] & rows[b], f"{a} and {b} share signals"
    idx = {k: set(v.source_index.tolist()) for k, v in large.items()}
    assert not (idx["train"] & idx["val"] or idx["train"] & idx["test"] or idx["val"] & idx["test"])


def test_large_pools_follow_the_training_distribution(large):
    tr, te = large["train"], large["test"]
    assert abs(float(te.x.mean()) - float(tr.x.mean())) < 0.05
    assert abs(float(te.x.std()) - float(tr.x.std())) < 0.05
    counts = np.bincount(te.y.numpy(), minlength=10)
    assert counts.min() >= 60  # balanced classes (70 each before the cut)


def test_test_split_does_not_depend_on_val_size_or_seed():
    a = load_splits("mnist1d", seed=0, val_size=100, test_size=700)["test"]
    b = load_splits("mnist1d", seed=3, val_size=300, test_size=700)["test"]
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


def test_shifted_large_test_corrupts_the_same_pool(large):
    shifted = load_splits("mnist1d-shift", seed=0, **SMALL)
    assert torch.equal(shifted["test"].y, large["test"].y)
    assert not torch.equal(shifted["test"].x, large["test"].x)
    assert float((shifted["test"].x - large["test"].x).abs().mean()) > 0.05


def test_named_large_sets_are_registered_with_issue_sizes():
    assert {"mnist1d-large", "mnist1d-large-shift"} <= set(list_datasets())
    _, val, test, info = get_loaders("mnist1d-large", val_size=30, test_size=50, seed=0)
    assert (info.n_train, info.n_val, info.n_test) == (4000, 30, 50)
    assert info.name == "mnist1d-large"
    _, _, _, sinfo = get_loaders("mnist1d-large-shift", val_size=30, test_size=50)
    assert sinfo.name == "mnist1d-large-shift" and sinfo.stats["shift"] == 1.0


def test_pool_cache_is_reused_and_a_corrupt_file_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("HVGP_CACHE", str(tmp_path))
    first = generate_pool(40, TEST_SEED)
    (path,) = (tmp_path / "mnist1d").glob("mnist1d-pool-*.npz")
    path.write_bytes(b"not a zip file")
    again = generate_pool(40, TEST_SEED)
    assert np.array_equal(first["x"], again["x"]) and np.array_equal(first["y"], again["y"])
    assert generate_pool(35, TEST_SEED)["x"].shape == (35, 40)  # rounded up, then cut


@pytest.mark.parametrize("size", [0, -5, 2.5, True])
def test_pool_rejects_bad_sizes(size):
    with pytest.raises(ValueError, match="positive integer"):
        generate_pool(size, TEST_SEED, cache=False)


def test_pool_refuses_the_training_seed():
    with pytest.raises(ValueError, match="repeat the training signals"):
        generate_pool(10, default_args()["seed"], cache=False)


@pytest.mark.slow
def test_full_size_large_set_has_the_issue_sizes():
    """The named set at full size (minutes to generate once; the quick tests cover the code)."""
    s = load_splits("mnist1d-large", seed=0)
    assert (len(s["train"]), len(s["val"]), len(s["test"])) == (4000, 4000, 20000)
