"""``make demo`` runs end to end (quick budget, same code path)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hvgp.demo import main


def test_demo_prints_a_table_and_writes_the_reliability_grid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HVGP_QUICK", "1")
    assert main(["--out", str(tmp_path), "--epochs", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    for model in ("cigl", "rigl", "dense"):
        assert f"| {model} |" in out
    # the paired sentence over both quick seeds: interval, tests, wins; never a bare "x % lower"
    assert "ECE CigL − RigL = " in out and "95 % CI" in out and "2 seeds" in out
    assert "% lower" not in out
    assert "floor" in out
    assert "reliability diagrams (seed 0 of seeds 0-1)" in out  # which run the picture shows
    assert (tmp_path / "reliability.png").stat().st_size > 1000
    assert (tmp_path / "results.json").is_file()
    assert {p.name for p in tmp_path.iterdir() if p.is_dir()} == {
        "cigl-s0", "cigl-s1", "rigl-s0", "rigl-s1", "dense-s0"}


def test_demo_plan_pairs_cigl_and_rigl_by_seed() -> None:
    from hvgp.config import RunConfig
    from hvgp.demo import plan

    cfgs = plan(RunConfig(sparsity=0.9), seeds=5, dense_seeds=1)
    pairs = {(c.model, c.seed) for c in cfgs}
    assert pairs == {(m, s) for m in ("cigl", "rigl") for s in range(5)} | {("dense", 0)}
    assert all(c.sparsity == 0.0 for c in cfgs if c.model == "dense")
    assert all(c.sparsity == 0.9 for c in cfgs if c.model != "dense")


def test_demo_rerun_replaces_its_own_run_folder(tmp_path: Path) -> None:
    """A second ``make demo`` must not stop at "holds a finished run" (folders are kept
    otherwise, #16): each demo run overwrites its own sub-folder."""
    from hvgp.config import RunConfig
    from hvgp.demo import _train_all

    cfg = RunConfig(model="rigl", data="moons", arch="mlp", width=0.25, epochs=1,
                    batch_size=64, sparsity=0.5, device="cpu")
    (first,) = _train_all([cfg], tmp_path, workers=1)
    (again,) = _train_all([cfg], tmp_path, workers=1)
    assert again.metrics["accuracy"] == first.metrics["accuracy"]
    assert (tmp_path / "rigl-s0" / "metrics.json").is_file()
