"""Accuracy, NLL, Brier, entropy, mutual information, OOD AUROC, the report and input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, log_loss
from torchmetrics.functional.classification import binary_auroc

from hvgp.metrics import (
    accuracy,
    brier,
    classification_report,
    ece,
    mutual_information,
    nll,
    ood_auroc,
    ood_scores,
    predictive_entropy,
)
from hvgp.predict import PredictiveSamples

PROBS = [[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4]]
LABELS = [0, 2, 2]


def _random_probs(n: int, c: int, seed: int, s: int | None = None) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (n, c) if s is None else (s, n, c)
    return (2 * torch.randn(*shape, generator=g, dtype=torch.float64)).softmax(-1)


def test_scores_match_hand_computation() -> None:
    assert accuracy(PROBS, LABELS) == pytest.approx(2 / 3)
    assert nll(PROBS, LABELS) == pytest.approx(-(math.log(0.7) + math.log(0.3) + math.log(0.4)) / 3)
    b = [0.3**2 + 0.2**2 + 0.1**2, 0.1**2 + 0.6**2 + 0.7**2, 0.3**2 + 0.3**2 + 0.6**2]
    assert brier(PROBS, LABELS) == pytest.approx(sum(b) / 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_agree_with_sklearn_and_a_numpy_brier(seed: int) -> None:
    probs = _random_probs(300, 5, seed)
    labels = torch.randint(0, 5, (300,), generator=torch.Generator().manual_seed(seed))
    p, y = probs.numpy(), labels.numpy()
    assert accuracy(probs, labels) == pytest.approx(accuracy_score(y, p.argmax(1)))
    assert nll(probs, labels) == pytest.approx(log_loss(y, p, labels=range(5)), rel=1e-9)
    assert brier(probs, labels) == pytest.approx(((p - np.eye(5)[y]) ** 2).sum(1).mean())


def test_nll_of_a_zero_probability_label_is_large_but_finite() -> None:
    value = nll([[1.0, 0.0]], [1])
    assert math.isfinite(value) and value == pytest.approx(-math.log(1e-12))


def test_entropy_and_mutual_information_match_hand_computation() -> None:
    samples = PredictiveSamples(probs=torch.tensor([[[0.5, 0.5]], [[1.0, 0.0]]]))
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert predictive_entropy(samples).item() == pytest.approx(h)
    assert mutual_information(samples).item() == pytest.approx(h - 0.5 * math.log(2))


@settings(max_examples=30, deadline=None, derandomize=True)
@given(s=st.integers(1, 6), n=st.integers(1, 40), c=st.integers(2, 8), seed=st.integers(0, 999))
def test_uncertainty_decomposition_is_bounded_and_matches_predictive_samples(s, n, c, seed) -> None:
    probs = _random_probs(n, c, seed, s=s)
    samples = PredictiveSamples(probs=probs)
    h, mi = predictive_entropy(samples), mutual_information(samples)
    assert ((mi >= 0) & (mi <= h + 1e-12) & (h <= math.log(c) + 1e-12)).all()
    assert torch.allclose(mi, samples.mutual_information().double(), atol=1e-6)
    assert torch.allclose(predictive_entropy(probs), h)  # a raw (S, N, C) array works too
    if s == 1:
        assert torch.equal(mi, torch.zeros(n, dtype=torch.float64))


def test_mutual_information_is_zero_for_plain_probabilities() -> None:
    assert torch.equal(mutual_information(torch.tensor(PROBS)), torch.zeros(3, dtype=torch.float64))


def test_classification_report_has_the_contract_keys_and_consistent_values() -> None:
    probs = _random_probs(200, 4, seed=3, s=5)
    labels = torch.randint(0, 4, (200,), generator=torch.Generator().manual_seed(3))
    samples = PredictiveSamples(probs=probs)
    report = classification_report(samples, labels)
    assert {"accuracy", "ece", "mce", "nll", "brier", "entropy", "mutual_information",
            "classwise_ece", "adaptive_ece"} <= set(report)
    assert all(isinstance(v, float) for v in report.values())
    assert report["ece"] == pytest.approx(ece(probs.mean(0), labels))
    assert report["mutual_information"] > 0
    assert classification_report(probs.mean(0), labels)["mutual_information"] == 0.0


# ---- OOD -------------------------------------------------------------------------------------
def test_ood_auroc_of_scores_matches_hand_counted_pairs() -> None:
    # out > in for (0.15 > 0.1), (0.3 > 0.1), (0.3 > 0.2): 3 of 4 pairs
    assert ood_auroc(torch.tensor([0.1, 0.2]), torch.tensor([0.15, 0.3])) == pytest.approx(0.75)
    # a tie (0.2 vs 0.2) counts one half: 3.5 of 4 pairs
    assert ood_auroc(np.array([0.1, 0.2]), np.array([0.2, 0.3])) == pytest.approx(0.875)


def test_ood_auroc_agrees_with_torchmetrics_on_random_scores() -> None:
    g = torch.Generator().manual_seed(0)
    s_in, s_out = torch.rand(300, generator=g), torch.rand(200, generator=g) + 0.2
    truth = torch.cat([torch.zeros(300), torch.ones(200)]).long()
    expected = binary_auroc(torch.cat([s_in, s_out]), truth)
    assert ood_auroc(s_in, s_out) == pytest.approx(float(expected), abs=1e-6)


@pytest.mark.parametrize("score", ["entropy", "mutual_information", "max_prob"])
def test_confident_in_distribution_vs_disagreeing_ood_samples_separate_perfectly(score) -> None:
    in_probs = torch.full((5, 50, 3), 0.01, dtype=torch.float64)
    in_probs[..., 0] = 0.98  # every sample confident and agreeing
    out_probs = torch.eye(3, dtype=torch.float64)[torch.arange(5) % 3][:, None].expand(5, 40, 3)
    out_probs = 0.9 * out_probs + 0.1 / 3  # each sample confident, samples disagree
    auroc = ood_auroc(PredictiveSamples(probs=in_probs), PredictiveSamples(probs=out_probs), score)
    assert auroc == 1.0
    assert ood_auroc(PredictiveSamples(probs=out_probs), PredictiveSamples(probs=in_probs),
                     score) == 0.0


def test_ood_scores_reject_unknown_score_and_empty_input() -> None:
    with pytest.raises(ValueError, match="score"):
        ood_scores(torch.tensor(PROBS), "energy")
    with pytest.raises(ValueError, match="empty"):
        ood_auroc(torch.tensor([]), torch.tensor([0.3]))


# ---- input validation ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("probs", "labels", "match"),
    [
        ([[0.5, float("nan")]], [0], "NaN or inf"),
        ([[float("inf"), 0.0]], [0], "NaN or inf"),
        ([[1.2, -0.2]], [0], "negative"),
        ([[2.0, 1.0]], [0], "sum to 1"),
        ([0.5, 0.5], [0], r"shape \(N, C\)"),
        ([[[0.5, 0.5]]], [0], r"shape \(N, C\)"),
        ([[1.0]], [0], "at least 2 classes"),
        (np.zeros((0, 3)), [], "empty"),
        ([[0.5, 0.5]], [0, 1], "entries but probs have N = 1"),
        ([[0.5, 0.5]], [[0]], r"labels must have shape \(N,\)"),
        ([[0.5, 0.5]], [2], r"\[0, 2\)"),
        ([[0.5, 0.5]], [-1], r"\[0, 2\)"),
        ([[0.5, 0.5]], [0.5], "integer"),
    ],
)
@pytest.mark.parametrize("metric", [accuracy, nll, brier, ece, classification_report])
def test_bad_inputs_raise_value_errors_naming_the_problem(probs, labels, match, metric) -> None:
    with pytest.raises(ValueError, match=match):
        metric(probs, labels)


def test_wrong_types_raise_type_errors() -> None:
    with pytest.raises(TypeError, match="integers"):
        ece([[0.5, 0.5]], torch.tensor([True]))
    with pytest.raises(TypeError, match="torch.Tensor or numpy"):
        ece("probs", [0])


def test_regression_samples_are_refused_where_probabilities_are_expected() -> None:
    with pytest.raises(ValueError, match="classification"):
        ece(PredictiveSamples(loc=torch.zeros(2, 3)), [0, 0, 0])


def test_float_labels_holding_integers_and_float32_probs_are_accepted() -> None:
    probs = torch.tensor(PROBS, dtype=torch.float32)
    assert accuracy(probs, torch.tensor([0.0, 2.0, 2.0])) == pytest.approx(2 / 3)
