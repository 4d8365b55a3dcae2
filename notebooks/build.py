"""Generate the hvgp notebooks from their cell sources, and optionally execute them.

The notebooks are *built*, never edited by hand: each ``notebooks/src/nbXX_*.py`` module holds
a list ``CELLS`` of markdown / code strings, this script turns them into ``.ipynb`` files with
nbformat and (``--execute``) runs them with nbclient so that they are committed with their
outputs (plots visible on GitHub).

    .venv/bin/python notebooks/build.py                 # write the notebooks, no outputs
    .venv/bin/python notebooks/build.py --execute       # write and execute all (full mode)
    HVGP_QUICK=1 .venv/bin/python notebooks/build.py --execute --only 01   # quick, one notebook
    .venv/bin/python notebooks/build.py --refresh-markdown   # new prose, keep code outputs

Execution uses the ``python3`` kernel spec, which jupyter_client resolves to the interpreter
running this script (the project venv), with ``MPLBACKEND=Agg`` and one thread per library
unless the environment says otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path
from types import ModuleType

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"

#: notebook file stem -> source module file (in ``notebooks/src``)
NOTEBOOKS: dict[str, str] = {
    "01_random_mask_is_a_deep_gp": "nb01_random_mask.py",
    "02_cigl_as_variational_inference": "nb02_cigl_vi.py",
    "03_sampling_predictive_distributions": "nb03_predictive.py",
    "04_calibration_vs_sparsity": "nb04_calibration.py",
    "05_gp_baselines": "nb05_gp_baselines.py",
    "06_sampled_posterior": "nb06_sampled_posterior.py",
}

KERNEL = {"name": "python3", "display_name": "Python 3 (hvgp venv)", "language": "python"}


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_hvgp_nb_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load notebook source {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(stem: str) -> nbformat.NotebookNode:
    """The notebook ``stem`` (no outputs) from its source module's ``CELLS``."""
    if stem not in NOTEBOOKS:
        raise ValueError(f"unknown notebook {stem!r}; choose from {sorted(NOTEBOOKS)}")
    cells = []
    for kind, text in _load(SRC / NOTEBOOKS[stem]).CELLS:
        text = text.strip("\n")
        cells.append(new_markdown_cell(text) if kind == "md" else new_code_cell(text))
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = KERNEL
    nb.metadata["language_info"] = {"name": "python"}
    # deterministic ids so that rebuilding an unchanged notebook gives an unchanged file
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{stem[:2]}-{i:03d}"
    return nb


def execute(nb: nbformat.NotebookNode, timeout: int = 1200) -> float:
    """Run ``nb`` in place (cwd = notebooks/); returns the wall time in seconds."""
    from nbclient import NotebookClient

    os.environ.setdefault("MPLBACKEND", "Agg")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(HERE)}})
    t0 = time.perf_counter()
    client.execute()
    return time.perf_counter() - t0


def refresh_markdown(stem: str) -> nbformat.NotebookNode:
    """The committed notebook with its markdown cells replaced by the current sources.

    Only allowed when every code cell is unchanged, so the kept outputs still belong to
    the code that produced them.
    """
    path = HERE / f"{stem}.ipynb"
    old, new = nbformat.read(path, as_version=4), build(stem)
    shape = [(c.cell_type, c.source if c.cell_type == "code" else None) for c in old.cells]
    if shape != [(c.cell_type, c.source if c.cell_type == "code" else None) for c in new.cells]:
        raise ValueError(f"{path.name}: code cells changed; re-execute it instead")
    for cell, fresh in zip(old.cells, new.cells):
        if cell.cell_type == "markdown":
            cell.source = fresh.source
    return old


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--execute", action="store_true", help="run each notebook, keep outputs")
    ap.add_argument("--refresh-markdown", action="store_true",
                    help="update the prose of executed notebooks without re-running them")
    ap.add_argument("--only", nargs="*", default=None, help="notebook stems or prefixes (01 ...)")
    args = ap.parse_args(argv)
    stems = [s for s in NOTEBOOKS
             if args.only is None or any(s.startswith(o) for o in args.only)]
    for stem in stems:
        if args.refresh_markdown:
            nbformat.write(refresh_markdown(stem), HERE / f"{stem}.ipynb")
            continue
        nb = build(stem)
        if args.execute:
            seconds = execute(nb)
            mode = "quick" if os.environ.get("HVGP_QUICK") == "1" else "full"
            print(f"{stem}: executed in {seconds:.1f} s ({mode} mode)", flush=True)
        nbformat.write(nb, HERE / f"{stem}.ipynb")
    return 0


if __name__ == "__main__":
    sys.exit(main())
