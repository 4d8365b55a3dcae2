"""The ``hvgp`` command line end to end on a tiny budget, and its error messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hvgp.cli import main

TINY = ["--data", "moons", "--arch", "mlp", "--width", "0.25", "--epochs", "2",
        "--batch-size", "64", "--device", "cpu", "--quiet"]


def test_list_names_models_and_data(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "cigl" in out and "mnist1d" in out and "cnn1d" in out


def test_train_then_evaluate_then_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    run = tmp_path / "cigl"
    assert main(["train", "--model", "cigl", "--sparsity", "0.8", "--out", str(run), *TINY]) == 0
    for name in ("config.json", "metrics.json", "model.pt", "reliability.png", "checkpoint.pt"):
        assert (run / name).is_file(), name
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["model"] == "cigl" and 0.0 <= saved["ece"] <= 1.0
    assert saved["sparsity"] == pytest.approx(0.8, abs=0.01)
    assert json.loads((run / "config.json").read_text())["epochs"] == 2

    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 0
    out = capsys.readouterr().out
    accuracy = float(next(line.split()[1] for line in out.splitlines()
                          if line.startswith("accuracy")))
    assert accuracy == pytest.approx(saved["accuracy"], abs=1e-6)

    cmp_dir = tmp_path / "cmp"
    assert main(["compare", "--models", "cigl,rigl", "--seeds", "0,1", "--out", str(cmp_dir),
                 *TINY]) == 0
    table = capsys.readouterr().out
    assert "| cigl |" in table and "| rigl |" in table and "±" in table
    assert "ece_floor" in table and "ece_debiased" in table
    # cigl paired against rigl (the default reference) over the two seeds: interval, p, wins
    assert "Paired against rigl" in table and "| cigl | 2 |" in table and "/2 |" in table
    assert "Paired against rigl" not in (cmp_dir / "table.md").read_text()
    assert "model − rigl" in (cmp_dir / "table.md").read_text()
    results = json.loads((cmp_dir / "results.json").read_text())
    assert len(results["runs"]) == 4 and set(results["summary"]) == {"cigl", "rigl"}
    assert (cmp_dir / "reliability.png").stat().st_size > 1000


def test_config_file_is_read_and_flags_override_it(tmp_path: Path) -> None:
    cfg = tmp_path / "run.toml"
    cfg.write_text('model = "rigl"\nsparsity = 0.5\nepochs = 5\n')
    run = tmp_path / "r"
    assert main(["train", "--config", str(cfg), "--out", str(run), *TINY]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert (saved["model"], saved["sparsity"], saved["epochs"]) == ("rigl", 0.5, 2)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--sparsity", "1.5"], "sparsity must be in [0, 1)"),
        (["train", "--data", "imagenet"], "imagenet"),
        (["train", "--model", "lottery"], "unknown model"),
        (["train", "--resume"], "no checkpoint"),
    ],
)
def test_bad_input_exits_2_with_a_message(argv: list[str], message: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    full = [*argv, "--out", str(tmp_path / "x"), "--epochs", "1", "--device", "cpu", "--quiet"]
    if "--data" not in argv:
        full += ["--data", "moons", "--arch", "mlp"]
    assert main(full) == 2
    assert message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_without_cuda_is_a_clear_error(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--out", str(tmp_path / "x"), *TINY, "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_evaluate_refuses_a_folder_that_is_not_a_run(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "config.json is missing" in capsys.readouterr().err


def test_sweep_writes_records_and_the_ece_vs_sparsity_plot(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    assert main(["sweep", "--models", "cigl,rigl", "--sparsity", "0.5,0.8", "--seeds", "1",
                 "--out", str(out), *TINY]) == 0
    records = json.loads((out / "sweep.json").read_text())
    assert {(r["method"], r["sparsity"]) for r in records} == {
        ("cigl", 0.5), ("cigl", 0.8), ("rigl", 0.5), ("rigl", 0.8)}
    assert all(0.0 <= r["ece"] <= 1.0 for r in records)
    assert (out / "ece_vs_sparsity.png").stat().st_size > 1000


def test_resume_of_a_finished_run_reproduces_its_metrics(tmp_path: Path) -> None:
    run = tmp_path / "r"
    args = ["train", "--model", "cigl", "--sparsity", "0.8", "--out", str(run), *TINY]
    assert main(args) == 0
    first = json.loads((run / "metrics.json").read_text())
    # the checkpoint is at the last epoch: no new steps, the same metrics (other settings
    # are refused: tests/test_run_folders.py)
    assert main([*args, "--resume"]) == 0
    again = json.loads((run / "metrics.json").read_text())
    for key in ("accuracy", "ece", "nll", "brier"):
        assert again[key] == pytest.approx(first[key], abs=1e-9), key
