"""The README's Python examples run as written (with the epoch budgets cut to 1)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def _runnable(block: str) -> bool:
    """Blocks that build their own data (the others are fragments over user variables)."""
    return "get_loaders(" in block


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Models an example registers (README's "Extending hvgp") vanish after the test."""
    from hvgp import registry

    registry.model_names()  # load the built-in models first
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_ALIASES", dict(registry._ALIASES))


@pytest.mark.parametrize("index", [i for i, b in enumerate(_python_blocks()) if _runnable(b)])
def test_readme_example_runs(index: int, scratch_registry: None) -> None:
    code = re.sub(r"epochs=\d+", "epochs=1", _python_blocks()[index])
    exec(compile(code, f"README.md[python block {index}]", "exec"), {})


def test_readme_has_runnable_examples() -> None:
    assert sum(_runnable(b) for b in _python_blocks()) >= 2
