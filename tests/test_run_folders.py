"""Issue #16, run folders: one writer at a time, no silent overwrite or mixed settings, failed
runs leave nothing (or a marker), whole grids validated first, one way to load a CLI run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hvgp.cli import main

TINY = ["--data", "moons", "--arch", "mlp", "--width", "0.25", "--epochs", "1",
        "--batch-size", "64", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished `hvgp train` run folder (read-only use: tests copy it to change it)."""
    run = tmp_path_factory.mktemp("runs") / "k1"
    assert main(["train", "--model", "cigl", "--sparsity", "0.5", "--out", str(run), *TINY]) == 0
    return run


def _copy(run: Path, dest: Path) -> Path:
    import shutil

    return Path(shutil.copytree(run, dest))


def test_resume_with_other_settings_is_refused_naming_every_field(
        finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _copy(finished, tmp_path / "k1")
    before = (run / "config.json").read_text()
    argv = ["train", "--model", "cigl", "--sparsity", "0.5", "--out", str(run), *TINY,
            "--drop-rate", "0.2", "--lr", "0.5", "--resume"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "drop_rate" in err and "lr" in err and "0.5" in err and "0.2" in err
    assert (run / "config.json").read_text() == before


def test_resume_with_the_same_settings_still_works(finished: Path, tmp_path: Path) -> None:
    run = _copy(finished, tmp_path / "k1")
    assert main(["train", "--model", "cigl", "--sparsity", "0.5", "--out", str(run), *TINY,
                 "--resume"]) == 0


def test_finished_run_is_not_overwritten_without_overwrite(
        finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _copy(finished, tmp_path / "k1")
    metrics = (run / "metrics.json").read_text()
    argv = ["train", "--model", "rigl", "--sparsity", "0.5", "--out", str(run), *TINY]
    assert main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (run / "metrics.json").read_text() == metrics
    assert main([*argv, "--overwrite"]) == 0
    assert json.loads((run / "config.json").read_text())["model"] == "rigl"
    assert json.loads((run / "metrics.json").read_text())["model"] == "rigl"


_HOLD = """
import sys, time
from hvgp.runs import lock_folder
with lock_folder(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_second_run_into_a_locked_folder_exits_2_naming_the_holder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "busy"
    run.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(run)], stdout=subprocess.PIPE,
                              env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
        assert main(["train", "--out", str(run), *TINY]) == 2
        err = capsys.readouterr().err
        assert f"pid {holder.pid}" in err and "in use" in err
        assert not (run / "config.json").exists()
    finally:
        holder.kill()
        holder.wait()


def test_stale_lock_of_a_dead_process_does_not_block(tmp_path: Path) -> None:
    from hvgp.runs import LOCK_NAME

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = tmp_path / "stale"
    run.mkdir()
    (run / LOCK_NAME).write_text(f"{dead.pid}\n")
    assert main(["train", "--out", str(run), *TINY]) == 0
    assert (run / "metrics.json").is_file() and not (run / LOCK_NAME).exists()


def test_lock_is_exclusive_within_one_process_too(tmp_path: Path) -> None:
    from hvgp.runs import RunFolderBusyError, lock_folder

    with lock_folder(tmp_path):
        with pytest.raises(RunFolderBusyError, match=f"pid {os.getpid()}"):
            with lock_folder(tmp_path):
                pass
    with lock_folder(tmp_path):  # released
        pass


@pytest.mark.parametrize("argv, message", [
    (["compare", "--models", "cigl,foo"], "foo"),
    (["sweep", "--models", "cigl", "--sparsity", "0.9,1.2", "--seeds", "1"], "1.2"),
    (["compare", "--models", "cigl,rigl", "--arch", "cnn1d"], "cnn1d"),
])
def test_compare_and_sweep_validate_everything_before_the_first_run(
        argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import hvgp.experiment as experiment

    def never(*a, **k):
        raise AssertionError("a run started before the grid was validated")

    monkeypatch.setattr(experiment, "run", never)
    i = TINY.index("--arch")
    tiny = TINY[:i] + TINY[i + 2:] if "--arch" in argv else TINY
    assert main([*argv, "--out", str(tmp_path / "o"), *tiny]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_architecture_that_does_not_fit_the_data_is_refused_and_leaves_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cnn"
    argv = ["train", "--data", "moons", "--arch", "cnn1d", "--epochs", "1", "--device", "cpu",
            "--quiet", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "cnn1d" in err and "moons" in err and "mlp" in err
    assert not out.exists()


def test_run_that_fails_before_training_leaves_nothing_in_an_existing_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "existing"
    out.mkdir()
    assert main(["train", "--out", str(out), *TINY, "--device", "cuda"]) == 2
    assert list(out.iterdir()) == []


def test_run_that_fails_during_training_leaves_a_failure_marker(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hvgp.experiment as experiment
    from hvgp.runs import FAILED_NAME

    def broken(*a, **k):
        raise RuntimeError("scoring broke")

    monkeypatch.setattr(experiment, "score", broken)
    out = tmp_path / "f"
    assert main(["train", "--out", str(out), *TINY]) == 2
    marker = json.loads((out / FAILED_NAME).read_text())
    assert "scoring broke" in marker["error"]
    assert not (out / "metrics.json").exists()
    with pytest.raises(FileNotFoundError, match="failed"):
        experiment.load_run(out)
    monkeypatch.undo()
    assert main(["train", "--out", str(out), *TINY]) == 0  # a failed run may be redone
    assert not (out / FAILED_NAME).exists()


def test_a_fresh_folder_just_works_from_python(tmp_path: Path) -> None:
    from hvgp.config import RunConfig
    from hvgp.experiment import run

    cfg = RunConfig(model="rigl", data="moons", arch="mlp", width=0.25, epochs=1,
                    batch_size=64, device="cpu")
    res = run(cfg, out=tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b" / "metrics.json").is_file() and res.estimator is not None


def test_a_cli_run_loads_from_python(finished: Path) -> None:
    import hvgp
    from hvgp.data import get_loaders

    est = hvgp.load_run(finished)
    saved = json.loads((finished / "metrics.json").read_text())
    _, _, test, _ = get_loaders("moons", batch_size=512, seed=0)
    assert est.evaluate(test)["accuracy"] == pytest.approx(saved["accuracy"], abs=1e-6)
    with pytest.raises(ValueError, match="load_run"):
        hvgp.load_model(finished / "model.pt")



def test_train_help_prints_each_default_once(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in out
    assert out.count("(default: cigl)") == 1 and "--overwrite" in out
