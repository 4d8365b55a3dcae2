"""Per-layer budgets: ERK reference arithmetic, exact global counts, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hvgp.sparsity import allocate_counts, allocate_densities

# Weight shapes in torch layout (out, in, *kernel); ERK raw score = sum(shape) / prod(shape).
SHAPES = {
    "a": torch.Size([8, 3, 3, 3]),  # Conv2d(3, 8, 3):  n = 216,  raw = (8+3+3+3)/216 = 17/216
    "b": torch.Size([16, 8, 3, 3]),  # Conv2d(8, 16, 3): n = 1152, raw = (16+8+3+3)/1152 = 30/1152
    "c": torch.Size([4, 16]),  # Linear(16, 4):   n = 64,   raw = (4+16)/64 = 20/64
}


def test_erk_matches_hand_computed_reference_with_dense_redistribution() -> None:
    # N = 216 + 1152 + 64 = 1432; sparsity 0.8 -> budget 0.2 * 1432 = 286.4 weights.
    # Pass 1: sum(raw * n) = 17 + 30 + 20 = 67, eps = 286.4 / 67 = 4.2746...
    #   density c = 20/64 * 4.2746 = 1.336 > 1  -> c becomes dense (64 weights).
    # Pass 2: rhs = 286.4 - 64 = 222.4, sum(raw * n) over a, b = 17 + 30 = 47,
    #   eps = 222.4 / 47; density a = 17/216 * eps = 0.37243, b = 30/1152 * eps = 0.12323,
    #   both <= 1, so stop.
    # Counts: a ideal = 17 * 222.4 / 47 = 80.443, b ideal = 30 * 222.4 / 47 = 141.957;
    #   target = round(286.4) = 286, sparse share 286 - 64 = 222; floors 80 + 141 = 221,
    #   the extra weight goes to the larger remainder (b: .957) -> a = 80, b = 142.
    eps = 222.4 / 47
    dens = allocate_densities(SHAPES, 0.8, "erk")
    assert dens["c"] == 1.0
    assert dens["a"] == pytest.approx(17 / 216 * eps, rel=1e-12)
    assert dens["b"] == pytest.approx(30 / 1152 * eps, rel=1e-12)
    assert allocate_counts(SHAPES, 0.8, "erk") == {"a": 80, "b": 142, "c": 64}


def test_er_scores_only_fan_in_and_fan_out() -> None:
    # ER raw: a (8+3)/24, b (16+8)/128, c (4+16)/64; with sparsity 0.95 -> budget 71.6,
    # sum(raw * n) = 11*9 + 24*9 + 20 = 335, eps = 71.6 / 335; c: 20/64 * eps = 0.0668 <= 1.
    eps = 0.05 * 1432 / 335
    dens = allocate_densities(SHAPES, 0.95, "er")
    assert dens["a"] == pytest.approx(11 / 24 * eps)
    assert dens["b"] == pytest.approx(24 / 128 * eps)
    assert dens["c"] == pytest.approx(20 / 64 * eps)


def test_uniform_rescales_the_remaining_layers_when_some_are_dense() -> None:
    # a dense (216); the rest share 286.4 - 216 = 70.4 over 1216 weights.
    dens = allocate_densities(SHAPES, 0.8, "uniform", dense=["a"])
    assert dens["a"] == 1.0
    assert dens["b"] == pytest.approx(70.4 / 1216) and dens["c"] == pytest.approx(70.4 / 1216)
    counts = allocate_counts(SHAPES, 0.8, "uniform", dense=["a"])
    assert counts["a"] == 216 and sum(counts.values()) == 286


def test_erk_power_scale_zero_is_uniform() -> None:
    assert allocate_counts(SHAPES, 0.7, "erk", erk_power_scale=0.0) == allocate_counts(
        SHAPES, 0.7, "uniform"
    )


def test_zero_sparsity_is_fully_dense() -> None:
    counts = allocate_counts(SHAPES, 0.0, "erk")
    assert counts == {n: math.prod(s) for n, s in SHAPES.items()}


shape_st = st.one_of(
    st.tuples(st.integers(1, 40), st.integers(1, 40)),
    st.tuples(st.integers(1, 16), st.integers(1, 16), st.sampled_from([1, 3, 5])).map(
        lambda t: (t[0], t[1], t[2], t[2])
    ),
)


@settings(max_examples=200, deadline=None)
@given(
    shapes=st.lists(shape_st, min_size=1, max_size=6),
    sparsity=st.floats(0.0, 0.999, exclude_max=True),
    method=st.sampled_from(["erk", "er", "uniform"]),
    dense_first=st.booleans(),
)
def test_counts_are_exact_integers_with_exact_global_total(
    shapes: list[tuple[int, ...]], sparsity: float, method: str, dense_first: bool
) -> None:
    named = {f"l{i}": torch.Size(s) for i, s in enumerate(shapes)}
    total = sum(math.prod(s) for s in named.values())
    dense = ["l0"] if dense_first and math.prod(named["l0"]) <= total * (1 - sparsity) else []
    counts = allocate_counts(named, sparsity, method, dense=dense)
    assert all(isinstance(c, int) for c in counts.values())
    assert all(0 <= counts[n] <= math.prod(s) for n, s in named.items())
    assert abs(sum(counts.values()) - total * (1 - sparsity)) <= 1.0
    for n in dense:
        assert counts[n] == math.prod(named[n])


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan"), float("inf")])
def test_sparsity_outside_unit_interval_is_a_value_error(bad: float) -> None:
    with pytest.raises(ValueError, match="sparsity must be in"):
        allocate_counts(SHAPES, bad)


def test_non_numeric_sparsity_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="sparsity"):
        allocate_counts(SHAPES, "0.5")  # type: ignore[arg-type]


def test_unknown_method_lists_valid_methods() -> None:
    with pytest.raises(ValueError, match="unknown allocation method 'erdos'.*erk, er, uniform"):
        allocate_counts(SHAPES, 0.5, method="erdos")


def test_unknown_dense_name_is_named() -> None:
    with pytest.raises(ValueError, match="'zzz'"):
        allocate_counts(SHAPES, 0.5, dense=["zzz"])


def test_dense_layers_over_budget_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="dense layers"):
        allocate_counts(SHAPES, 0.99, dense=["b"])


def test_empty_shapes_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="at least one layer"):
        allocate_counts({}, 0.5)
