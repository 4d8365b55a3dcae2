"""``benchmarks/gpu_check.py`` runs end to end on the CPU in its quick mode and writes its JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import gpu_check  # noqa: E402


def test_quick_cpu_run_writes_every_section(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    rc = gpu_check.main(["--device", "cpu", "--quick", "--out", str(out)])
    report = json.loads(out.read_text())
    assert rc == 0 and report["ok"], json.dumps(report, indent=1)[:3000]
    secs = report["sections"]
    assert set(secs) == {"cuda_tests", "training", "prediction"}
    assert secs["cuda_tests"]["returncode"] == 0 and secs["cuda_tests"]["counts"]["skipped"] >= 2
    train = secs["training"]
    ratios = train["wall"]["ratios"]
    assert {"cigl_over_rigl", "hvgp_rigl_over_plain_rigl", "cigl_amp_over_cigl"} <= set(ratios)
    r = ratios["cigl_over_rigl"]
    assert r["n"] == 2 and r["min"] <= r["median"] <= r["max"] and r["min"] > 0
    assert set(train["cpu"]["seconds"]) == set(train["wall"]["seconds"])
    assert train["steps_per_function"] == 2 * 1 + 3
    for arch in ("mlp", "cnn1d", "wrn-22-2"):
        pred = secs["prediction"][arch]
        assert pred["finite"] and pred["max_abs_diff_same_seed"] < 1e-4, arch
        assert pred["auto_choice"] in ("vectorised", "loop")


def test_a_failing_section_makes_the_run_fail(tmp_path: Path, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(gpu_check, "prediction", broken)
    out = tmp_path / "g.json"
    rc = gpu_check.main(["--device", "cpu", "--quick", "--skip-tests", "--out", str(out)])
    report = json.loads(out.read_text())
    assert rc == 1 and not report["ok"]
    assert report["sections"]["prediction"]["error"] == "RuntimeError: boom"
    assert "cuda_tests" not in report["sections"]
