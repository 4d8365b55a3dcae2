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
"""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np

from .base import ArrayDataset, build_splits
from .cache import cache_dir, cache_key, load_arrays, save_arrays

__all__ = ["default_args", "generate_mnist1d", "load_mnist1d", "load_mnist1d_shift", "shifted_args"]

_KEYS = ("x", "y", "x_test", "y_test")
_CACHE_VERSION = 1
_MAX_SCALE_COEFF = 1.8  # the generator scales by 1 + c·(u - 0.5); c < 2 keeps it positive


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


def _make(args: dict[str, Any]) -> dict[str, np.ndarray]:
    """Run ``mnist1d.data.make_dataset`` without disturbing the global RNGs it reseeds."""
    from mnist1d.data import make_dataset
    from mnist1d.utils import ObjectView

    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(ObjectView(dict(args)))
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {"x": data["x"].astype(np.float32), "y": data["y"].astype(np.int64),
            "x_test": data["x_test"].astype(np.float32),
            "y_test": data["y_test"].astype(np.int64)}


def generate_mnist1d(args: dict[str, Any] | None = None, cache: bool = True
                     ) -> dict[str, np.ndarray]:
    """MNIST-1D arrays ``x, y, x_test, y_test`` for generator ``args`` (default: the package's).

    Results are cached under :func:`~hvgp.data.cache.cache_dir` ``/mnist1d`` keyed by the
    arguments; the cache is written atomically and a corrupt file is simply rebuilt.
    """
    defaults = default_args()
    args = defaults if args is None else {**defaults, **args}
    unknown = set(args) - set(defaults)
    if unknown:
        raise ValueError(f"unknown MNIST-1D generator arguments {sorted(unknown)}; "
                         f"valid: {sorted(defaults)}")
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
) -> dict[str, ArrayDataset]:
    """Train / val / test splits of MNIST-1D (``shift > 0``: the shifted variant).

    :param seed: seed of the validation carve (the data themselves use generator seed 42).
    :param val_fraction: share of the 4000 training signals held out for validation.
    :param shift: shift severity, see :func:`shifted_args`.
    :param generator_args: overrides of the generator arguments (e.g. ``num_samples``).
    :param cache: use the on-disk cache.
    :param name: name recorded in :class:`~hvgp.data.base.DatasetInfo`.
    """
    base = {**default_args(), **(generator_args or {})}
    args = shifted_args(shift, base)
    d = generate_mnist1d(args, cache=cache)
    return build_splits((d["x"], d["y"]), (d["x_test"], d["y_test"]), name=name,
                        task="classification", num_classes=10, seed=seed,
                        val_fraction=val_fraction,
                        stats={"generator_args": args, "shift": float(shift)})


def load_mnist1d_shift(seed: int = 0, val_fraction: float = 0.1, shift: float = 1.0,
                       **kw: Any) -> dict[str, ArrayDataset]:
    """The shifted MNIST-1D variant (default severity 1.0); see :func:`load_mnist1d`."""
    return load_mnist1d(seed, val_fraction, shift=shift, name="mnist1d-shift", **kw)
