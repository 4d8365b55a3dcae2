"""The notebooks: built from notebooks/src, committed with outputs, and run top to bottom.

Each notebook is executed here in quick mode (``HVGP_QUICK=1`` shrinks sizes, same code path)
with nbclient and the ``python3`` kernel, which jupyter_client resolves to the interpreter
running the tests (the project venv, where ipykernel is installed).
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def _build_module():
    spec = importlib.util.spec_from_file_location("hvgp_notebooks_build", NOTEBOOKS / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


BUILD = _build_module()
STEMS = list(BUILD.NOTEBOOKS)


def _code(nb: nbformat.NotebookNode) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


def test_python3_kernel_is_this_interpreter() -> None:
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    assert "python3" in KernelSpecManager().find_kernel_specs()
    cmd = KernelManager(kernel_name="python3").format_kernel_cmd()
    assert Path(cmd[0]).resolve() == Path(sys.executable).resolve()


@pytest.mark.parametrize("stem", STEMS)
def test_committed_notebook_matches_its_source_and_has_outputs(stem: str) -> None:
    path = NOTEBOOKS / f"{stem}.ipynb"
    assert path.is_file(), f"{path.name} missing: run notebooks/build.py --execute"
    committed = nbformat.read(path, as_version=4)
    fresh = BUILD.build(stem)
    assert [(c.cell_type, c.source) for c in committed.cells] == [
        (c.cell_type, c.source) for c in fresh.cells
    ], f"{path.name} is stale or hand-edited: rebuild it with notebooks/build.py --execute"
    code = [c for c in committed.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "committed without executing"
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no plot in the outputs"
    assert path.stat().st_size < 1_500_000, "outputs too large for the repository"


@pytest.mark.parametrize("stem", STEMS)
def test_notebook_imports_only_public_hvgp_names(stem: str) -> None:
    for source in _code(BUILD.build(stem)):
        lines = [ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hvgp"):
                assert not any(part.startswith("_") for part in node.module.split(".")), node.module
                assert not [a.name for a in node.names if a.name.startswith("_")], node.module
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("hvgp"):
                        assert not any(p.startswith("_") for p in alias.name.split("."))


@pytest.mark.parametrize("stem", STEMS)
def test_notebook_runs_top_to_bottom_in_quick_mode(
    stem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbclient.exceptions import CellExecutionError

    for var, value in {"HVGP_QUICK": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1",
                       "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}.items():
        monkeypatch.setenv(var, value)
    nb = BUILD.build(stem)
    try:
        BUILD.execute(nb, timeout=300)
    except CellExecutionError as err:  # the message holds the failing cell and traceback
        pytest.fail(f"{stem} failed in quick mode:\n{err}")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no plot was drawn"
