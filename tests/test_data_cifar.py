"""CIFAR from a tiny archive in the real python-pickle format: roundtrip, stats, augmentation."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from hvgp.data import RandomCropFlip, get_dataset, get_loaders, load_splits


def _write(path: Path, data: np.ndarray, **labels: list[int]) -> None:
    batch = {b"data": data, b"batch_label": b"tiny", b"filenames": [b"x.png"] * len(data)}
    batch.update({k.encode(): v for k, v in labels.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(batch, f)


def _images(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


@pytest.fixture()
def cifar10_root(tmp_path):
    """A CIFAR-10 archive with 5 train batches of 8 images and a test batch of 6."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    raw = {}
    for i in range(1, 6):
        data, labels = _images(rng, 8), [int(v) for v in rng.integers(0, 10, 8)]
        _write(folder / f"data_batch_{i}", data, labels=labels)
        raw[f"data_batch_{i}"] = (data, labels)
    data, labels = _images(rng, 6), [int(v) for v in rng.integers(0, 10, 6)]
    _write(folder / "test_batch", data, labels=labels)
    raw["test_batch"] = (data, labels)
    return tmp_path, raw


@pytest.fixture()
def cifar100_root(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-100-python"
    _write(folder / "train", _images(rng, 20), fine_labels=list(range(80, 100)),
           coarse_labels=[i % 20 for i in range(20)])
    _write(folder / "test", _images(rng, 5), fine_labels=[0, 1, 2, 3, 99],
           coarse_labels=[0, 1, 2, 3, 19])
    return tmp_path


def test_cifar10_roundtrip_recovers_images_labels_and_train_channel_stats(cifar10_root):
    root, raw = cifar10_root
    s = load_splits("cifar10", root=root, val_fraction=0.25)
    train_raw = np.concatenate([raw[f"data_batch_{i}"][0] for i in range(1, 6)])
    train_lab = np.concatenate([raw[f"data_batch_{i}"][1] for i in range(1, 6)])
    tr, va, te = s["train"], s["val"], s["test"]
    assert (len(tr), len(va), len(te)) == (30, 10, 6)
    assert tr.x.shape == (30, 3, 32, 32) and tr.x.dtype == torch.float32
    assert tr.y.dtype == torch.int64 and tr.info.num_classes == 10
    assert tr.info.input_shape == (3, 32, 32) and tr.info.n_train == 30
    imgs = train_raw.reshape(-1, 3, 32, 32).astype(np.float64)
    used = imgs[tr.source_index.numpy()]  # stats from the 30 train images, not val / test
    mean, std = used.mean((0, 2, 3)), used.std((0, 2, 3))
    np.testing.assert_allclose(tr.info.stats["x_mean"], mean, rtol=1e-9)
    np.testing.assert_allclose(tr.info.stats["x_std"], std, rtol=1e-9)
    for split, src, lab in ((tr, imgs, train_lab), (va, imgs, train_lab)):
        idx = split.source_index.numpy()
        expected = (src[idx] - mean[:, None, None]) / std[:, None, None]
        np.testing.assert_allclose(split.x.numpy(), expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(split.y.numpy(), lab[idx])
    test_imgs = raw["test_batch"][0].reshape(-1, 3, 32, 32).astype(np.float64)
    np.testing.assert_allclose(te.x.numpy(), (test_imgs - mean[:, None, None]) / std[:, None, None],
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(te.y.numpy(), raw["test_batch"][1])
    assert not set(tr.source_index.tolist()) & set(va.source_index.tolist())


def test_cifar_root_from_env_and_from_the_batch_folder_itself(cifar10_root, monkeypatch):
    root, _ = cifar10_root
    monkeypatch.setenv("HVGP_CIFAR_ROOT", str(root))
    a = get_dataset("cifar10", "test")
    b = get_dataset("cifar10", "test", root=root / "cifar-10-batches-py")
    assert torch.equal(a.x, b.x)


def test_cifar100_reads_fine_and_coarse_labels(cifar100_root):
    fine = load_splits("cifar100", root=cifar100_root, val_fraction=0.0)
    assert fine["train"].info.num_classes == 100 and len(fine["val"]) == 0
    assert fine["train"].y.tolist() == list(range(80, 100))
    assert fine["test"].y.tolist() == [0, 1, 2, 3, 99]
    coarse = get_dataset("cifar100", "test", root=cifar100_root, label_mode="coarse")
    assert coarse.info.num_classes == 20 and coarse.y.tolist() == [0, 1, 2, 3, 19]


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_missing_root_says_what_to_put_where(name, tmp_path, monkeypatch):
    monkeypatch.delenv("HVGP_CIFAR_ROOT", raising=False)
    folder = "cifar-10-batches-py" if name == "cifar10" else "cifar-100-python"
    with pytest.raises(FileNotFoundError, match="HVGP_CIFAR_ROOT") as e:
        get_dataset(name)
    assert folder in str(e.value)
    with pytest.raises(FileNotFoundError, match=folder) as e:
        get_dataset(name, root=tmp_path / "nowhere")
    assert "tar xzf" in str(e.value) and str(tmp_path / "nowhere") in str(e.value)


def test_cifar_malformed_batch_is_a_clear_error(cifar10_root):
    root, _ = cifar10_root
    _write(root / "cifar-10-batches-py" / "test_batch", np.zeros((2, 100), np.uint8),
           labels=[0, 1])
    with pytest.raises(ValueError, match=r"\(N, 3072\)"):
        get_dataset("cifar10", root=root)


def test_random_crop_flip_returns_shifted_window_of_padded_image():
    x = torch.arange(3 * 32 * 32, dtype=torch.float32).reshape(3, 32, 32)
    aug = RandomCropFlip(padding=4, fill=(-1.0, -2.0, -3.0), flip_p=0.0)
    padded = torch.stack([torch.full((40, 40), v) for v in (-1.0, -2.0, -3.0)])
    padded[:, 4:36, 4:36] = x
    offsets = set()
    for _ in range(50):
        out = aug(x)
        assert out.shape == (3, 32, 32)
        hits = [(i, j) for i in range(9) for j in range(9)
                if torch.equal(out, padded[:, i:i + 32, j:j + 32])]
        assert len(hits) == 1
        offsets.add(hits[0])
    assert len(offsets) > 10  # random offsets, not a fixed crop


def test_random_crop_flip_flips_left_right():
    x = torch.randn(3, 8, 8)
    always = RandomCropFlip(size=8, padding=0, flip_p=1.0)
    assert torch.equal(always(x), x.flip(-1))
    never = RandomCropFlip(size=8, padding=0, flip_p=0.0)
    assert torch.equal(never(x), x)


def test_cifar_augmentation_only_in_train_loader(cifar10_root):
    root, _ = cifar10_root
    train, val, test, info = get_loaders("cifar10", batch_size=4, root=root, val_fraction=0.2)
    assert isinstance(train.dataset.transform, RandomCropFlip)
    assert val.dataset.transform is None and test.dataset.transform is None
    fill = train.dataset.transform.fill.flatten()
    mean, std = np.array(info.stats["x_mean"]), np.array(info.stats["x_std"])
    np.testing.assert_allclose(fill.numpy(), -mean / std, rtol=1e-5)  # pads with black pixels
    xb, yb = next(iter(train))
    assert xb.shape == (4, 3, 32, 32) and yb.dtype == torch.int64
    plain = get_loaders("cifar10", root=root, augment=False)[0]
    assert plain.dataset.transform is None
