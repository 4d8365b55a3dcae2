"""Issue #16, bad input: a named hvgp error (or a harmless cast) instead of a silent wrong
result or a torch traceback."""

from __future__ import annotations

import errno
import os
import warnings
from pathlib import Path

import pytest
import torch
from _train_script import tiny_data, tiny_estimator
from torch.utils.data import DataLoader, TensorDataset

from hvgp.cli import main

TINY = ["--data", "moons", "--arch", "mlp", "--width", "0.25", "--epochs", "1",
        "--batch-size", "64", "--device", "cpu", "--quiet"]


def _loader(x: torch.Tensor, y: torch.Tensor, **kw) -> DataLoader:
    return DataLoader(TensorDataset(x, y), batch_size=kw.pop("batch_size", 8), **kw)


def test_labels_of_shape_n_by_1_are_refused() -> None:
    x, y = tiny_data().tensors
    with pytest.raises(ValueError, match=r"\(64, 1\).*\(N,\)"):
        tiny_estimator().fit(_loader(x, y[:, None]), 1)


class _Pairs(torch.utils.data.Dataset):
    """A dataset whose inputs and labels have different lengths (a user's own class)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.x[i % len(self.x)], self.y[i]


def test_inputs_and_labels_of_different_lengths_are_refused() -> None:
    x, y = tiny_data().tensors
    with pytest.raises(ValueError, match="60 inputs.*64 labels"):
        tiny_estimator().fit(DataLoader(_Pairs(x[:60], y), batch_size=8), 1)


def test_inputs_the_network_cannot_take_are_a_named_error() -> None:
    x, y = tiny_data().tensors
    with pytest.raises(ValueError, match=r"\(2, 40\)"):
        tiny_estimator().fit(_loader(torch.randn(64, 2, 40), y), 1)


def test_float64_inputs_are_cast() -> None:
    x, y = tiny_data().tensors
    est = tiny_estimator().fit(_loader(x.double(), y), 1)
    assert est.predict(x[:4]).probs.shape == (1, 4, 3)


def test_a_loader_without_batches_says_so() -> None:
    x, y = tiny_data().tensors
    with pytest.raises(ValueError, match="drop_last"):
        tiny_estimator().fit(_loader(x, y, batch_size=128, drop_last=True), 1)


def test_fit_accepts_progress() -> None:
    x, y = tiny_data().tensors
    est = tiny_estimator().fit(_loader(x, y), 1, progress=False)
    assert est.progress is False


def test_rigl_predict_with_samples_warns_that_nothing_is_random() -> None:
    from hvgp.infer import RigL
    from hvgp.nn import build_model

    est = RigL(build_model("mlp", (40,), 3, width=0.125), sparsity=0.5, device="cpu")
    x = torch.randn(4, 40)
    with pytest.warns(UserWarning, match="identical.*(CigL|mc-dropout)"):
        est.predict(x, num_samples=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.predict(x)


def test_mc_dropout_samples_vary_so_it_does_not_warn() -> None:
    """MC dropout is a RigL subclass without a random mask, but its samples do vary."""
    from hvgp.baselines.nn.dropout import MCDropout
    from hvgp.nn import build_model

    est = MCDropout(build_model("mlp", (40,), 3, width=0.125), dropout=0.3, sparsity=0.5,
                    device="cpu")
    x = torch.randn(4, 40)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        samples = est.predict(x, num_samples=4)
    assert not torch.equal(samples.probs[0], samples.probs[1])


def test_os_system_payload_is_unsafe_and_never_runs(tmp_path: Path) -> None:
    from hvgp.infer.checkpoint import UnsafeCheckpointError, read_weights_only

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pt"
    torch.save({"x": Payload()}, evil)
    with pytest.raises(UnsafeCheckpointError, match="Nothing was executed"):
        read_weights_only(evil)
    assert not marker.exists()


def test_config_field_of_the_wrong_type_is_named(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from hvgp.config import RunConfig, load_config

    cfg = tmp_path / "run.toml"
    cfg.write_text('epochs = "two"\n')
    with pytest.raises(ValueError, match="epochs.*int.*'two'"):
        load_config(cfg)
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "r"), "--device",
                 "cpu"]) == 2
    assert "epochs" in capsys.readouterr().err
    with pytest.raises(ValueError, match="width.*number"):
        RunConfig(width="wide")
    assert RunConfig(width=1).width == 1  # ints are numbers


def test_weight_decay_zero_trains_without_a_prior_pull(tmp_path: Path) -> None:
    from hvgp.infer import GaussianPrior

    prior = GaussianPrior.from_weight_decay(0.0, 100)
    assert prior.scale == float("inf")
    assert main(["train", "--weight-decay", "0", "--out", str(tmp_path / "r"), *TINY]) == 0
    with pytest.raises(ValueError, match="weight_decay"):
        from hvgp.config import RunConfig

        RunConfig(weight_decay=-1.0)


def test_unwritable_out_is_one_line_and_exit_2(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"  # a folder cannot be made under a file (even as root)
    blocker.write_text("x")
    assert main(["train", "--out", str(blocker / "run"), *TINY]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "cannot write" in err


def test_disk_full_during_a_save_says_so_and_keeps_the_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hvgp.infer import save_checkpoint

    path = save_checkpoint(tmp_path / "ck.pt", {"step": 1})
    before = path.read_bytes()

    def full(*a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", full)
    monkeypatch.setattr("shutil.disk_usage", lambda p: (100, 100, 0))
    with pytest.raises(OSError, match="no space left on device while writing.*intact") as info:
        save_checkpoint(path, {"step": 2})
    assert info.value.errno == errno.ENOSPC
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]
