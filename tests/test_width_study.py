"""benchmarks/width_study.py: p is tuned per width on validation, then RigL and CigL at that
p run on the (disjoint) reporting seeds; the smoke run checks the protocol end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "width_study.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True,
                          text=True, env=env, timeout=600)


def test_quick_width_study_tunes_each_width_and_pairs_the_seeds(tmp_path: Path) -> None:
    out = tmp_path / "ws"
    done = _run("--quick", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads(out.with_suffix(".json").read_text())
    tuning = record["extra"]["tuning"]
    assert set(tuning) == {"0.5", "1"}
    for w, entry in tuning.items():
        p = entry["best"]["drop_rate"]
        runs = [r for r in record["runs"] if f"{r['width']:g}" == w]
        assert sorted((r["method"], r["seed"]) for r in runs) == [
            ("CigL", 0), ("CigL", 1), ("RigL", 0), ("RigL", 1)]
        assert all(r["drop_rate_p"] == (p if r["method"] == "CigL" else 0.0) for r in runs)
        assert all(r["width"] == float(w) and "ece_floor" in r for r in runs)
    md = out.with_suffix(".md").read_text()
    assert "### width 0.5" in md and "### width 1" in md and "Δ ECE" in md
    assert out.with_suffix(".png").stat().st_size > 5000


def test_overlapping_tuning_and_reporting_seeds_are_refused(tmp_path: Path) -> None:
    bad = _run("--quick", "--out", str(tmp_path / "x"), "--tune-seeds", "0")
    assert bad.returncode != 0 and "disjoint" in bad.stderr
    assert not (tmp_path / "x.json").exists()
