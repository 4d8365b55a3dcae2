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
    assert "CigL ECE vs RigL" in out
    assert (tmp_path / "reliability.png").stat().st_size > 1000
    assert (tmp_path / "results.json").is_file()
