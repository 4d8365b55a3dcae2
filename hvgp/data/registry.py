"""One entry point for every data set: ``get_dataset`` / ``get_loaders`` by name.

A registry maps each name to a loader returning all three splits and, optionally, the
training augmentation built from the loaded info. Seeds: ``seed`` picks the validation carve
and the training loader's shuffling; the data themselves and the test split are fixed
(``data_seed`` / ``test_seed`` keywords where a set has them), so every training seed is
evaluated on the same test data.
"""

from __future__ import annotations

import difflib
import inspect
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from .base import SPLITS, ArrayDataset, DatasetInfo
from .cifar import cifar_augmentation, load_cifar
from .mnist1d import (
    load_mnist1d,
    load_mnist1d_large,
    load_mnist1d_large_shift,
    load_mnist1d_shift,
)
from .sklearn_sets import SKLEARN_SETS, load_sklearn
from .synthetic import load_gap1d, load_moons, load_spirals

__all__ = ["get_dataset", "get_loaders", "list_datasets", "load_splits"]

Loader = Callable[..., dict[str, ArrayDataset]]


@dataclass(frozen=True)
class _Entry:
    """A registered data set: how to load its splits and its training augmentation."""

    loader: Loader
    augmentation: Callable[[DatasetInfo], Callable[[Tensor], Tensor]] | None = None


_REGISTRY: dict[str, _Entry] = {
    "mnist1d": _Entry(load_mnist1d),
    "mnist1d-shift": _Entry(load_mnist1d_shift),
    "mnist1d-large": _Entry(load_mnist1d_large),
    "mnist1d-large-shift": _Entry(load_mnist1d_large_shift),
    **{name: _Entry(partial(load_sklearn, name)) for name in SKLEARN_SETS},
    "gap1d": _Entry(load_gap1d),
    "moons": _Entry(load_moons),
    "spirals": _Entry(load_spirals),
    "cifar10": _Entry(partial(load_cifar, "cifar10"), cifar_augmentation),
    "cifar100": _Entry(partial(load_cifar, "cifar100"), cifar_augmentation),
}


def list_datasets() -> list[str]:
    """Names accepted by :func:`get_dataset` and :func:`get_loaders`."""
    return list(_REGISTRY)


def _canonical(name: str) -> str:
    return name.strip().lower().replace("_", "-")


_ALIASES = {_canonical(n): n for n in _REGISTRY}


def _lookup(name: str) -> tuple[str, _Entry]:
    if not isinstance(name, str):
        raise TypeError(f"data-set name must be a string, got {type(name).__name__}")
    key = _ALIASES.get(_canonical(name))
    if key is None:
        close = difflib.get_close_matches(_canonical(name), list(_ALIASES), n=1)
        hint = f" (did you mean {_ALIASES[close[0]]!r}?)" if close else ""
        raise ValueError(f"unknown data set {name!r}{hint}; valid names: "
                         f"{', '.join(list_datasets())}")
    return key, _REGISTRY[key]


def _call_loader(name: str, entry: _Entry, seed: int, val_fraction: float,
                 kw: dict[str, Any]) -> dict[str, ArrayDataset]:
    params = inspect.signature(entry.loader).parameters
    unknown = sorted(set(kw) - set(params))
    if unknown:
        valid = sorted(p for p in params if p not in ("seed", "val_fraction", "name"))
        raise TypeError(f"data set {name!r} got unexpected keyword(s) {unknown}; "
                        f"it accepts {valid}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int, got {seed!r}")
    return entry.loader(seed=int(seed), val_fraction=val_fraction, **kw)


def load_splits(name: str, seed: int = 0, val_fraction: float = 0.1, augment: bool = False,
                **kw: Any) -> dict[str, ArrayDataset]:
    """All three splits of ``name`` at once (``{"train", "val", "test"}``), loaded once.

    :param augment: attach the set's training augmentation (if it has one) to ``train``.
    :param kw: data-set specific options (``shift=``, ``n=``, ``root=``, ...).
    """
    key, entry = _lookup(name)
    splits = _call_loader(key, entry, seed, val_fraction, kw)
    if augment and entry.augmentation is not None:
        train = splits["train"]
        splits["train"] = train.with_transform(entry.augmentation(train.info))
    return splits


def get_dataset(name: str, split: str = "train", seed: int = 0, val_fraction: float = 0.1,
                augment: bool = False, **kw: Any) -> ArrayDataset:
    """One split of a data set as an :class:`ArrayDataset`.

    >>> ds = get_dataset("moons", "val", seed=0, n=100)
    >>> len(ds), ds.info.n_train, ds.x.dtype
    (10, 90, torch.float32)

    :param name: one of :func:`list_datasets` (case and ``-``/``_`` insensitive).
    :param split: ``"train"``, ``"val"`` or ``"test"``.
    :param seed: seed of the validation carve.
    :param val_fraction: share of the training pool held out for validation, in ``[0, 1)``.
    :param augment: attach the training augmentation (train split only; CIFAR has one).
    :param kw: data-set specific options (``shift=``, ``n=``, ``root=``, ...).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    if augment and split != "train":
        raise ValueError(f"augmentation is for the train split only, not {split!r}")
    return load_splits(name, seed, val_fraction, augment=augment, **kw)[split]


def get_loaders(
    name: str,
    batch_size: int = 128,
    seed: int = 0,
    val_fraction: float = 0.1,
    num_workers: int = 0,
    augment: bool = True,
    eval_batch_size: int | None = None,
    pin_memory: bool | None = None,
    **kw: Any,
) -> tuple[DataLoader, DataLoader, DataLoader, DatasetInfo]:
    """Train / val / test ``DataLoader`` s and the data set's info.

    The train loader shuffles with a ``torch.Generator`` seeded by ``seed`` (so two calls
    with one seed yield the same batches) and alone carries the augmentation; val and test
    keep their order. ``drop_last=False`` everywhere.

    :param batch_size: train batch size (and eval batch size unless ``eval_batch_size``).
    :param num_workers: ``DataLoader`` worker processes.
    :param augment: apply the set's training augmentation (CIFAR: crop + flip).
    :param pin_memory: pin host memory; default: when CUDA is available.
    :param kw: data-set specific options, passed to :func:`load_splits`.
    """
    for label, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"num_workers must be an integer >= 0, got {num_workers!r}")
    splits = load_splits(name, seed, val_fraction, augment=augment, **kw)
    pin = torch.cuda.is_available() if pin_memory is None else bool(pin_memory)
    common: dict[str, Any] = {"num_workers": num_workers, "pin_memory": pin, "drop_last": False}
    generator = torch.Generator().manual_seed(int(seed))
    train = DataLoader(splits["train"], batch_size=batch_size, shuffle=True,
                       generator=generator, **common)
    ebs = eval_batch_size or batch_size
    val = DataLoader(splits["val"], batch_size=ebs, shuffle=False, **common)
    test = DataLoader(splits["test"], batch_size=ebs, shuffle=False, **common)
    return train, val, test, splits["train"].info
