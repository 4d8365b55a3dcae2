"""CIFAR-10 / CIFAR-100 read with NumPy from a local copy of the python-pickle archives.

No torchvision (its wheels do not import beside the CPU torch used here) and no network:
the user extracts the standard archives (``cifar-10-python.tar.gz`` /
``cifar-100-python.tar.gz`` from https://www.cs.toronto.edu/~kriz/cifar.html) under a root
given as ``root=`` or ``$HVGP_CIFAR_ROOT``. Images are standardised per channel with
train-split statistics; augmentation (random 32×32 crop from a 4-pixel zero-padded image,
horizontal flip) is a per-sample torch transform the training loader alone applies.

The archives are Python pickles: only read archives you obtained from a trusted source.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .base import ArrayDataset, DatasetInfo, build_splits

__all__ = ["CIFAR_LAYOUT", "RandomCropFlip", "cifar_augmentation", "load_cifar", "read_cifar",
           "resolve_cifar_root"]

# name -> (folder, train files, test files, number of classes)
CIFAR_LAYOUT: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], int]] = {
    "cifar10": ("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)),
                ("test_batch",), 10),
    "cifar100": ("cifar-100-python", ("train",), ("test",), 100),
}
_LABEL_KEYS = {"cifar10": b"labels", "fine": b"fine_labels", "coarse": b"coarse_labels"}


def _layout_text(name: str, root: Path | None) -> str:
    folder, train, test, _ = CIFAR_LAYOUT[name]
    where = str(root) if root is not None else "<root>"
    files = "\n".join(f"    {where}/{folder}/{f}" for f in (*train, *test))
    archive = "cifar-10-python.tar.gz" if name == "cifar10" else "cifar-100-python.tar.gz"
    return (f"expected the python-pickle {name} archive extracted as\n{files}\n"
            f"(download {archive} from https://www.cs.toronto.edu/~kriz/cifar.html, run "
            f"`tar xzf {archive} -C <root>`, then pass root=<root> or set HVGP_CIFAR_ROOT=<root>)")


def resolve_cifar_root(name: str, root: str | os.PathLike | None = None) -> Path:
    """The folder holding ``name``'s batch files, from ``root`` or ``$HVGP_CIFAR_ROOT``.

    ``root`` may be the parent of ``cifar-10-batches-py`` / ``cifar-100-python`` or that
    folder itself. A missing root or file raises :class:`FileNotFoundError` that spells out
    the expected layout.
    """
    if name not in CIFAR_LAYOUT:
        raise ValueError(f"unknown CIFAR data set {name!r}; valid: {sorted(CIFAR_LAYOUT)}")
    folder, train, test, _ = CIFAR_LAYOUT[name]
    if root is None:
        root = os.environ.get("HVGP_CIFAR_ROOT") or None
    if root is None:
        raise FileNotFoundError(f"no CIFAR root given: pass root=... or set HVGP_CIFAR_ROOT; "
                                f"{_layout_text(name, None)}")
    root = Path(root).expanduser()
    for candidate in (root / folder, root):
        if all((candidate / f).is_file() for f in (*train, *test)):
            return candidate
    missing = [str(root / folder / f) for f in (*train, *test) if not (root / folder / f).is_file()]
    raise FileNotFoundError(f"{name} not found under {root} (missing: {', '.join(missing)}); "
                            f"{_layout_text(name, root)}")


def _read_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        raise ValueError(f"{path} is not a CIFAR python batch: expected a dict with keys "
                         f"b'data' and {label_key!r}")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"{path}: b'data' must be uint8 of shape (N, 3072), got "
                         f"{data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],):
        raise ValueError(f"{path}: {len(labels)} labels for {data.shape[0]} images")
    return data.reshape(-1, 3, 32, 32), labels


def read_cifar(name: str, root: str | os.PathLike | None = None, label_mode: str = "fine"
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Raw ``(x_train, y_train, x_test, y_test)``: uint8 ``(N, 3, 32, 32)`` and int64 labels.

    :param label_mode: CIFAR-100 only: ``"fine"`` (100 classes) or ``"coarse"`` (20).
    """
    folder = resolve_cifar_root(name, root)
    _, train, test, _ = CIFAR_LAYOUT[name]
    if name == "cifar10":
        key = _LABEL_KEYS["cifar10"]
    elif label_mode in ("fine", "coarse"):
        key = _LABEL_KEYS[label_mode]
    else:
        raise ValueError(f"label_mode must be 'fine' or 'coarse', got {label_mode!r}")

    def read(files: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        parts = [_read_batch(folder / f, key) for f in files]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    return (*read(train), *read(test))


class RandomCropFlip:
    """Standard CIFAR augmentation on one ``(C, H, W)`` tensor: padded random crop + h-flip.

    The image is padded by ``padding`` pixels with ``fill`` (per channel; pass the
    normalised value of a black pixel to match torchvision's ``RandomCrop(32, padding=4)``
    on raw images), a ``size``×``size`` window is cropped at a random offset, and the result
    is mirrored left-right with probability ``flip_p``. Randomness comes from torch's global
    RNG, which ``DataLoader`` seeds per worker from its generator.
    """

    def __init__(self, size: int = 32, padding: int = 4,
                 fill: float | Sequence[float] = 0.0, flip_p: float = 0.5) -> None:
        if size < 1 or padding < 0:
            raise ValueError(f"need size >= 1 and padding >= 0, got {size}, {padding}")
        if not 0.0 <= flip_p <= 1.0:
            raise ValueError(f"flip_p must be in [0, 1], got {flip_p}")
        self.size, self.padding, self.flip_p = int(size), int(padding), float(flip_p)
        self.fill = torch.as_tensor(fill, dtype=torch.float32).reshape(-1, 1, 1)

    def __call__(self, x: Tensor) -> Tensor:
        if x.dim() != 3:
            raise ValueError(f"RandomCropFlip expects one (C, H, W) image, got {tuple(x.shape)}")
        c, h, w = x.shape
        p, s = self.padding, self.size
        if h + 2 * p < s or w + 2 * p < s:
            raise ValueError(f"image {h}x{w} padded by {p} is smaller than the crop {s}")
        padded = self.fill.to(dtype=x.dtype, device=x.device).expand(c, h + 2 * p, w + 2 * p)
        padded = padded.clone()
        padded[:, p:p + h, p:p + w] = x
        i = int(torch.randint(0, h + 2 * p - s + 1, (1,)))
        j = int(torch.randint(0, w + 2 * p - s + 1, (1,)))
        out = padded[:, i:i + s, j:j + s]
        if float(torch.rand(())) < self.flip_p:
            out = out.flip(-1)
        return out.contiguous()

    def __repr__(self) -> str:
        return f"RandomCropFlip(size={self.size}, padding={self.padding}, flip_p={self.flip_p})"


def cifar_augmentation(info: DatasetInfo) -> RandomCropFlip:
    """The training transform for a loaded CIFAR split: crop 32 / pad 4 with black fill + flip."""
    mean = np.asarray(info.stats["x_mean"], dtype=np.float64)
    std = np.asarray(info.stats["x_std"], dtype=np.float64)
    return RandomCropFlip(size=32, padding=4, fill=tuple(-mean / std))


def load_cifar(
    name: str,
    seed: int = 0,
    val_fraction: float = 0.1,
    root: str | os.PathLike | None = None,
    label_mode: str = "fine",
) -> dict[str, ArrayDataset]:
    """Train / val / test splits of CIFAR-10 or CIFAR-100, standardised per channel on train.

    :param name: ``"cifar10"`` or ``"cifar100"``.
    :param seed: seed of the validation carve (stratified by label).
    :param val_fraction: share of the 50 000 training images held out (paper: 0.1).
    :param root: folder holding the extracted archive (else ``$HVGP_CIFAR_ROOT``).
    :param label_mode: CIFAR-100 only: ``"fine"`` or ``"coarse"`` labels.
    """
    x, y, x_test, y_test = read_cifar(name, root, label_mode)
    num_classes = CIFAR_LAYOUT[name][3]
    if name == "cifar100" and label_mode == "coarse":
        num_classes = 20
    for labels in (y, y_test):
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"{name} labels must lie in [0, {num_classes}), got "
                             f"[{labels.min()}, {labels.max()}]")
    stats: dict[str, Any] = {"root": str(resolve_cifar_root(name, root)),
                             "label_mode": label_mode if name == "cifar100" else None,
                             "pixel_scale": "raw uint8 0..255 before standardisation"}
    return build_splits((x, y), (x_test, y_test), name=name, task="classification",
                        num_classes=num_classes, seed=seed, val_fraction=val_fraction,
                        standardize_axes=(0, 2, 3), stats=stats)
