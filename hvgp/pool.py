"""Train a list of runs side by side in worker processes (``hvgp compare --workers``, the demo).

Why: one run of the 1-D CNN is single-threaded work of a few CPU minutes, so a comparison of
a dozen models over seeds is hours in one process while the other cores idle. Each worker is
a fresh ``spawn`` process with one torch thread that trains one run through
:func:`hvgp.experiment.run` (the same code path as in-process), so results do not depend on
how many workers ran them; only the fitted estimator stays behind in the worker (results
travel back by pickle and keep their predictive samples and metrics).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from hvgp.config import RunConfig

__all__ = ["run_in_worker", "run_plan", "report_line"]


def run_in_worker(cfg: RunConfig, out: Path | None, overwrite: bool = False) -> Any:
    """One run with one torch thread; the estimator is dropped (results travel by pickle)."""
    import torch

    from hvgp.experiment import run

    torch.set_num_threads(1)
    result = run(cfg, out=out, overwrite=overwrite)
    result.estimator = None
    return result


def run_plan(plan: Sequence[tuple[RunConfig, Path | None]], workers: int = 1,
             progress: bool = False, overwrite: bool = False) -> list[Any]:
    """Train every ``(config, folder)`` of ``plan``; results in plan order.

    ``workers == 1`` trains in this process (estimators kept; with ``progress``, a bar per
    run); more trains that many runs at once in worker processes. Without bars, one line is
    printed per finished run.
    """
    if int(workers) != workers or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if workers == 1:
        from hvgp.experiment import run

        runs = (run(cfg, out=sub, progress=progress, overwrite=overwrite) for cfg, sub in plan)
        return list(runs) if progress else _collect(runs, len(plan))
    with ProcessPoolExecutor(int(workers), mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_in_worker, cfg, sub, overwrite) for cfg, sub in plan]
        return _collect((f.result() for f in futures), len(plan))


def _collect(finished: Iterable[Any], n: int) -> list[Any]:
    """The results in plan order, printing each as it arrives."""
    results: list[Any] = []
    for r in finished:
        results.append(r)
        print(report_line(r, len(results), n), flush=True)
    return results


def report_line(r: Any, i: int, n: int) -> str:
    """One progress line per finished run (the workers train without progress bars)."""
    m = r.metrics
    main = (f"acc {m['accuracy']:.4f} ece {m['ece']:.4f} "
            f"(floor {m.get('ece_floor', float('nan')):.4f}) nll {m['nll']:.4f}"
            if "accuracy" in m else f"nll {m.get('nll', float('nan')):.4f}")
    return (f"[{i}/{n}] {r.config.model} seed {r.config.seed}: {main} "
            f"({r.train_seconds:.0f}s)")
