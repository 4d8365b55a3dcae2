"""benchmarks/step_ab_commits.py exports a commit's package beside the working tree's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import step_ab_commits as AB  # noqa: E402


def test_the_exported_package_imports_only_itself(tmp_path: Path) -> None:
    full = AB.export_base("HEAD", tmp_path)
    assert len(full) == 40
    sources = {p: p.read_text() for p in (tmp_path / "hvgp_base").rglob("*.py")}
    assert sources and not (tmp_path / "hvgp").exists()
    for path, text in sources.items():
        for line in text.splitlines():
            stripped = line.strip()
            if stripped.startswith(("import hvgp", "from hvgp")):
                assert stripped.split()[1].startswith("hvgp_base"), (path, line)


def test_an_unknown_commit_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="not a commit"):
        AB.export_base("no-such-revision", tmp_path)


def test_quick_run_times_both_versions_of_both_steps() -> None:
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "step_ab_commits.py"), "--base",
                    "HEAD", "--archs", "mlp", "--quick"], check=True, cwd=ROOT,
                   capture_output=True)
    got = json.loads(Path("/tmp/hvgp_bench_quick/step_ab_commits.json").read_text())
    ratios = got["results"]["mlp"]["ratios"]
    assert set(ratios) == set(AB.PAIRS)
    assert all(r["median"] > 0 for r in ratios.values())
