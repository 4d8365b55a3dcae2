"""Faults and bad input: killed runs resume exactly, unsafe / corrupt files are refused with a
clear error, bad data stops training before any file is touched."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from _special_values import with_special_values
from _train_script import tiny_data, tiny_estimator
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, TensorDataset

from hvgp.export import (
    ArchSpec,
    CorruptCheckpointError,
    UnsafeCheckpointError,
    load_model,
    read_weights_only,
    save_model,
)
from hvgp.infer import load_checkpoint, save_checkpoint
from hvgp.nn import build_model
from hvgp.utils import all_finite

SCRIPT = Path(__file__).with_name("_train_script.py")
ROOT = SCRIPT.parents[1]


def _script(*args: str, **popen) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.Popen([sys.executable, str(SCRIPT), *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- kill and resume -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("ref")
    proc = _script("--ckpt", str(d / "ck.pt"), "--out", str(d / "out.pt"))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-2000:]
    return torch.load(d / "out.pt", weights_only=True)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_killed_run_leaves_an_intact_checkpoint_and_resumes_to_the_same_result(
    tmp_path: Path, uninterrupted: dict, sig: signal.Signals
) -> None:
    ckpt, ready = tmp_path / "ck.pt", tmp_path / "ready"
    proc = _script("--ckpt", str(ckpt), "--out", str(tmp_path / "x.pt"), "--sleep", "0.25",
                   "--ready", str(ready))
    deadline = time.monotonic() + 60
    while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ready.exists(), proc.communicate()[1].decode()[-2000:]
    time.sleep(0.1)  # a few steps into the next epoch
    proc.send_signal(sig)
    proc.communicate(timeout=30)
    assert proc.returncode != 0, "the run finished before it was killed"
    assert not (tmp_path / "x.pt").exists()
    state = load_checkpoint(ckpt)  # intact, weights-only
    assert 1 <= state["epoch"] < 3 and state["step"] == 8 * state["epoch"]
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []
    resumed = _script("--ckpt", str(ckpt), "--out", str(tmp_path / "out.pt"), "--resume")
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err.decode()[-2000:]
    out = torch.load(tmp_path / "out.pt", weights_only=True)
    assert out["steps_run"] == 3 * 8 - state["step"]  # it continued, it did not restart
    for part in ("state", "current"):
        for k, v in uninterrupted[part].items():
            assert torch.equal(out[part][k], v), f"{part} {k}"


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"step": 1, "w": torch.ones(3)})
    before = _sha(path)
    real_save = torch.save

    def half_then_interrupt(obj, f, *a, **kw):
        real_save(obj, f, *a, **kw)
        f.truncate(10)
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"step": 2, "w": torch.zeros(3)})
    assert _sha(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt"]


# ---- unsafe files --------------------------------------------------------------------------
class _Payload:
    """Unpickling this creates the file ``target``: stands for arbitrary code."""

    def __init__(self, target: Path) -> None:
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_crafted_pickle_checkpoint_is_refused_and_its_code_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"step": 0, "x": _Payload(marker)}, evil)
    assert not marker.exists()
    with pytest.raises(UnsafeCheckpointError, match="would run code"):
        load_checkpoint(evil)
    with pytest.raises(UnsafeCheckpointError, match="would run code"):
        read_weights_only(evil)
    with pytest.raises(UnsafeCheckpointError):
        load_model(evil)
    with pytest.raises(UnsafeCheckpointError, match="Nothing was executed"):
        tiny_estimator().fit(DataLoader(tiny_data(), batch_size=8), 1, resume=evil)
    assert not marker.exists()
    # the payload is live: an unsafe load would have run it
    torch.load(evil, weights_only=False)
    assert marker.exists()


# ---- corrupt, truncated, foreign files -----------------------------------------------------
@pytest.fixture
def saved_model(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return save_model(tmp_path / "m.pt", build_model("mlp", (40,), 3, width=0.125),
                      ArchSpec("mlp", (40,), 3, 0.125))


def _damage(path: Path, how: str) -> Path:
    data = bytearray(path.read_bytes())
    out = path.with_name(f"{how}.pt")
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "empty":
        data = bytearray()
    else:  # flip bytes inside the stored tensors
        mid = len(data) // 2
        data[mid:mid + 64] = bytes(b ^ 0xFF for b in data[mid:mid + 64])
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize("how", ["truncated", "empty", "corrupt"])
def test_damaged_model_file_is_a_clear_error(saved_model: Path, how: str) -> None:
    bad = _damage(saved_model, how)
    before = _sha(bad)
    with pytest.raises(CorruptCheckpointError, match="corrupt|truncated|not a valid"):
        load_model(bad)
    assert _sha(bad) == before


@pytest.mark.parametrize("how", ["truncated", "corrupt"])
def test_damaged_training_checkpoint_is_a_clear_error_on_resume(tmp_path: Path, how: str) -> None:
    ckpt = tmp_path / "ck.pt"
    tiny_estimator(checkpoint=str(ckpt)).fit(DataLoader(tiny_data(), batch_size=8), 1)
    bad = _damage(ckpt, how)
    with pytest.raises(ValueError, match="corrupt|truncated"):
        tiny_estimator(checkpoint=str(ckpt)).fit(DataLoader(tiny_data(), batch_size=8), 1,
                                                 resume=bad)


def test_training_checkpoint_of_another_architecture_is_refused_untouched(tmp_path: Path) -> None:
    ckpt = tmp_path / "ck.pt"
    loader = DataLoader(tiny_data(), batch_size=8)
    tiny_estimator("mlp", checkpoint=str(ckpt)).fit(loader, 1)
    before = _sha(ckpt)
    with pytest.raises(RuntimeError, match="loading state_dict"):
        tiny_estimator("cnn1d", checkpoint=str(ckpt)).fit(loader, 2, resume=ckpt)
    assert _sha(ckpt) == before


def test_model_file_of_another_architecture_is_refused(saved_model: Path, tmp_path) -> None:
    payload = torch.load(saved_model, weights_only=True)
    payload["arch"]["width"] = 0.25  # claims a wider network than the weights hold
    torch.save(payload, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="another architecture"):
        load_model(tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not an hvgp model file"):
        load_model(_checkpoint_file(tmp_path))


def _checkpoint_file(tmp_path: Path) -> Path:
    return save_checkpoint(tmp_path / "train.pt", {"step": 0})


# ---- bad data ------------------------------------------------------------------------------
def _bad_loader(kind: str) -> DataLoader:
    x, y = tiny_data().tensors
    x, y = x.clone(), y.clone()
    if kind == "nan":
        x[11, 3] = float("nan")
    elif kind == "label_high":
        y[11] = 3
    elif kind == "label_negative":
        y[11] = -1
    elif kind == "empty":
        x, y = x[:0], y[:0]
    return DataLoader(TensorDataset(x, y), batch_size=8)


@pytest.fixture
def existing_checkpoint(tmp_path: Path) -> Path:
    ckpt = tmp_path / "ck.pt"
    tiny_estimator(checkpoint=str(ckpt)).fit(DataLoader(tiny_data(), batch_size=8), 1)
    return ckpt


@pytest.mark.parametrize("kind", ["nan", "label_high", "label_negative", "empty"])
def test_bad_data_stops_training_and_overwrites_nothing(existing_checkpoint: Path,
                                                        kind: str) -> None:
    before = _sha(existing_checkpoint)
    with pytest.raises(ValueError):
        tiny_estimator(checkpoint=str(existing_checkpoint)).fit(_bad_loader(kind), 2)
    assert _sha(existing_checkpoint) == before


@pytest.mark.parametrize("kind,message", [
    ("nan", r"input.*(NaN|non-finite)"),
    ("label_high", r"label.*\[0, 3\)"),
    ("label_negative", r"label.*\[0, 3\)"),
])
def test_bad_batch_error_names_the_problem(kind: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tiny_estimator().fit(_bad_loader(kind), 1)


def test_empty_training_set_error_says_empty() -> None:
    with pytest.raises(ValueError, match="empty"):
        tiny_estimator().fit(_bad_loader("empty"), 1)


def test_cuda_without_cuda_is_a_clear_error(saved_model: Path, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        tiny_estimator(device="cuda")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        load_model(saved_model, map_location="cuda")


def test_missing_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_model(tmp_path / "absent.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        tiny_estimator().fit(DataLoader(tiny_data(), batch_size=8), 1,
                             resume=tmp_path / "absent.pt")


SPECIAL_INPUTS = [float("nan"), float("inf"), -float("inf"), 3e38, -3e38, 6e4, 0.0]


@settings(max_examples=80, deadline=None)
@given(n=st.integers(0, 12), seed=st.integers(0, 2**31 - 1), frac=st.floats(0, 1),
       dtype=st.sampled_from([torch.float16, torch.float32, torch.float64]))
def test_the_trainers_input_check_agrees_with_isfinite(n: int, seed: int, frac: float,
                                                       dtype: torch.dtype) -> None:
    """The one-sum check says what ``isfinite(x).all()`` says, overflowing sums included."""
    g = torch.Generator().manual_seed(seed)
    x = with_special_values(torch.randn(n, 3, generator=g, dtype=torch.float64),
                            SPECIAL_INPUTS, frac, g).to(dtype)
    assert all_finite(x) == bool(torch.isfinite(x).all())


def test_finite_inputs_whose_sum_overflows_are_finite() -> None:
    x = torch.full((4, 2), 3e38)
    assert not torch.isfinite(x.sum()) and all_finite(x)
    x[1, 1] = float("inf")
    assert not all_finite(x)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_gaussian_likelihood_refuses_non_finite_targets(bad: float) -> None:
    from hvgp.infer.likelihood import GaussianLikelihood

    lik, out = GaussianLikelihood(noise=1.0), torch.zeros(4)
    lik.check_targets(out, torch.full((4,), 3e38))  # finite, though their sum overflows
    y = torch.zeros(4)
    y[2] = bad
    with pytest.raises(ValueError, match="non-finite"):
        lik.check_targets(out, y)
