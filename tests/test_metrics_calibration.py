"""Binned calibration metrics: hand-computed cases and agreement with torchmetrics and netcal.

netcal is the independent oracle. It is always called in detection mode on (top-label
confidence, correct) pairs, which is top-label ECE by definition; its multiclass mode silently
switches to positive-class ECE when the labels hold only two values, so it cannot be used there.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from netcal.metrics import ECE as NetcalECE
from netcal.metrics import MCE as NetcalMCE
from torchmetrics.functional.classification import multiclass_calibration_error

from hvgp.metrics import (
    adaptive_ece,
    bootstrap_ece,
    bootstrap_ece_diff,
    classwise_ece,
    confidence_histogram,
    ece,
    mce,
    reliability_bins,
)
from hvgp.metrics.calibration import _resamples
from hvgp.predict import PredictiveSamples


def _random_probs(n: int, c: int, scale: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    probs = (scale * torch.randn(n, c, generator=g, dtype=torch.float64)).softmax(-1)
    labels = torch.randint(0, c, (n,), generator=g)
    return probs, labels


def _netcal_top_label(probs, labels, n_bins: int, metric=NetcalECE, equal_intervals=True, **kw):
    p = np.asarray(probs, dtype=np.float64)
    conf = p.max(1)[:, None]
    hit = (p.argmax(1) == np.asarray(labels)).astype(np.float64)
    return float(metric(n_bins, detection=True, equal_intervals=equal_intervals, **kw)
                 .measure(conf, hit))


def _netcal_classwise(probs, labels, n_bins: int, equal_intervals=True) -> float:
    p, y = np.asarray(probs, dtype=np.float64), np.asarray(labels)
    per_class = [
        NetcalECE(n_bins, detection=True, equal_intervals=equal_intervals)
        .measure(p[:, k:k + 1], (y == k).astype(np.float64))
        for k in range(p.shape[1])
    ]
    return float(np.mean(per_class))


# ---- hand-computed cases ------------------------------------------------------------------------
HAND_PROBS = [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.55, 0.45]]
HAND_LABELS = [0, 1, 1, 0]  # confidences 0.9 (right), 0.8 (wrong), 0.7 (right), 0.55 (right)


def test_ece_and_mce_match_hand_computation_with_four_bins() -> None:
    # (0.75, 1]: {0.9 right, 0.8 wrong}: acc 0.5, conf 0.85, gap 0.35
    # (0.5, 0.75]: {0.7 right, 0.55 right}: acc 1, conf 0.625, gap 0.375
    assert ece(HAND_PROBS, HAND_LABELS, n_bins=4) == pytest.approx(0.5 * 0.35 + 0.5 * 0.375)
    assert mce(HAND_PROBS, HAND_LABELS, n_bins=4) == pytest.approx(0.375)


def test_reliability_bins_match_hand_computation() -> None:
    bins = reliability_bins(HAND_PROBS, HAND_LABELS, n_bins=4)
    np.testing.assert_allclose(bins["bin_edges"], [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_array_equal(bins["count"], [0, 0, 2, 2])
    np.testing.assert_allclose(bins["accuracy"][2:], [1.0, 0.5])
    np.testing.assert_allclose(bins["confidence"][2:], [0.625, 0.85])
    assert np.isnan(bins["accuracy"][:2]).all() and np.isnan(bins["confidence"][:2]).all()


def test_classwise_ece_matches_hand_computation() -> None:
    # class 0 column: 0.9 (y=0), 0.8 (y=1), 0.3 (y=1), 0.55 (y=0), 2 bins (0, .5], (.5, 1]:
    #   low bin {0.3: hit 0} gap 0.3; high bin {0.9:1, 0.8:0, 0.55:1}: acc 2/3, conf 0.75
    # class 1 column is 1 - class 0 with complementary hits: the same gaps mirrored.
    expected = 0.25 * 0.3 + 0.75 * abs(2 / 3 - 0.75)
    assert classwise_ece(HAND_PROBS, HAND_LABELS, n_bins=2) == pytest.approx(expected)


# ---- ties at bin edges and confidence exactly 1 -------------------------------------------------
# confidences 0.75 (right), 0.5 (argmax 0, label 1: wrong), 0.75 (right), 1.0 (wrong)
EDGE_PROBS = [[0.75, 0.25], [0.5, 0.5], [0.25, 0.75], [1.0, 0.0]]
EDGE_LABELS = [0, 1, 1, 1]


def test_right_closed_bins_put_edge_ties_in_the_lower_bin() -> None:
    # (0.25, 0.5]: {0.5 wrong} gap 0.5; (0.5, 0.75]: {0.75, 0.75 right} gap 0.25;
    # (0.75, 1]: {1.0 wrong} gap 1.0  ->  0.25 * 0.5 + 0.5 * 0.25 + 0.25 * 1.0
    assert ece(EDGE_PROBS, EDGE_LABELS, n_bins=4) == pytest.approx(0.5)
    assert mce(EDGE_PROBS, EDGE_LABELS, n_bins=4) == pytest.approx(1.0)


def test_left_closed_bins_agree_with_netcal_and_torchmetrics_on_edge_ties() -> None:
    # [0.5, 0.75): {0.5 wrong} gap 0.5; [0.75, 1]: {0.75, 0.75, 1.0}: acc 2/3, conf 5/6
    expected = 0.25 * 0.5 + 0.75 * (5 / 6 - 2 / 3)
    assert ece(EDGE_PROBS, EDGE_LABELS, n_bins=4, closed="left") == pytest.approx(expected)
    assert _netcal_top_label(EDGE_PROBS, EDGE_LABELS, 4) == pytest.approx(expected)
    assert ece(EDGE_PROBS, EDGE_LABELS, n_bins=4, engine="torchmetrics") == pytest.approx(expected)


def test_torchmetrics_engine_clamps_confidence_of_one_into_the_last_bin() -> None:
    # Without the clamp torchmetrics gives 1.0 an extra bin of its own and a different number.
    raw = multiclass_calibration_error(torch.tensor(EDGE_PROBS), torch.tensor(EDGE_LABELS),
                                       num_classes=2, n_bins=4)
    clamped = ece(EDGE_PROBS, EDGE_LABELS, n_bins=4, engine="torchmetrics")
    assert float(raw) == pytest.approx(0.5)
    assert clamped == pytest.approx(0.25)


def test_torchmetrics_engine_refuses_right_closed_or_mass_bins() -> None:
    with pytest.raises(ValueError, match="torchmetrics"):
        ece(EDGE_PROBS, EDGE_LABELS, engine="torchmetrics", closed="right")
    with pytest.raises(ValueError, match="torchmetrics"):
        ece(EDGE_PROBS, EDGE_LABELS, engine="torchmetrics", binning="mass")


# ---- adversarial inputs against the oracles ------------------------------------------------------
@pytest.mark.parametrize("case", ["all_correct", "all_wrong", "one_class", "one_hot_right",
                                  "one_hot_wrong", "uniform"])
def test_ece_agrees_with_netcal_and_torchmetrics_on_adversarial_inputs(case: str) -> None:
    probs, labels = _random_probs(300, 4, 2.0, seed=1)
    pred = probs.argmax(1)
    if case == "all_correct":
        labels = pred
    elif case == "all_wrong":
        labels = (pred + 1) % 4
    elif case == "one_class":
        labels = torch.zeros_like(labels)
    elif case.startswith("one_hot"):
        probs = torch.nn.functional.one_hot(pred, 4).double()
        labels = pred if case == "one_hot_right" else (pred + 1) % 4
    else:
        probs = torch.full((300, 4), 0.25, dtype=torch.float64)
    conf = probs.max(1).values
    hit = (probs.argmax(1) == labels).double()
    truth = float((hit - conf).abs().mean()) if case != "uniform" and case != "one_class" else None
    ours = ece(probs, labels)
    if truth is not None:  # every bin is one-sided, so ECE is |mean(hit - conf)| overall
        assert ours == pytest.approx(truth, abs=1e-12)
    assert ours == pytest.approx(_netcal_top_label(probs, labels, 10), abs=1e-9)
    assert ours == pytest.approx(ece(probs, labels, engine="torchmetrics"), abs=1e-6)
    assert mce(probs, labels) == pytest.approx(
        _netcal_top_label(probs, labels, 10, metric=NetcalMCE), abs=1e-9)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(n=st.integers(1, 400), c=st.integers(2, 12), scale=st.floats(0.1, 8.0),
       n_bins=st.integers(1, 20), seed=st.integers(0, 10_000))
def test_ece_and_mce_agree_with_netcal_and_torchmetrics_on_random_inputs(n, c, scale, n_bins,
                                                                        seed) -> None:
    probs, labels = _random_probs(n, c, scale, seed)
    probs = probs.float().double()  # float32-representable: torchmetrics computes in float32
    probs = probs / probs.sum(1, keepdim=True)
    ours = ece(probs, labels, n_bins=n_bins)
    assert ours == pytest.approx(_netcal_top_label(probs, labels, n_bins), abs=1e-9)
    assert ours == pytest.approx(ece(probs, labels, n_bins=n_bins, engine="torchmetrics"),
                                 abs=1e-5)
    assert mce(probs, labels, n_bins=n_bins) == pytest.approx(
        _netcal_top_label(probs, labels, n_bins, metric=NetcalMCE), abs=1e-9)


def test_netcal_detection_mode_is_top_label_ece_in_the_multiclass_case() -> None:
    probs, labels = _random_probs(500, 5, 2.0, seed=3)
    multiclass = NetcalECE(10).measure(probs.numpy(), labels.numpy())
    assert _netcal_top_label(probs, labels, 10) == pytest.approx(multiclass, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equal_mass_ece_agrees_with_netcal_quantile_bins(seed: int) -> None:
    probs, labels = _random_probs(500, 5, 3.0, seed)
    expected = _netcal_top_label(probs, labels, 10, equal_intervals=False)
    assert ece(probs, labels, binning="mass", closed="left") == pytest.approx(expected, abs=1e-9)


def test_equal_mass_bins_hold_equal_counts_without_ties() -> None:
    probs, labels = _random_probs(1000, 3, 2.0, seed=4)
    counts = reliability_bins(probs, labels, n_bins=10, binning="mass")["count"]
    assert counts.sum() == 1000 and counts.min() >= 99 and counts.max() <= 101


def test_equal_mass_bins_keep_tied_confidences_together() -> None:
    probs = torch.tensor([[0.6, 0.4]] * 50 + [[0.9, 0.1]] * 50, dtype=torch.float64)
    labels = torch.tensor([0, 1] * 25 + [0] * 45 + [1] * 5)
    # two groups: conf 0.6 with accuracy 0.5, conf 0.9 with accuracy 0.9 -> ECE 0.05
    assert ece(probs, labels, binning="mass") == pytest.approx(0.05)
    assert ece(probs, labels, binning="mass", closed="left") == pytest.approx(0.05)


@pytest.mark.parametrize("seed", [0, 1])
def test_classwise_and_adaptive_ece_agree_with_netcal_per_class(seed: int) -> None:
    probs, labels = _random_probs(400, 4, 2.0, seed)
    assert classwise_ece(probs, labels) == pytest.approx(
        _netcal_classwise(probs, labels, 10), abs=1e-9)
    assert adaptive_ece(probs, labels, closed="left") == pytest.approx(
        _netcal_classwise(probs, labels, 10, equal_intervals=False), abs=1e-9)


def test_classwise_ece_is_zero_for_a_perfectly_calibrated_binned_predictor() -> None:
    probs = torch.tensor([[0.25, 0.75]] * 4 + [[0.75, 0.25]] * 4, dtype=torch.float64)
    labels = torch.tensor([0, 1, 1, 1, 0, 0, 0, 1])
    assert classwise_ece(probs, labels, n_bins=2) == pytest.approx(0.0, abs=1e-12)
    assert ece(probs, labels, n_bins=2) == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(n=st.integers(1, 300), c=st.integers(2, 6), n_bins=st.integers(1, 15),
       binning=st.sampled_from(["width", "mass"]), seed=st.integers(0, 1000))
def test_reliability_bins_reproduce_ece_and_count_every_point(n, c, n_bins, binning, seed) -> None:
    probs, labels = _random_probs(n, c, 2.0, seed)
    bins = reliability_bins(probs, labels, n_bins=n_bins, binning=binning)
    full = bins["count"] > 0
    from_bins = (bins["count"][full] * np.abs(bins["accuracy"][full] - bins["confidence"][full]))
    assert bins["count"].sum() == n
    assert from_bins.sum() / n == pytest.approx(ece(probs, labels, n_bins, binning), abs=1e-12)
    assert 0.0 <= ece(probs, labels, n_bins, binning) <= mce(probs, labels, n_bins, binning) + 1e-12


def test_metrics_accept_numpy_tensors_and_predictive_samples_alike() -> None:
    probs, labels = _random_probs(200, 3, 2.0, seed=5)
    samples = PredictiveSamples(probs=torch.stack([probs, probs]))
    values = {ece(probs, labels), ece(probs.numpy(), labels.numpy()), ece(samples, labels)}
    assert max(values) - min(values) < 1e-12


def test_confidence_histogram_counts_top_label_confidences() -> None:
    hist = confidence_histogram(HAND_PROBS, n_bins=4)
    np.testing.assert_array_equal(hist["count"], [0, 0, 2, 2])


# ---- bootstrap --------------------------------------------------------------------------------
def test_vectorised_bootstrap_equals_a_plain_loop_over_resamples() -> None:
    probs, labels = _random_probs(300, 4, 2.0, seed=6)
    point, lo, hi = bootstrap_ece(probs, labels, n_boot=200, seed=3)
    rows = torch.cat(list(_resamples(300, 200, 3, torch.device("cpu"))))
    loop = torch.tensor([ece(probs[r], labels[r]) for r in rows], dtype=torch.float64)
    q = torch.quantile(loop, torch.tensor([0.025, 0.975], dtype=torch.float64))
    assert point == pytest.approx(ece(probs, labels))
    assert (lo, hi) == pytest.approx(tuple(q.tolist()), abs=1e-12)


def test_bootstrap_is_reproducible_and_seed_dependent() -> None:
    probs, labels = _random_probs(300, 4, 2.0, seed=7)
    a = bootstrap_ece(probs, labels, n_boot=100, seed=1)
    assert a == bootstrap_ece(probs, labels, n_boot=100, seed=1)
    assert a != bootstrap_ece(probs, labels, n_boot=100, seed=2)


def _miscalibrated(n: int, shift: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Binary predictor whose accuracy is its confidence minus ``shift``."""
    g = torch.Generator().manual_seed(seed)
    conf = 0.5 + 0.5 * torch.rand(n, generator=g, dtype=torch.float64)
    correct = torch.rand(n, generator=g, dtype=torch.float64) < (conf - shift)
    labels = torch.where(correct, 0, 1)
    return torch.stack([conf, 1 - conf], 1), labels


def test_bootstrap_interval_width_matches_spread_over_independent_test_sets() -> None:
    reps = torch.tensor([ece(*_miscalibrated(1000, 0.1, seed=100 + i)) for i in range(200)],
                        dtype=torch.float64)
    true_width = float(torch.quantile(reps, 0.975) - torch.quantile(reps, 0.025))
    widths = []
    for i in range(5):
        _, lo, hi = bootstrap_ece(*_miscalibrated(1000, 0.1, seed=i), n_boot=400)
        widths.append(hi - lo)
    assert 0.7 < np.mean(widths) / true_width < 1.4


def test_bootstrap_interval_narrows_with_more_test_points() -> None:
    _, lo_s, hi_s = bootstrap_ece(*_miscalibrated(400, 0.1, seed=0), n_boot=300)
    _, lo_l, hi_l = bootstrap_ece(*_miscalibrated(6400, 0.1, seed=0), n_boot=300)
    assert (hi_l - lo_l) < 0.4 * (hi_s - lo_s)


def test_bootstrap_with_equal_mass_bins_brackets_the_estimate() -> None:
    point, lo, hi = bootstrap_ece(*_miscalibrated(500, 0.1, seed=1), n_boot=100, binning="mass")
    assert lo < point < hi


def test_paired_difference_is_zero_for_identical_predictions() -> None:
    probs, labels = _miscalibrated(500, 0.05, seed=2)
    assert bootstrap_ece_diff(probs, probs, labels, n_boot=100) == (0.0, 0.0, 0.0)


def test_paired_difference_separates_a_clearly_worse_method_but_not_a_twin() -> None:
    probs, labels = _miscalibrated(2000, 0.0, seed=3)
    g = torch.Generator().manual_seed(9)
    sharper = torch.stack([probs[:, 0] ** 0.5, 1 - probs[:, 0] ** 0.5], 1)  # over-confident
    d, lo, hi = bootstrap_ece_diff(sharper, probs, labels, n_boot=300)
    assert d > 0 and lo > 0
    jitter = (probs[:, :1] + 0.002 * torch.randn(2000, 1, generator=g, dtype=torch.float64))
    twin = torch.cat([jitter.clamp(0.5, 1), 1 - jitter.clamp(0.5, 1)], 1)
    d, lo, hi = bootstrap_ece_diff(twin, probs, labels, n_boot=300)
    assert lo < 0 < hi


def test_bad_bin_and_bootstrap_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="n_bins"):
        ece(HAND_PROBS, HAND_LABELS, n_bins=0)
    with pytest.raises(ValueError, match="binning"):
        ece(HAND_PROBS, HAND_LABELS, binning="quantile")
    with pytest.raises(ValueError, match="closed"):
        reliability_bins(HAND_PROBS, HAND_LABELS, closed="both")
    with pytest.raises(ValueError, match="engine"):
        ece(HAND_PROBS, HAND_LABELS, engine="sklearn")
    with pytest.raises(ValueError, match="level"):
        bootstrap_ece(HAND_PROBS, HAND_LABELS, level=1.5)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ece(HAND_PROBS, HAND_LABELS, n_boot=1)
