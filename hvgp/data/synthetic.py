"""Small seeded synthetic sets for seeing uncertainty: 1-D regression with a gap, moons, spirals.

The data are drawn with ``data_seed`` (fixed by default) and the validation carve with
``seed``, so different training seeds see the same train pool and the same test set.
"""

from __future__ import annotations

import numpy as np

from .base import ArrayDataset, build_splits

__all__ = ["gap1d_function", "load_gap1d", "load_moons", "load_spirals", "make_spirals"]


def _check_count(name: str, value: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_noise(noise: float) -> float:
    if not isinstance(noise, (int, float)) or not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    return float(noise)


def gap1d_function(x: np.ndarray) -> np.ndarray:
    """The noiseless target of ``gap1d``: ``sin(3x) + 0.3 x²``."""
    x = np.asarray(x, dtype=np.float64)
    return np.sin(3.0 * x) + 0.3 * x**2


def load_gap1d(
    seed: int = 0,
    val_fraction: float = 0.1,
    n: int = 200,
    n_test: int = 200,
    noise: float = 0.1,
    gap: tuple[float, float] = (-0.35, 0.35),
    domain: tuple[float, float] = (-1.0, 1.0),
    test_domain: tuple[float, float] = (-1.5, 1.5),
    data_seed: int = 0,
) -> dict[str, ArrayDataset]:
    """1-D regression whose training inputs leave a gap, to watch uncertainty grow off data.

    Train / val inputs are uniform on ``domain`` minus ``gap``; test inputs are uniform on
    the wider ``test_domain`` (the gap *and* beyond the data), so test metrics measure
    in-between and extrapolation uncertainty. ``y = gap1d_function(x) + noise·ε``; inputs
    have shape ``(N, 1)``, targets ``(N,)``, neither standardised (the units are the plot's).

    :param n: size of the train pool (train + val).
    :param n_test: size of the test set.
    :param noise: observation noise std.
    :param gap: open interval without training inputs, inside ``domain``.
    :param domain: range of training inputs.
    :param test_domain: range of test inputs.
    :param data_seed: seed of the draw.
    """
    n, n_test, noise = _check_count("n", n, 2), _check_count("n_test", n_test), _check_noise(noise)
    lo, hi = float(domain[0]), float(domain[1])
    g0, g1 = float(gap[0]), float(gap[1])
    if not lo <= g0 < g1 <= hi or (g0 == lo and g1 == hi):
        raise ValueError(f"gap {gap} must be an interval inside domain {domain} that leaves data")
    rng = np.random.default_rng(data_seed)
    # inverse-CDF draw on the two intervals [lo, g0] ∪ [g1, hi]
    left, right = g0 - lo, hi - g1
    u = rng.uniform(0.0, left + right, size=n)
    x = np.where(u < left, lo + u, g1 + (u - left))
    x_test = rng.uniform(test_domain[0], test_domain[1], size=n_test)
    y = gap1d_function(x) + noise * rng.standard_normal(n)
    y_test = gap1d_function(x_test) + noise * rng.standard_normal(n_test)
    stats = {"noise": noise, "gap": (g0, g1), "domain": (lo, hi),
             "test_domain": tuple(float(v) for v in test_domain), "data_seed": int(data_seed)}
    return build_splits((x[:, None], y), (x_test[:, None], y_test), name="gap1d",
                        task="regression", num_classes=None, seed=seed,
                        val_fraction=val_fraction, stats=stats)


def _pool_and_test(x: np.ndarray, y: np.ndarray, n: int, name: str, seed: int,
                   val_fraction: float, stats: dict) -> dict[str, ArrayDataset]:
    """Split a freshly drawn ``n + n_test`` sample into pool (first ``n``) and test."""
    return build_splits((x[:n], y[:n].astype(np.int64)), (x[n:], y[n:].astype(np.int64)),
                        name=name, task="classification", num_classes=int(stats["num_classes"]),
                        seed=seed, val_fraction=val_fraction, stats=stats)


def load_moons(
    seed: int = 0,
    val_fraction: float = 0.1,
    n: int = 500,
    n_test: int = 500,
    noise: float = 0.15,
    data_seed: int = 0,
) -> dict[str, ArrayDataset]:
    """Two interleaving half-moons (``sklearn.datasets.make_moons``), 2 classes, 2-D inputs.

    :param n: size of the train pool (train + val).
    :param n_test: size of the test set.
    :param noise: std of Gaussian noise added to the points.
    :param data_seed: seed of the draw.
    """
    from sklearn.datasets import make_moons

    n, n_test, noise = _check_count("n", n, 2), _check_count("n_test", n_test), _check_noise(noise)
    x, y = make_moons(n_samples=n + n_test, noise=noise, shuffle=True, random_state=data_seed)
    stats = {"noise": noise, "data_seed": int(data_seed), "num_classes": 2}
    return _pool_and_test(x, y, n, "moons", seed, val_fraction, stats)


def make_spirals(n: int, num_classes: int = 2, noise: float = 0.05, turns: float = 1.5,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``num_classes`` interleaved spiral arms in the unit disc: ``(x (n, 2), y (n,))``.

    Arm ``k`` is ``r·(cos(θ + 2πk/K), sin(θ + 2πk/K))`` with ``θ = 2π·turns·r`` and ``r``
    drawn so points are uniform along the radius; classes are balanced (``n // K`` each,
    the remainder spread over the first arms) and rows shuffled.
    """
    n = _check_count("n", n, 1)
    num_classes = _check_count("num_classes", num_classes, 2)
    noise = _check_noise(noise)
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % num_classes)
    r = rng.uniform(0.05, 1.0, size=n)
    theta = 2 * np.pi * turns * r + 2 * np.pi * y / num_classes
    x = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
    x = x + noise * rng.standard_normal(x.shape)
    return x, y.astype(np.int64)


def load_spirals(
    seed: int = 0,
    val_fraction: float = 0.1,
    n: int = 500,
    n_test: int = 500,
    noise: float = 0.05,
    num_classes: int = 2,
    turns: float = 1.5,
    data_seed: int = 0,
) -> dict[str, ArrayDataset]:
    """Interleaved spirals (:func:`make_spirals`), ``num_classes`` arms, 2-D inputs.

    :param n: size of the train pool (train + val).
    :param n_test: size of the test set.
    :param noise: std of Gaussian noise added to the points.
    :param num_classes: number of arms / classes.
    :param turns: how many turns each arm makes.
    :param data_seed: seed of the draw.
    """
    n, n_test = _check_count("n", n, 2), _check_count("n_test", n_test)
    x, y = make_spirals(n + n_test, num_classes, noise, turns, data_seed)
    stats = {"noise": float(noise), "turns": float(turns), "data_seed": int(data_seed),
             "num_classes": int(num_classes)}
    return _pool_and_test(x, y, n, "spirals", seed, val_fraction, stats)
