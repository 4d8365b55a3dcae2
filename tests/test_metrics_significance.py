"""Paired differences across seeds: hand-computed example, table, and clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from hvgp.metrics import PairedDifference, paired_difference, paired_differences, paired_table

# differences a - b = [-1, -2, -3, 0.5, -1.5]
A = [1.0, 2.0, 3.0, 4.0, 5.0]
B = [2.0, 4.0, 6.0, 3.5, 6.5]


def test_paired_difference_matches_a_hand_computation() -> None:
    r = paired_difference(A, B)
    # mean -1.4; deviations 0.4 -0.6 -1.6 1.9 -0.1, squares sum 6.7, var 6.7 / 4 = 1.675
    se = math.sqrt(1.675 / 5)
    assert r.mean == pytest.approx(-1.4)
    assert (r.ci_low, r.ci_high) == pytest.approx((-1.4 - 2.776445 * se, -1.4 + 2.776445 * se),
                                                  abs=1e-5)  # t_{0.975, 4} = 2.776445
    assert r.t_p_value == pytest.approx(2 * stats.t.sf(1.4 / se, 4))
    # |d| ranks 0.5:1 1:2 1.5:3 2:4 3:5; W+ = 1 -> P(W+ <= 1) = 2/32, two-sided 4/32
    assert r.wilcoxon_p_value == pytest.approx(0.125)
    assert (r.a_wins, r.b_wins, r.ties, r.n) == (4, 1, 0, 5)
    assert not r.significant
    hi = paired_difference(A, B, lower_is_better=False)
    assert (hi.a_wins, hi.b_wins) == (1, 4)


def test_sentence_reads_as_one_sentence_with_interval_test_and_seed_count() -> None:
    cigl = [0.0112, 0.0120, 0.0105, 0.0131, 0.0118]
    rigl = [0.0139, 0.0150, 0.0140, 0.0155, 0.0151]
    r = paired_difference(cigl, rigl, metric="ECE", names=("CigL", "RigL"))
    text = str(r)
    assert text == r.sentence()
    assert text.startswith("ECE CigL \u2212 RigL = \u22120.00298 [\u22120.00353, \u22120.00243] "
                           "(95 % CI, paired t p < 0.001, Wilcoxon p = 0.062, 5 seeds)")
    assert "CigL lower in 5/5" in text and "excludes 0" in text and "%" not in text.split("CI")[1]
    assert "not significant at 95 %" in str(paired_difference(A, B))


def test_identical_and_constant_differences_have_defined_p_values() -> None:
    same = paired_difference([0.1, 0.2, 0.3], [0.1, 0.2, 0.3])
    assert (same.mean, same.t_p_value, same.wilcoxon_p_value, same.ties) == (0.0, 1.0, 1.0, 3)
    shifted = paired_difference([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])
    assert shifted.mean == -1.0 and shifted.t_p_value == 0.0 and shifted.significant


@settings(max_examples=40, deadline=None, derandomize=True)
@given(n=st.integers(2, 12), seed=st.integers(0, 10_000), shift=st.floats(-1, 1))
def test_interval_brackets_the_mean_and_wins_add_up(n: int, seed: int, shift: float) -> None:
    g = np.random.default_rng(seed)
    a = g.normal(size=n)
    b = a - shift + 0.3 * g.normal(size=n)
    r = paired_difference(a, b)
    assert r.ci_low <= r.mean <= r.ci_high
    assert r.a_wins + r.b_wins + r.ties == n
    assert 0.0 <= r.t_p_value <= 1.0 and 0.0 <= r.wilcoxon_p_value <= 1.0
    assert r.significant == (r.t_p_value < 0.05)  # the 95 % t interval and the t-test agree
    flipped = paired_difference(b, a)
    assert flipped.mean == pytest.approx(-r.mean) and flipped.a_wins == r.b_wins


def _rows() -> list[dict]:
    rigl = {0: 0.0139, 1: 0.0150, 2: 0.0140, 3: 0.0155, 4: 0.0151}
    cigl = {0: 0.0112, 1: 0.0120, 2: 0.0105, 3: 0.0131, 5: 0.0100}  # seed 5 has no partner
    rows = [{"model": "rigl", "seed": s, "ece": e, "accuracy": 0.96} for s, e in rigl.items()]
    rows += [{"model": "cigl", "seed": s, "ece": e, "accuracy": 0.96 + (s % 2) * 0.001}
             for s, e in cigl.items()]
    return rows


def test_paired_differences_pair_by_seed_and_use_only_shared_seeds() -> None:
    out = paired_differences(_rows(), reference="rigl", metrics=("ece", "accuracy"))
    assert set(out) == {"cigl"}
    ece_d = out["cigl"]["ece"]
    expected = paired_difference([0.0112, 0.0120, 0.0105, 0.0131], [0.0139, 0.0150, 0.0140, 0.0155])
    assert (ece_d.mean, ece_d.n, ece_d.a_wins) == (expected.mean, 4, 4)
    assert ece_d.seeds == (0, 1, 2, 3) and ece_d.name_a == "cigl" and ece_d.name_b == "rigl"
    acc = out["cigl"]["accuracy"]
    assert not acc.lower_is_better and (acc.a_wins, acc.ties) == (2, 2)


def test_paired_table_is_markdown_with_one_row_per_model() -> None:
    table = paired_table(_rows(), reference="rigl", metrics=("ece", "accuracy"))
    lines = table.splitlines()
    assert lines[0] == "| model \u2212 rigl | seeds | \u0394 ece | \u0394 accuracy |"
    assert lines[1] == "|---|---|---|---|"
    # ECE differences -0.0027 -0.0030 -0.0035 -0.0024: mean -0.0029, all four seeds lower
    assert lines[2].startswith("| cigl | 4 | \u22120.00290 [\u22120.00365, \u22120.00215], "
                               "p = 0.0011, 4/4 | ")
    assert lines[-1].startswith("Cells: mean of model")
    assert "higher for accuracy" in lines[-1]
    assert paired_table(_rows(), reference="rigl", metrics=("ece",), legend=False).count("\n") == 2


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="at least 2 seeds"):
        paired_difference([0.1], [0.2])
    with pytest.raises(ValueError, match="pair up"):
        paired_difference([0.1, 0.2, 0.3], [0.2, 0.3])
    with pytest.raises(ValueError, match="NaN"):
        paired_difference([0.1, float("nan")], [0.2, 0.3])
    with pytest.raises(ValueError, match="seeds has"):
        paired_difference([0.1, 0.2], [0.2, 0.3], seeds=[0])
    with pytest.raises(ValueError, match="distinct"):
        paired_difference([0.1, 0.2], [0.2, 0.3], seeds=[0, 0])
    with pytest.raises(ValueError, match="confidence"):
        paired_difference([0.1, 0.2], [0.2, 0.3], confidence=95)
    rows = _rows()
    with pytest.raises(ValueError, match="reference model 'dense'"):
        paired_table(rows, reference="dense")
    with pytest.raises(ValueError, match="metric 'nll' missing"):
        paired_table(rows, reference="rigl", metrics=("nll",))
    with pytest.raises(ValueError, match="share 1 seed"):
        paired_table(rows + [{"model": "dense", "seed": 0, "ece": 0.01}], reference="rigl",
                     metrics=("ece",))
    with pytest.raises(ValueError, match="two rows for seed 0"):
        paired_table(rows + [rows[0]], reference="rigl", metrics=("ece",))
    with pytest.raises(ValueError, match="cigl vs rigl, ece: .*NaN"):
        paired_table(rows + [{"model": "cigl", "seed": 4, "ece": float("nan")}],
                     reference="rigl", metrics=("ece",))
    with pytest.raises(ValueError, match="'model' and 'seed'"):
        paired_table([{"model": "rigl"}], reference="rigl")


def test_paired_difference_is_a_frozen_dataclass() -> None:
    r = paired_difference(A, B)
    assert isinstance(r, PairedDifference)
    with pytest.raises(AttributeError):
        r.mean = 0.0  # type: ignore[misc]
