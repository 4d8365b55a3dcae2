"""Synthetic sets: the gap really is empty, draws are seeded, shapes match the contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hvgp.data import load_splits
from hvgp.data.synthetic import gap1d_function, make_spirals


def test_gap1d_train_inputs_avoid_the_gap_and_test_inputs_cover_it():
    s = load_splits("gap1d", n=400, n_test=400)
    g0, g1 = s["train"].info.stats["gap"]
    for sp in ("train", "val"):
        x = s[sp].x[:, 0]
        assert not ((x > g0) & (x < g1)).any()
        assert x.min() >= -1.0 and x.max() <= 1.0
    xt = s["test"].x[:, 0]
    assert ((xt > g0) & (xt < g1)).sum() > 20 and xt.max() > 1.0 and xt.min() < -1.0
    info = s["train"].info
    assert info.task == "regression" and info.input_shape == (1,) and info.num_classes is None
    assert s["train"].y.dtype == torch.float32 and s["train"].y.shape == (360,)


def test_gap1d_targets_follow_the_function_with_the_stated_noise():
    s = load_splits("gap1d", n=2000, noise=0.1)
    x, y = s["train"].tensors()
    resid = y.numpy() - gap1d_function(x[:, 0].numpy())
    assert abs(resid.std() - 0.1) < 0.01 and abs(resid.mean()) < 0.01


@pytest.mark.parametrize("name", ["gap1d", "moons", "spirals"])
def test_synthetic_sets_are_deterministic_and_seed_moves_only_validation(name):
    a, b = load_splits(name, seed=0), load_splits(name, seed=0)
    for k in ("train", "val", "test"):
        assert torch.equal(a[k].x, b[k].x) and torch.equal(a[k].y, b[k].y)
    c = load_splits(name, seed=1)
    assert not torch.equal(a["val"].x, c["val"].x) and torch.equal(a["test"].x, c["test"].x)
    d = load_splits(name, data_seed=1)
    assert not torch.equal(a["test"].x, d["test"].x)
    rows = [{r.tobytes() for r in a[k].x.numpy()} for k in ("train", "val", "test")]
    assert not (rows[0] & rows[1]) and not (rows[0] & rows[2]) and not (rows[1] & rows[2])


@pytest.mark.parametrize("name", ["moons", "spirals"])
def test_two_d_classification_sets_have_balanced_int_labels(name):
    s = load_splits(name, n=600, n_test=200)
    assert s["train"].x.shape == (540, 2) and s["test"].x.shape == (200, 2)
    assert s["train"].y.dtype == torch.int64 and s["train"].info.num_classes == 2
    counts = torch.bincount(torch.cat([s["train"].y, s["val"].y]))
    assert abs(int(counts[0]) - int(counts[1])) <= 0.15 * 600


def test_spirals_support_more_arms_and_radius_stays_in_unit_disc():
    x, y = make_spirals(300, num_classes=3, noise=0.0, seed=0)
    assert np.bincount(y).tolist() == [100, 100, 100]
    assert np.linalg.norm(x, axis=1).max() <= 1.0 + 1e-9
    s = load_splits("spirals", num_classes=3)
    assert s["train"].info.num_classes == 3


@pytest.mark.parametrize("kw", [{"n": 0}, {"n": 2.5}, {"noise": -1.0}, {"n_test": 0}])
def test_synthetic_rejects_bad_sizes_and_noise(kw):
    with pytest.raises(ValueError, match="n|noise"):
        load_splits("moons", **kw)


def test_gap1d_rejects_gap_outside_domain():
    with pytest.raises(ValueError, match="gap"):
        load_splits("gap1d", gap=(0.5, 2.0))
