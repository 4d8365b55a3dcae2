"""The one entry point: names, errors that list the valid choices, seeded loaders."""

from __future__ import annotations

import pytest
import torch

from hvgp.data import ArrayDataset, DatasetInfo, get_dataset, get_loaders, list_datasets

CONTRACT_NAMES = ["mnist1d", "mnist1d-shift", "mnist1d-large", "mnist1d-large-shift", "digits",
                  "breast_cancer", "wine", "iris", "diabetes", "gap1d", "moons", "spirals",
                  "cifar10", "cifar100"]


def test_list_datasets_covers_the_contract():
    assert sorted(list_datasets()) == sorted(CONTRACT_NAMES)


def test_unknown_name_lists_valid_names_and_suggests_the_closest():
    with pytest.raises(ValueError, match="unknown data set 'mnist-1d'") as e:
        get_dataset("mnist-1d")
    msg = str(e.value)
    assert all(n in msg for n in CONTRACT_NAMES) and "did you mean 'mnist1d'" in msg


def test_names_are_case_and_separator_insensitive():
    a = get_dataset("Breast-Cancer", "test")
    assert a.info.name == "breast_cancer"


def test_unknown_split_and_keyword_are_clear_errors():
    with pytest.raises(ValueError, match="valid splits: train, val, test"):
        get_dataset("iris", "validation")
    with pytest.raises(TypeError, match=r"'moons' got unexpected keyword\(s\) \['shift'\]"):
        get_dataset("moons", shift=1.0)
    with pytest.raises(ValueError, match="train split only"):
        get_dataset("iris", "test", augment=True)
    with pytest.raises(TypeError, match="seed"):
        get_dataset("iris", seed=1.5)
    with pytest.raises(ValueError, match="batch_size"):
        get_loaders("iris", batch_size=0)


def test_get_dataset_returns_contract_types():
    ds = get_dataset("digits", "val", seed=3, val_fraction=0.2)
    assert isinstance(ds, ArrayDataset) and isinstance(ds.info, DatasetInfo)
    assert ds.info.n_val == len(ds) and ds.transform is None


def test_train_loader_is_seeded_and_covers_train_once_per_epoch():
    def first_epoch(seed):
        train, *_ = get_loaders("moons", batch_size=32, seed=seed, n=200)
        return torch.cat([y for _, y in train]), torch.cat([x for x, _ in train])

    y0, x0 = first_epoch(0)
    y0b, x0b = first_epoch(0)
    _, x1 = first_epoch(1)
    assert torch.equal(x0, x0b) and torch.equal(y0, y0b)
    assert not torch.equal(x0, x1)
    train_ds = get_dataset("moons", n=200)
    assert len(x0) == len(train_ds)  # drop_last=False: every row once
    assert sorted(map(tuple, x0.tolist())) == sorted(map(tuple, train_ds.x.tolist()))


def test_eval_loaders_keep_order_and_info_matches():
    train, val, test, info = get_loaders("wine", batch_size=16, eval_batch_size=7)
    assert info.n_train == len(train.dataset) and info.name == "wine"
    assert val.batch_size == 7 and not train.drop_last
    xs = torch.cat([x for x, _ in test])
    assert torch.equal(xs, test.dataset.x)


def test_worker_processes_give_the_same_batches_as_the_main_process():
    def batches(workers):
        train, *_ = get_loaders("iris", batch_size=16, seed=2, num_workers=workers)
        return [y for _, y in train]

    assert all(torch.equal(a, b) for a, b in zip(batches(0), batches(2), strict=True))


def test_numpy_integer_seed_is_accepted():
    import numpy as np

    assert torch.equal(get_dataset("iris", "val", seed=np.int64(4)).x,
                       get_dataset("iris", "val", seed=4).x)
