"""Offline data sets and loaders: MNIST-1D (+ shift), scikit-learn sets, synthetic, CIFAR.

Nothing is downloaded at run time. Every set comes as train / val / test splits, validation
carved from train (10 % by default, seeded) and preprocessing fitted on train only, so
hyper-parameters and temperature scaling never touch test data.

>>> from hvgp.data import get_dataset
>>> ds = get_dataset("iris", "train", seed=0)
>>> ds.info.task, ds.info.input_shape, ds.info.num_classes, ds.info.n_train
('classification', (4,), 3, 108)
"""

from __future__ import annotations

from .base import ArrayDataset, DatasetInfo, Standardizer, build_splits, split_indices
from .cache import cache_dir
from .cifar import RandomCropFlip
from .mnist1d import shifted_args
from .registry import get_dataset, get_loaders, list_datasets, load_splits

__all__ = [
    "ArrayDataset",
    "DatasetInfo",
    "RandomCropFlip",
    "Standardizer",
    "build_splits",
    "cache_dir",
    "get_dataset",
    "get_loaders",
    "list_datasets",
    "load_splits",
    "shifted_args",
    "split_indices",
]
