"""Per-layer budgets of active weights: ERK, ER and uniform allocation.

Why exact integers: the global density must equal ``1 - sparsity`` to within one weight and
the topology updaters preserve each layer's count, so the counts fixed here are the counts
for the whole run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch

__all__ = ["ALLOCATION_METHODS", "allocate_counts", "allocate_densities", "check_sparsity"]

ALLOCATION_METHODS = ("erk", "er", "uniform")


def check_sparsity(sparsity: float) -> float:
    """Validate a target sparsity (fraction of masked weights) in ``[0, 1)``."""
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)):
        raise TypeError(f"sparsity must be a float in [0, 1), got {type(sparsity).__name__}")
    sparsity = float(sparsity)
    if not math.isfinite(sparsity) or not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity!r}")
    return sparsity


def _check_method(method: str) -> str:
    if not isinstance(method, str) or method.lower() not in ALLOCATION_METHODS:
        raise ValueError(
            f"unknown allocation method {method!r}; valid methods: {', '.join(ALLOCATION_METHODS)}"
        )
    return method.lower()


def _raw_score(shape: torch.Size, method: str, power: float) -> float:
    """Unnormalised density of a layer: ERK sum/prod of all dims, ER of (out, in) only."""
    if method == "uniform":
        return 1.0
    dims = list(shape) if method == "erk" else list(shape[:2])
    return (sum(dims) / math.prod(dims)) ** power


def allocate_densities(
    shapes: Mapping[str, torch.Size],
    sparsity: float,
    method: str = "erk",
    dense: Iterable[str] = (),
    erk_power_scale: float = 1.0,
) -> dict[str, float]:
    """Real-valued per-layer densities whose weighted mean is ``1 - sparsity``.

    Follows google-research/rigl ``get_sparsities``: densities proportional to the raw
    score, scaled by one factor eps; while the largest scaled density exceeds 1, the layers
    holding the largest raw score become dense and eps is recomputed over the rest.
    Layers in ``dense`` are dense and count towards the global budget.
    """
    sparsity = check_sparsity(sparsity)
    method = _check_method(method)
    if not shapes:
        raise ValueError("allocate_counts needs at least one layer shape, got none")
    if not math.isfinite(erk_power_scale) or erk_power_scale < 0:
        raise ValueError(f"erk_power_scale must be finite and >= 0, got {erk_power_scale!r}")
    sizes = {}
    for name, shape in shapes.items():
        shape = torch.Size(shape)
        if len(shape) == 0 or any(d <= 0 for d in shape):
            raise ValueError(f"layer {name!r} has shape {tuple(shape)}: all dims must be > 0")
        sizes[name] = math.prod(shape)
    dense_set = set(dense)
    unknown = dense_set - set(shapes)
    if unknown:
        raise ValueError(f"dense names {sorted(unknown)} are not among the layers {list(shapes)}")
    total = sum(sizes.values())
    budget = total * (1.0 - sparsity)
    if sum(sizes[n] for n in dense_set) > budget + 0.5:
        raise ValueError(
            f"the dense layers {sorted(dense_set)} alone hold more weights than the global "
            f"budget at sparsity {sparsity} ({budget:.0f} of {total}); lower the sparsity or "
            "make fewer layers dense"
        )
    raw = {n: _raw_score(shapes[n], method, erk_power_scale) for n in shapes}
    while True:
        sparse = [n for n in shapes if n not in dense_set]
        if not sparse:
            break
        rhs = budget - sum(sizes[n] for n in dense_set)
        divisor = sum(raw[n] * sizes[n] for n in sparse)
        eps = max(rhs, 0.0) / divisor
        max_raw = max(raw[n] for n in sparse)
        if max_raw * eps <= 1.0:
            break
        dense_set.update(n for n in sparse if raw[n] == max_raw)
    return {n: 1.0 if n in dense_set else raw[n] * eps for n in shapes}


def _round_to_total(ideal: dict[str, float], caps: dict[str, int], target: int) -> dict[str, int]:
    """Integer counts near ``ideal`` (largest remainder), each in ``[0, cap]``, summing to
    ``target``."""
    counts = {n: min(max(int(math.floor(x)), 0), caps[n]) for n, x in ideal.items()}
    rem = {n: ideal[n] - counts[n] for n in ideal}
    diff = target - sum(counts.values())
    order_up = sorted(ideal, key=lambda n: (-rem[n], n))
    while diff > 0:
        progressed = False
        for n in order_up:
            if diff == 0:
                break
            if counts[n] < caps[n]:
                counts[n] += 1
                diff -= 1
                progressed = True
        if not progressed:
            raise ValueError(
                f"cannot place {target} weights in layers of total size {sum(caps.values())}"
            )
    order_down = sorted(ideal, key=lambda n: (rem[n], n))
    while diff < 0:
        for n in order_down:
            if diff == 0:
                break
            if counts[n] > 0:
                counts[n] -= 1
                diff += 1
    return counts


def allocate_counts(
    shapes: Mapping[str, torch.Size],
    sparsity: float,
    method: str = "erk",
    dense: Iterable[str] = (),
    erk_power_scale: float = 1.0,
) -> dict[str, int]:
    """Active weights per layer: exact integers summing to ``round(N * (1 - sparsity))``.

    :param shapes: layer name -> weight shape (torch layout, ``(out, in, *kernel)``).
    :param sparsity: global fraction of masked weights, in ``[0, 1)``.
    :param method: ``"erk"`` (Erdős–Rényi–Kernel), ``"er"`` (Erdős–Rényi on (out, in)) or
        ``"uniform"`` (same density for every non-dense layer).
    :param dense: names of layers kept fully dense (their weights count in the budget).
    :param erk_power_scale: exponent on the ERK/ER raw score (1 = standard ERK, 0 = uniform).
    """
    densities = allocate_densities(shapes, sparsity, method, dense, erk_power_scale)
    caps = {n: math.prod(torch.Size(s)) for n, s in shapes.items()}
    target = int(round(sum(caps.values()) * (1.0 - float(sparsity))))
    dense_all = {n for n, d in densities.items() if d >= 1.0}
    counts = {n: caps[n] for n in dense_all}
    rest = [n for n in shapes if n not in dense_all]
    if rest:
        ideal = {n: densities[n] * caps[n] for n in rest}
        rest_target = max(target - sum(counts.values()), 0)
        counts.update(_round_to_total(ideal, {n: caps[n] for n in rest}, rest_target))
    return {n: counts[n] for n in shapes}
