"""The #7 acceptance check reads the validation split to pick p and only then the test split."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import acceptance  # noqa: E402


def _run(method: str, p: float, seed: int, val_ece: float, ece: float, acc: float = 0.95,
         ) -> dict:
    return {"method": method, "drop_rate_p": p, "seed": seed, "val_ece": val_ece,
            "val_nll": val_ece * 10, "ece": ece, "accuracy": acc, "nll": 0.1, "brier": 0.05}


def _runs() -> list[dict]:
    """p=0.05 is best on validation but worst on test; p=0.1 is the reverse."""
    runs = []
    for s in (0, 1):
        runs.append(_run("RigL", 0.0, s, 0.02, 0.020))
        runs.append(_run("CigL", 0.05, s, 0.010, 0.013))  # chosen on val: 35 % lower
        runs.append(_run("CigL", 0.1, s, 0.030, 0.001))   # best on test, must not be used
    return runs


def test_p_is_chosen_on_validation_not_test() -> None:
    row = acceptance.check(_runs(), "val_ece")
    assert row["drop_rate_p"] == 0.05
    assert row["ece_reduction"] == pytest.approx(0.35)
    assert row["cigl_wins"] == 2 and row["seeds"] == [0, 1]
    assert row["passed"]


def test_fails_on_accuracy_drop_or_small_gain() -> None:
    runs = _runs()
    for r in runs:
        if r["method"] == "CigL":
            r["accuracy"] = 0.94  # one point below RigL
    assert not acceptance.check(runs, "val_ece")["passed"]
    runs = _runs()
    for r in runs:
        if r["method"] == "CigL" and r["drop_rate_p"] == 0.05:
            r["ece"] = 0.015  # 25 % lower only
    assert not acceptance.check(runs, "val_ece")["passed"]


def test_configs_missing_seeds_do_not_compete() -> None:
    runs = _runs() + [_run("CigL", 0.2, 0, 0.0, 0.0)]  # best on val, but one seed only
    row = acceptance.check(runs, "val_ece")
    assert row["seeds"] == [0, 1] and row["drop_rate_p"] == 0.05
    with pytest.raises(ValueError, match="every RigL seed"):
        acceptance.check([r for r in runs if r["method"] == "RigL" or r["seed"] == 0],
                         "val_ece")


def test_t_star_is_searched_only_at_the_chosen_p() -> None:
    """As ablation.py does it: p at the default T* first, then T* at that p."""
    runs = _runs()
    for s in (0, 1):  # T* = 0.6 at the losing p looks best on val but is not on the path
        runs.append({**_run("CigL", 0.1, s, 0.001, 0.02), "averaging_start": 0.6})
        runs.append({**_run("CigL", 0.05, s, 0.005, 0.012), "averaging_start": 0.9})
    row = acceptance.check(runs, "val_ece")
    assert (row["drop_rate_p"], row["averaging_start"]) == (0.05, 0.9)
    assert row["ece_reduction"] == pytest.approx(0.4)


def test_cli_writes_table_and_errors_on_missing(tmp_path: Path) -> None:
    (tmp_path / "ablation_s80.json").write_text(json.dumps(
        {"runs": _runs(), "extra": {"commands": ["x"]}}))
    cmd = [sys.executable, str(BENCH / "acceptance.py"), "--results", str(tmp_path),
           "--out", str(tmp_path / "acc")]
    ok = subprocess.run(cmd + ["--sparsities", "80"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "| 80 % | val ece | 0.05 | 0.8 |" in ok.stdout
    assert json.loads((tmp_path / "acc.json").read_text())["rows"][0]["passed"]
    bad = subprocess.run(cmd + ["--sparsities", "90"], capture_output=True, text=True)
    assert bad.returncode != 0 and "ablation.py --sparsity 0.9" in bad.stderr
