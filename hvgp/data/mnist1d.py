"""MNIST-1D generated locally with the ``mnist1d`` package, plus a shifted variant.

The clean set is ``make_dataset(get_dataset_args())`` with the package defaults (5000
signals of length 40, 10 classes, 4000 train / 1000 test, generator seed 42): it is built
on this machine, never downloaded. The package standardises the signals with one global
mean and std over all 5000 (the canonical MNIST-1D recipe) and hvgp keeps that, so numbers
are comparable with published MNIST-1D results.

The *shifted* variant turns up the generator's nuisance knobs with a severity ``shift``
(noise, scale and shear; see :func:`shifted_args`). It uses the same generator seed, so
shifted sample *i* is a corrupted version of clean sample *i* (as CIFAR-10-C is of
CIFAR-10): train on ``mnist1d``, evaluate calibration on ``mnist1d-shift``'s test split.
Each variant is standardised by the package over its own samples, so the shift shows up as
more noise and distortion, not as a change of global offset/scale.

**Large held-out splits** (``val_size`` / ``test_size``, or the named set ``mnist1d-large``:
4000 validation and 20 000 test signals). A test split of 1000 cannot rank calibration: a
perfectly calibrated 97 %-accurate model shows ECE ≈ 0.008 ± 0.003 on it. The training split
stays the standard 4000 signals (bit for bit today's); validation and test come from two
further pools drawn from the same generator with other seeds (:data:`VAL_SEED`,
:data:`TEST_SEED`) and standardised with the *standard* set's global mean and std, so they
are the same distribution as the training data, share no signal with it, and the test split
does not depend on ``val_size``. The shifted large test split uses the test pool's seed with
the shifted generator arguments, so shifted test sample *i* corrupts clean test sample *i*.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Iterator
from typing import Any

import numpy as np

from .base import ArrayDataset, build_splits
from .cache import cache_dir, cache_key, load_arrays, save_arrays

__all__ = ["default_args", "generate_mnist1d", "generate_pool", "load_mnist1d",
           "load_mnist1d_large", "load_mnist1d_large_shift", "load_mnist1d_shift",
           "shifted_args", "LARGE_VAL_SIZE", "LARGE_TEST_SIZE"]

_KEYS = ("x", "y", "x_test", "y_test")
_CACHE_VERSION = 1
_MAX_SCALE_COEFF = 1.8  # the generator scales by 1 + c·(u - 0.5); c < 2 keeps it positive
#: generator seeds of the extra validation / test pools (the standard set uses 42)
VAL_SEED, TEST_SEED = 43, 44
#: sizes of the named large set ``mnist1d-large``
LARGE_VAL_SIZE, LARGE_TEST_SIZE = 4000, 20000


def default_args() -> dict[str, Any]:
    """The ``mnist1d`` package's default generator arguments, without its download URL."""
    from mnist1d.data import get_dataset_args

    args = dict(get_dataset_args(as_dict=True))
    args.pop("url", None)
    return args


def shifted_args(shift: float, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Generator arguments for a covariate shift of severity ``shift >= 0`` (0 = clean).

    ``iid_noise_scale *= 1 + 2·shift``, ``corr_noise_scale *= 1 + shift/2``,
    ``shear_scale *= 1 + shift``, ``scale_coeff *= 1 + shift`` (capped at 1.8 so the random
    amplitude factor stays positive). Severity 1 triples the i.i.d. noise, raises the
    correlated noise by half and doubles shear and amplitude spread: an MLP trained on clean
    MNIST-1D falls from 63 % to 48 / 35 / 24 % test accuracy at severity 0.5 / 1 / 2.
    """
    if isinstance(shift, bool) or not isinstance(shift, (int, float)) or not math.isfinite(shift):
        raise ValueError(f"shift must be a finite number >= 0, got {shift!r}")
    if shift < 0:
        raise ValueError(f"shift must be >= 0 (0 = the clean data), got {shift}")
    args = dict(default_args() if base is None else base)
    s = float(shift)
    args["iid_noise_scale"] = args["iid_noise_scale"] * (1 + 2 * s)
    args["corr_noise_scale"] = args["corr_noise_scale"] * (1 + 0.5 * s)
    args["shear_scale"] = args["shear_scale"] * (1 + s)
    args["scale_coeff"] = min(args["scale_coeff"] * (1 + s), _MAX_SCALE_COEFF)
    return args


@contextlib.contextmanager
def _preserved_rngs() -> Iterator[None]:
    """Restore NumPy's and Python's global RNG states afterwards (the generator reseeds them)."""
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


def _make(args: dict[str, Any]) -> dict[str, np.ndarray]:
    """Run ``mnist1d.data.make_dataset`` without disturbing the global RNGs it reseeds."""
    from mnist1d.data import make_dataset
    from mnist1d.utils import ObjectView

    with _preserved_rngs():
        data = make_dataset(ObjectView(dict(args)))
    return {"x": data["x"].astype(np.float32), "y": data["y"].astype(np.int64),
            "x_test": data["x_test"].astype(np.float32),
            "y_test": data["y_test"].astype(np.int64)}


def _raw_signals(args: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The generator's signals *before* its global standardisation (float64), and labels.

    Mirrors ``mnist1d.data.make_dataset`` step for step (same seeding, per-class loop and
    batch shuffle; a test checks that standardising these reproduces it exactly), because
    that function standardises with the statistics of whatever it generated, and the extra
    pools must be standardised with the standard set's statistics instead.
    """
    from mnist1d.data import get_templates
    from mnist1d.transform import transform
    from mnist1d.utils import ObjectView

    view = ObjectView(dict(args))
    templates = get_templates()
    with _preserved_rngs():
        random.seed(view.seed)
        np.random.seed(view.seed)
        xs, ys = [], []
        per_class = view.num_samples // len(templates["y"])
        for label in range(len(templates["y"])):
            for _ in range(per_class):
                x, _t = transform(templates["x"][label], templates["t"], view)
                xs.append(x)
                ys.append(templates["y"][label])
        order = np.random.permutation(len(ys))
        xs_arr, ys_arr = np.stack(xs)[order], np.stack(ys)[order]
        if view.shuffle_seq:
            xs_arr = xs_arr[..., np.random.permutation(view.final_seq_length)]
    return xs_arr, ys_arr.astype(np.int64)


def generate_pool(size: int, seed: int, args: dict[str, Any] | None = None,
                  cache: bool = True) -> dict[str, np.ndarray]:
    """``size`` extra signals ``x, y`` from generator ``args`` with generator seed ``seed``.

    Standardised with the global mean and std of the training set that the same
    ``args`` generate (so they follow its distribution exactly). ``size`` is rounded up to
    a multiple of 10 (balanced classes) and the first ``size`` rows are returned. Cached
    like :func:`generate_mnist1d`.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"pool size must be a positive integer, got {size!r}")
    base = _checked_args(args)
    if seed == base["seed"]:
        raise ValueError(f"an extra pool needs a generator seed other than the standard "
                         f"set's ({base['seed']}), or it would repeat the training signals")
    n = -(-size // 10) * 10
    key = {"v": _CACHE_VERSION, "pool": n, "pool_seed": int(seed), **base}
    path = cache_dir() / "mnist1d" / f"mnist1d-pool-{cache_key(key)}.npz"
    arrays = load_arrays(path, ("x", "y")) if cache else None
    if arrays is None:
        mean, std = _reference_stats(base)
        x, y = _raw_signals({**base, "num_samples": n, "seed": int(seed)})
        x = (x - mean) / std
        arrays = {"x": x.astype(np.float32), "y": y}
        if cache:
            save_arrays(path, arrays)
    return {"x": arrays["x"][:size], "y": arrays["y"][:size]}


_REFERENCE_STATS: dict[str, tuple[float, float]] = {}


def _reference_stats(args: dict[str, Any]) -> tuple[float, float]:
    """Global mean and std of the raw signals of the set ``args`` generates (the training
    set's standardisation), computed once per process for every pool that needs them."""
    key = cache_key(args)
    if key not in _REFERENCE_STATS:
        ref, _ = _raw_signals(args)
        _REFERENCE_STATS[key] = (float(ref.mean()), float(ref.std()))
    return _REFERENCE_STATS[key]


def _checked_args(args: dict[str, Any] | None) -> dict[str, Any]:
    """``args`` completed with the package defaults; unknown names are an error."""
    defaults = default_args()
    args = defaults if args is None else {**defaults, **args}
    unknown = set(args) - set(defaults)
    if unknown:
        raise ValueError(f"unknown MNIST-1D generator arguments {sorted(unknown)}; "
                         f"valid: {sorted(defaults)}")
    return args


def generate_mnist1d(args: dict[str, Any] | None = None, cache: bool = True
                     ) -> dict[str, np.ndarray]:
    """MNIST-1D arrays ``x, y, x_test, y_test`` for generator ``args`` (default: the package's).

    Results are cached under :func:`~hvgp.data.cache.cache_dir` ``/mnist1d`` keyed by the
    arguments; the cache is written atomically and a corrupt file is simply rebuilt.
    """
    args = _checked_args(args)
    if not cache:
        return _make(args)
    path = cache_dir() / "mnist1d" / f"mnist1d-{cache_key({'v': _CACHE_VERSION, **args})}.npz"
    arrays = load_arrays(path, _KEYS)
    if arrays is None:
        arrays = _make(args)
        save_arrays(path, arrays)
    return arrays


def load_mnist1d(
    seed: int = 0,
    val_fraction: float = 0.1,
    shift: float = 0.0,
    generator_args: dict[str, Any] | None = None,
    cache: bool = True,
    name: str = "mnist1d",
    val_size: int | None = None,
    test_size: int | None = None,
) -> dict[str, ArrayDataset]:
    """Train / val / test splits of MNIST-1D (``shift > 0``: the shifted variant).

    :param seed: seed of the validation carve (the data themselves use generator seed 42).
    :param val_fraction: share of the 4000 training signals held out for validation (only
        without ``val_size``).
    :param shift: shift severity, see :func:`shifted_args`.
    :param generator_args: overrides of the generator arguments (e.g. ``num_samples``).
    :param cache: use the on-disk cache.
    :param name: name recorded in :class:`~hvgp.data.base.DatasetInfo`.
    :param val_size: validation signals from a separate pool (generator seed
        :data:`VAL_SEED`); the training split is then all 4000 standard training signals and
        ``val_fraction`` has no effect (recorded as 0 in the info's stats).
    :param test_size: test signals from a separate pool (seed :data:`TEST_SEED`) instead of
        the standard 1000.
    """
    base = {**default_args(), **(generator_args or {})}
    args = shifted_args(shift, base)
    d = generate_mnist1d(args, cache=cache)
    stats: dict[str, Any] = {"generator_args": args, "shift": float(shift)}
    test = (d["x_test"], d["y_test"])
    if test_size is not None:
        pool = generate_pool(test_size, TEST_SEED, args, cache=cache)
        test = (pool["x"], pool["y"])
        stats.update(test_pool_seed=TEST_SEED)
    val = None
    if val_size is not None:
        pool = generate_pool(val_size, VAL_SEED, args, cache=cache)
        val = (pool["x"], pool["y"])
        stats.update(val_pool_seed=VAL_SEED)
        val_fraction = 0.0
    return build_splits((d["x"], d["y"]), test, name=name, task="classification",
                        num_classes=10, seed=seed, val_fraction=val_fraction, val=val,
                        stats=stats)


def load_mnist1d_shift(seed: int = 0, val_fraction: float = 0.1, shift: float = 1.0,
                       generator_args: dict[str, Any] | None = None, cache: bool = True,
                       val_size: int | None = None, test_size: int | None = None,
                       ) -> dict[str, ArrayDataset]:
    """The shifted MNIST-1D variant (default severity 1.0); see :func:`load_mnist1d`."""
    return load_mnist1d(seed, val_fraction, shift, generator_args, cache, "mnist1d-shift",
                        val_size, test_size)


def load_mnist1d_large(seed: int = 0, val_fraction: float = 0.1, shift: float = 0.0,
                       generator_args: dict[str, Any] | None = None, cache: bool = True,
                       val_size: int = LARGE_VAL_SIZE, test_size: int = LARGE_TEST_SIZE,
                       ) -> dict[str, ArrayDataset]:
    """``mnist1d-large``: the standard 4000 training signals, 4000 validation, 20 000 test.

    ``val_fraction`` is accepted (every loader gets it) and has no effect: validation is
    its own pool. ``shift > 0`` (``mnist1d-large-shift``) corrupts the same test pool.
    """
    name = "mnist1d-large-shift" if shift else "mnist1d-large"
    return load_mnist1d(seed, 0.0, shift, generator_args, cache, name, val_size, test_size)


def load_mnist1d_large_shift(seed: int = 0, val_fraction: float = 0.1, shift: float = 1.0,
                             generator_args: dict[str, Any] | None = None, cache: bool = True,
                             val_size: int = LARGE_VAL_SIZE, test_size: int = LARGE_TEST_SIZE,
                             ) -> dict[str, ArrayDataset]:
    """The shifted variant of ``mnist1d-large`` (default severity 1.0, same test pool)."""
    return load_mnist1d_large(seed, val_fraction, shift, generator_args, cache, val_size,
                              test_size)
