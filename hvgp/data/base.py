"""Containers and helpers every hvgp data set shares: info, tensors, splits, standardisation.

Each loader in :mod:`hvgp.data` produces a *train pool* and a *test* set as NumPy arrays and
hands them to :func:`build_splits`, which carves the validation split from the pool (seeded,
stratified for classification), fits standardisation on the train split only and wraps the
three splits as :class:`ArrayDataset`. Keeping this in one place means every data set obeys
the same rules: no test data and no validation data ever inform a fitted statistic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = [
    "SPLITS",
    "TASKS",
    "ArrayDataset",
    "DatasetInfo",
    "Standardizer",
    "build_splits",
    "check_training_loader",
    "split_indices",
]

SPLITS: tuple[str, ...] = ("train", "val", "test")
TASKS: tuple[str, ...] = ("classification", "regression")


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a data set: task, input shape, classes, split sizes.

    ``n_train`` is the size of the *train* split (validation excluded), the number a
    likelihood uses to scale a minibatch log-likelihood to the whole data set (ELBO scaling).
    ``stats`` records fitted preprocessing (e.g. ``x_mean``/``x_std`` from the train split,
    ``y_mean``/``y_std`` for standardised regression targets) and generator settings.

    :param name: registry name of the data set.
    :param task: ``"classification"`` or ``"regression"``.
    :param input_shape: shape of one input, e.g. ``(40,)`` or ``(3, 32, 32)``.
    :param num_classes: number of classes, ``None`` for regression.
    :param n_train: size of the train split.
    :param n_val: size of the validation split.
    :param n_test: size of the test split.
    :param stats: fitted preprocessing statistics and generator settings (not compared).
    """

    name: str
    task: str
    input_shape: tuple[int, ...]
    num_classes: int | None
    n_train: int
    n_val: int = 0
    n_test: int = 0
    stats: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.task == "classification" and (self.num_classes is None or self.num_classes < 2):
            raise ValueError(f"a classification data set needs num_classes >= 2, got "
                             f"{self.num_classes!r}")
        if self.task == "regression" and self.num_classes is not None:
            raise ValueError(f"a regression data set has num_classes=None, got {self.num_classes}")
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))

    @property
    def output_dim(self) -> int:
        """Width of the network output: the number of classes, or 1 for regression."""
        return self.num_classes if self.num_classes is not None else 1


class ArrayDataset(Dataset):
    """An in-memory split: float32 inputs ``x``, labels ``y`` and the data set's info.

    Why not ``TensorDataset``: models need the :class:`DatasetInfo` (task, classes, train
    size) next to the tensors, and augmentation must be an optional per-sample ``transform``
    that the training loader alone applies. ``y`` is int64 class indices for classification
    and float32 of shape ``(N,)`` for regression. ``source_index`` is each row's index in the
    generator's / archive's original order (train pool first, then test), which lets tests
    and users check provenance and the absence of overlap between splits.

    :param x: inputs, ``(N, *info.input_shape)``; converted to a float32 tensor.
    :param y: targets, ``(N,)``.
    :param info: the data set's :class:`DatasetInfo`.
    :param transform: optional callable applied to one input in ``__getitem__``.
    :param source_index: optional int64 ``(N,)`` original row indices.
    """

    def __init__(
        self,
        x: Tensor | np.ndarray,
        y: Tensor | np.ndarray,
        info: DatasetInfo,
        transform: Callable[[Tensor], Tensor] | None = None,
        source_index: Tensor | np.ndarray | None = None,
    ) -> None:
        self.x = torch.as_tensor(x, dtype=torch.float32)
        y_dtype = torch.int64 if info.task == "classification" else torch.float32
        self.y = torch.as_tensor(y, dtype=y_dtype)
        if self.y.dim() != 1:
            raise ValueError(f"y must have shape (N,), got {tuple(self.y.shape)}")
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"x and y disagree on N: x has {self.x.shape[0]} rows, "
                             f"y has {self.y.shape[0]}")
        if tuple(self.x.shape[1:]) != info.input_shape:
            raise ValueError(f"x rows have shape {tuple(self.x.shape[1:])} but info.input_shape "
                             f"is {info.input_shape}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None, got {type(transform).__name__}")
        if source_index is None:
            source_index = torch.arange(len(self.y))
        self.source_index = torch.as_tensor(source_index, dtype=torch.int64)
        if self.source_index.shape != self.y.shape:
            raise ValueError("source_index must have one entry per row")
        self.info = info
        self.transform = transform

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        x = self.x[index]
        if self.transform is not None:
            x = self.transform(x)
        return x, self.y[index]

    def tensors(self) -> tuple[Tensor, Tensor]:
        """The whole split as ``(x, y)`` without any transform (for full-batch models)."""
        return self.x, self.y

    def with_transform(self, transform: Callable[[Tensor], Tensor] | None) -> ArrayDataset:
        """A view of the same tensors with another per-sample transform (no copy)."""
        return ArrayDataset(self.x, self.y, self.info, transform, self.source_index)

    def __repr__(self) -> str:
        t = "" if self.transform is None else f", transform={self.transform!r}"
        return (f"ArrayDataset({self.info.name!r}, n={len(self)}, "
                f"x={tuple(self.x.shape)}, y={self.y.dtype}{t})")


def split_indices(
    n: int,
    fraction: float,
    seed: int,
    stratify: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n)`` into sorted ``(kept, held_out)`` indices, ``round(fraction·n)`` held out.

    Seeded so the same seed always carves the same split; stratified by ``stratify`` labels
    when given (falls back to a plain random split when some class is too small to stratify).

    :param n: number of rows.
    :param fraction: share held out, in ``[0, 1)``.
    :param seed: RNG seed for the split.
    :param stratify: optional ``(n,)`` labels to keep class proportions.
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not (isinstance(fraction, (int, float)) and 0.0 <= float(fraction) < 1.0):
        raise ValueError(f"split fraction must be in [0, 1), got {fraction!r}")
    n_held = int(round(float(fraction) * n))
    if n_held == 0:
        return np.arange(n), np.arange(0)
    if n_held >= n:
        raise ValueError(f"fraction {fraction} of {n} rows leaves nothing to keep")
    idx = np.arange(n)
    if stratify is not None:
        from sklearn.model_selection import train_test_split

        try:
            kept, held = train_test_split(idx, test_size=n_held, random_state=int(seed),
                                          stratify=np.asarray(stratify))
            return np.sort(kept), np.sort(held)
        except ValueError:
            pass  # a class with a single member, or fewer held-out rows than classes
    perm = np.random.default_rng(int(seed)).permutation(n)
    return np.sort(perm[n_held:]), np.sort(perm[:n_held])


@dataclass(frozen=True)
class Standardizer:
    """Affine map ``(x - mean) / std`` with statistics fitted on one array (the train split).

    Statistics are reduced over ``axes`` (``(0,)`` per feature; ``(0, 2, 3)`` per image
    channel). Constant features get ``std = 1`` so they map to 0 instead of NaN. Fitting and
    transforming run in chunks over rows, so a uint8 CIFAR array is never copied whole into
    float64.
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, axes: Sequence[int] = (0,), chunk: int = 4096) -> Standardizer:
        """Fit per-feature (or per-channel) mean and std of ``x`` over ``axes``."""
        x = np.asarray(x)
        axes = tuple(int(a) for a in axes)
        if 0 not in axes:
            raise ValueError(f"axes must include the row axis 0, got {axes}")
        if x.shape[0] < 1:
            raise ValueError("cannot fit a Standardizer on zero rows")
        n_reduced = int(np.prod([x.shape[a] for a in axes]))
        s1: np.ndarray | float = 0.0
        for i in range(0, x.shape[0], chunk):  # two passes: mean, then centred squares
            s1 = s1 + x[i:i + chunk].sum(axis=axes, keepdims=True, dtype=np.float64)
        mean = np.asarray(s1) / n_reduced
        s2: np.ndarray | float = 0.0
        for i in range(0, x.shape[0], chunk):
            s2 = s2 + np.square(x[i:i + chunk] - mean).sum(axis=axes, keepdims=True)
        std = np.sqrt(np.asarray(s2) / n_reduced)
        std = np.where(std > 1e-8 * np.maximum(1.0, np.abs(mean)), std, 1.0)
        return cls(mean=mean, std=std)

    def transform(self, x: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """Standardise ``x`` with the fitted statistics; returns float32."""
        x = np.asarray(x)
        out = np.empty(x.shape, dtype=np.float32)
        for i in range(0, x.shape[0], chunk):
            out[i:i + chunk] = (x[i:i + chunk] - self.mean) / self.std
        return out

    def inverse_transform(self, z: np.ndarray) -> np.ndarray:
        """Map standardised values back to the original units."""
        return np.asarray(z) * self.std + self.mean

    def flat(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Mean and std as flat tuples of floats (for :attr:`DatasetInfo.stats`)."""
        return (tuple(float(v) for v in self.mean.ravel()),
                tuple(float(v) for v in self.std.ravel()))


def build_splits(
    pool: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    *,
    name: str,
    task: str,
    num_classes: int | None,
    seed: int,
    val_fraction: float,
    standardize_axes: Sequence[int] | None = None,
    standardize_y: bool = False,
    pool_index: np.ndarray | None = None,
    test_index: np.ndarray | None = None,
    stats: dict[str, Any] | None = None,
    val: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, ArrayDataset]:
    """Carve validation from the pool, fit preprocessing on train only, wrap three splits.

    :param pool: ``(x, y)`` the train pool (train + validation) in source order.
    :param test: ``(x, y)`` the held-out test set.
    :param name: data-set name for :class:`DatasetInfo`.
    :param task: ``"classification"`` or ``"regression"``.
    :param num_classes: number of classes (``None`` for regression).
    :param seed: seed of the validation carve.
    :param val_fraction: share of the pool moved to validation, in ``[0, 1)``.
    :param standardize_axes: reduce axes for input standardisation (``None``: leave as is).
    :param standardize_y: standardise regression targets with train statistics.
    :param pool_index: original indices of the pool rows (default ``arange``).
    :param test_index: original indices of the test rows (default after the pool).
    :param stats: extra entries for :attr:`DatasetInfo.stats`.
    :param val: ``(x, y)`` a separate validation set (then the whole pool trains and
        ``val_fraction`` must be 0); its rows are indexed after the test rows.
    """
    x_pool, y_pool = np.asarray(pool[0]), np.asarray(pool[1])
    x_test, y_test = np.asarray(test[0]), np.asarray(test[1])
    if x_pool.shape[1:] != x_test.shape[1:]:
        raise ValueError(f"pool rows {x_pool.shape[1:]} and test rows {x_test.shape[1:]} differ")
    n_pool = len(y_pool)
    pool_index = np.arange(n_pool) if pool_index is None else np.asarray(pool_index)
    if test_index is None:
        test_index = n_pool + np.arange(len(y_test))
    stratify = y_pool if task == "classification" else None
    tr, va = split_indices(n_pool, val_fraction, seed, stratify)
    stats = dict(stats or {})
    stats.update(seed=int(seed), val_fraction=float(val_fraction))

    xs = {"train": x_pool[tr], "val": x_pool[va], "test": x_test}
    ys = {"train": y_pool[tr], "val": y_pool[va], "test": y_test}
    val_index = pool_index[va]
    if val is not None:
        if val_fraction:
            raise ValueError("pass either a separate validation set or val_fraction > 0, "
                             f"not both (val_fraction={val_fraction})")
        xs["val"], ys["val"] = np.asarray(val[0]), np.asarray(val[1])
        if xs["val"].shape[1:] != x_pool.shape[1:]:
            raise ValueError(f"validation rows {xs['val'].shape[1:]} and pool rows "
                             f"{x_pool.shape[1:]} differ")
        val_index = n_pool + len(y_test) + np.arange(len(ys["val"]))
    if standardize_axes is not None:
        scaler = Standardizer.fit(xs["train"], standardize_axes)
        stats["x_mean"], stats["x_std"] = scaler.flat()
        xs = {k: scaler.transform(v) for k, v in xs.items()}
    if standardize_y:
        if task != "regression":
            raise ValueError("standardize_y only applies to regression targets")
        yscale = Standardizer.fit(ys["train"].astype(np.float64))
        stats["y_mean"], stats["y_std"] = yscale.mean.item(), yscale.std.item()
        ys = {k: yscale.transform(v) for k, v in ys.items()}

    info = DatasetInfo(name=name, task=task, input_shape=tuple(x_pool.shape[1:]),
                       num_classes=num_classes, n_train=len(tr), n_val=len(ys["val"]),
                       n_test=len(y_test), stats=stats)
    index = {"train": pool_index[tr], "val": val_index, "test": test_index}
    return {k: ArrayDataset(torch.from_numpy(np.ascontiguousarray(xs[k], dtype=np.float32)),
                            ys[k], info, source_index=index[k]) for k in SPLITS}


def _examples(dataset: Any) -> tuple[Tensor, Tensor, bool]:
    """Inputs and targets of ``dataset`` without running a transform: the whole tensors when
    it holds them (``TensorDataset``, :class:`ArrayDataset`), else its first example with a
    batch axis (``whole = False``)."""
    if isinstance(getattr(dataset, "tensors", None), tuple) and len(dataset.tensors) >= 2:
        return dataset.tensors[0], dataset.tensors[1], True
    if isinstance(getattr(dataset, "x", None), Tensor) and isinstance(
            getattr(dataset, "y", None), Tensor):
        return dataset.x, dataset.y, True
    item = dataset[0]
    if not isinstance(item, (tuple, list)) or len(item) < 2:
        raise ValueError(f"the training data set must yield (x, y) pairs, got "
                         f"{type(item).__name__}")
    return (torch.as_tensor(item[0]).unsqueeze(0), torch.as_tensor(item[1]).unsqueeze(0),
            False)


def check_training_loader(loader: Any, net: torch.nn.Module | None = None,
                          classification: bool = True) -> None:
    """Refuse training data a network would silently mis-train on, before the first step.

    Why: labels of shape ``(N, 1)`` broadcast against ``(N, C)`` logits into an ``(N, N)``
    likelihood (training "works" at chance), and shape / length errors otherwise surface as
    torch's matmul or size-mismatch tracebacks. Nothing is iterated (the loader's shuffling
    is untouched) and no transform runs; ``net`` is run once in eval mode on one example.

    :raises ValueError: no batches, inputs and labels of different lengths, labels not of
        shape ``(N,)``, or inputs of a shape ``net`` cannot take.
    """
    dataset = loader.dataset
    n = len(dataset)
    if n and len(loader) == 0:
        batch = getattr(loader, "batch_size", None)
        raise ValueError(f"the training loader yields no batches: batch_size={batch} is larger "
                         f"than the {n} training points and drop_last=True drops the only, "
                         "partial batch; use a smaller batch_size or drop_last=False")
    if n == 0:
        return
    x, y, whole = _examples(dataset)
    if whole and len(x) != len(y):
        raise ValueError(f"inputs and labels differ in length: {len(x)} inputs, {len(y)} labels")
    soft = classification and y.is_floating_point() and y.dim() == 2 and y.shape[1] > 1
    if y.dim() != 1 and not soft:
        shape = tuple(y.shape) if whole else ("N", *y.shape[1:])
        what, fix = (("labels", "(N,) class indices (y.squeeze(1); one-hot: y.argmax(1))")
                     if classification else ("targets", "(N,) targets (y.squeeze(1))"))
        raise ValueError(f"{what} have shape {shape}; pass {fix}")
    if net is None:
        return
    params = next(net.parameters(), None)
    probe = x[:1]
    if params is not None:
        dtype = params.dtype if probe.is_floating_point() else None
        probe = probe.to(device=params.device, dtype=dtype)
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            net(probe)
    except (RuntimeError, ValueError, IndexError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"the network cannot take inputs of shape {tuple(x.shape[1:])} per "
                         f"example ({first}); reshape the inputs to what it was built for"
                         ) from None
    finally:
        net.train(was_training)
