"""Choose CigL's random-mask rate p and averaging start T* on a validation split.

The protocol is fixed before any run: every grid point is trained on each tuning seed, scored
on the validation split only, and the point with the lowest mean validation NLL (a proper
score; validation ECE on small splits flips on noise) wins; ties go to the earlier grid point.
The test split is never read. Tuning seeds must differ from the seeds a result is reported
on (:func:`check_disjoint`).

Grid points that differ only in ``average_start`` share one training run when every such
start is at or after the topology's ``t_end``: the mask has stopped changing by then, and
neither the learning-rate schedule nor Z depends on the start, so the runs would be the same
up to the averaging; extra averagers fold in the snapshots of the later starts.

>>> from hvgp.tune import DEFAULT_GRID
>>> sorted(DEFAULT_GRID)
['average_start', 'drop_rate']
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_GRID", "SELECTORS", "TuneResult", "check_disjoint", "tune", "tune_config"]

#: the grid ``CigL.tune`` and ``hvgp tune`` search by default (p = 0: averaging only)
DEFAULT_GRID: dict[str, tuple[float, ...]] = {
    "drop_rate": (0.0, 0.005, 0.01, 0.05, 0.1),
    "average_start": (0.75, 0.8, 0.9),
}
#: validation scores a grid point may be chosen by (proper scores, lower is better)
SELECTORS: tuple[str, ...] = ("val_nll", "val_brier")
#: the validation metrics each trial records
RECORDED: tuple[str, ...] = ("nll", "brier", "accuracy", "ece", "ece_floor", "ece_debiased")

#: ``build(params, seed) -> estimator`` (a :class:`hvgp.infer.CigL` or subclass, unfitted)
Builder = Callable[[dict[str, Any], int], Any]


@dataclass
class TuneResult:
    """Every trial and the chosen grid point.

    :param trials: one record per (grid point, seed): ``params``, ``seed`` and ``val_*``.
    :param best: the chosen grid point (parameter -> value).
    """

    grid: dict[str, list[Any]]
    seeds: list[int]
    select_by: str
    trials: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> list[dict[str, Any]]:
        """Per grid point: mean and std over seeds of every recorded validation metric."""
        rows = []
        for params in _points(self.grid):
            mine = [t for t in self.trials if t["params"] == params]
            if not mine:
                continue
            row: dict[str, Any] = {"params": params, "seeds": [t["seed"] for t in mine]}
            for key in (f"val_{m}" for m in RECORDED):
                values = [t[key] for t in mine if key in t]
                if values:
                    row[key] = statistics.fmean(values)
                    row[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
            rows.append(row)
        return rows

    def table(self) -> str:
        """Markdown table of :meth:`summary`, the chosen point marked."""
        keys = list(self.grid)
        head = ["| " + " | ".join(keys) + " | val NLL | val Brier | val acc (%) | val ECE "
                "(floor) | val debiased CE | seeds | |", "|" + "---|" * (len(keys) + 7)]
        lines = []
        for row in self.summary():
            mark = "**chosen**" if row["params"] == self.best else ""
            cells = [f"{row['params'][k]:g}" for k in keys]
            lines.append(
                "| " + " | ".join(cells) + f" | {row['val_nll']:.4f} ± {row['val_nll_std']:.4f}"
                f" | {row['val_brier']:.4f} | {100 * row['val_accuracy']:.2f} "
                f"| {row['val_ece']:.4f} ({row['val_ece_floor']:.4f}) "
                f"| {row['val_ece_debiased']:.4f} | {len(row['seeds'])} | {mark} |")
        notes = [f"\nNote: {n}." for n in self.notes()] if self.best else []
        return "\n".join(head + lines + notes)

    def notes(self) -> list[str]:
        """What the choice says beyond its value: p = 0 chosen (the random mask only adds
        noise here), or a choice at the edge of a numeric grid axis (the optimum may lie
        beyond it). Why: at 99 % sparsity the p tuned at 90 % costs the CNN 13-17 accuracy points
        (README, "The 99 % study"); the validation split shows it, and the user should see
        it said, not only a number."""
        out = []
        for key, values in self.grid.items():
            if key not in self.best or len(values) < 2:
                continue
            v = self.best[key]
            if key == "drop_rate" and v == 0:
                out.append("drop_rate = 0 chosen: on the validation split every random-mask "
                           "rate tried was worse than none, so CigL here is RigL with weight "
                           "averaging (expected at very high sparsity, e.g. 99 %)")
                continue
            if not all(isinstance(x, (int, float)) for x in values):
                continue
            positive = [x for x in values if not (key == "drop_rate" and x == 0)]
            if len(positive) < 2 or v not in (min(positive), max(positive)):
                continue
            side = "lowest" if v == min(positive) else "highest"
            out.append(f"{key} = {v:g} is the {side} value tried ({sorted(positive)}): the "
                       "best value may lie beyond the grid; extend it on that side")
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain data (``tune.json``)."""
        return {"grid": self.grid, "seeds": self.seeds, "select_by": self.select_by,
                "best": self.best, "notes": self.notes(), "trials": self.trials,
                "summary": self.summary()}

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_dict` as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def _points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every grid point, in grid order (the last key varies fastest)."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*grid.values())]


def check_grid(grid: Mapping[str, Iterable[Any]] | None, allowed: Sequence[str]
               ) -> dict[str, list[Any]]:
    """``grid`` (default :data:`DEFAULT_GRID`) as lists, refusing unknown or empty axes."""
    grid = {k: list(v) for k, v in (DEFAULT_GRID if grid is None else grid).items()}
    if not grid:
        raise ValueError("the tuning grid is empty; give e.g. {'drop_rate': [0.01, 0.05]}")
    for key, values in grid.items():
        if key not in allowed:
            raise ValueError(f"cannot tune {key!r}; tunable: {', '.join(allowed)}")
        if not values:
            raise ValueError(f"grid axis {key!r} has no values")
        if len(set(values)) != len(values):
            raise ValueError(f"grid axis {key!r} repeats a value: {values}")
    return grid


def check_disjoint(tuning_seeds: Iterable[int], report_seeds: Iterable[int]) -> None:
    """Refuse to report on a seed the configuration was tuned on.

    :raises ValueError: naming the shared seeds.
    """
    shared = sorted(set(tuning_seeds) & set(report_seeds))
    if shared:
        raise ValueError(f"seeds {shared} were used for tuning; report on other seeds")


def _check_common(seeds: Sequence[int], select_by: str, epochs: int) -> list[int]:
    if select_by not in SELECTORS:
        raise ValueError(f"select_by must be one of {', '.join(SELECTORS)} (proper scores on "
                         f"the validation split); got {select_by!r}")
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one, got {seeds}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    return seeds


def tune(build: Builder, train_loader: Any, val_loader: Any, epochs: int,
         grid: Mapping[str, Iterable[Any]] | None = None, seeds: Sequence[int] = (100, 101),
         select_by: str = "val_nll", progress: bool = True,
         loaders: Callable[[int], tuple[Any, Any]] | None = None,
         start_key: str = "average_start", t_end: float | None = None) -> TuneResult:
    """Train ``build(params, seed)`` at every grid point and seed; choose by ``select_by``.

    :param build: an unfitted CigL-like estimator for a grid point and a seed.
    :param train_loader, val_loader: the data (``loaders(seed)`` overrides them per seed).
    :param grid: parameter -> values (default :data:`DEFAULT_GRID`).
    :param start_key: the grid key that is the averaging start (its runs may be shared).
    :param t_end: the builder's topology ``t_end`` (default
        :class:`~hvgp.infer.recipes.TopologyRecipe`'s) unless the grid has a ``t_end`` axis:
        only starts at or after it share a run.
    """
    seeds = _check_common(seeds, select_by, epochs)
    grid = check_grid(grid, list(DEFAULT_GRID if grid is None else grid))
    if val_loader is None and loaders is None:
        raise ValueError("tune needs a validation loader (the test split is never used)")
    result = TuneResult(grid, seeds, select_by)
    jobs = _jobs(grid, seeds, start_key, t_end)
    from tqdm.auto import tqdm

    bar = tqdm(jobs, desc="tune", disable=not progress, leave=False)
    shuffles: dict[int, dict[str, Any]] = {}
    for params, starts, seed in bar:
        shown = ", ".join(f"{k}={v:g}" for k, v in params.items())
        bar.set_description(f"tune {shown} seed {seed}")
        train, val = (train_loader, val_loader) if loaders is None else loaders(seed)
        _rewind(train, shuffles)
        est = build(dict(params), seed)
        extras = _extra_averagers(est, starts[1:], epochs, start_key in params)
        est.user_callbacks += list(extras.values())
        est.fit(train, epochs=epochs)
        for start in starts:
            trial_params = {**params, start_key: start} if start is not None else params
            metrics = _scored(est, extras.get(start), val)
            result.trials.append({"params": trial_params, "seed": seed, **metrics})
    result.best = _choose(result)
    for note in result.notes():
        warnings.warn(f"tune: {note}", UserWarning, stacklevel=2)
    return result


def _rewind(loader: Any, saved: dict[int, dict[str, Any]]) -> None:
    """Reset ``loader``'s shuffle generators to their state when tuning first met it, so every
    trial sees the batches a standalone fit on a fresh loader would (not the order left over
    by the previous trial)."""
    from hvgp.infer.callbacks import loader_generators

    gens = loader_generators(loader)
    first = saved.setdefault(id(loader), {k: g.get_state() for k, g in gens.items()})
    for key, gen in gens.items():
        gen.set_state(first[key])


def _jobs(grid: dict[str, list[Any]], seeds: list[int], start_key: str,
          t_end: float | None = None) -> list[tuple[dict[str, Any], list[Any], int]]:
    """(params without the shared start, starts sharing the run, seed) per training run.

    Starts at or after ``t_end`` share a run (see the module docstring): the grid's own
    ``t_end`` axis, else ``t_end``, else :class:`~hvgp.infer.recipes.TopologyRecipe`'s.
    """
    from hvgp.infer.recipes import TopologyRecipe

    default_t_end = TopologyRecipe().t_end if t_end is None else float(t_end)
    rest = {k: v for k, v in grid.items() if k != start_key}
    starts = grid.get(start_key)
    out = []
    for seed in seeds:
        for params in _points(rest) if rest else [{}]:
            if starts is None:
                out.append((params, [None], seed))
                continue
            end = params.get("t_end", default_t_end)
            late = sorted(s for s in starts if s >= end)
            for s in (s for s in starts if s < end):
                out.append(({**params, start_key: s}, [s], seed))
            if late:
                out.append(({**params, start_key: late[0]}, late, seed))
    return out


def _extra_averagers(est: Any, starts: Sequence[float], epochs: int, shared: bool
                     ) -> dict[float, Any]:
    """Averagers of the later starts of a shared run (same snapshot rule as ``est``'s)."""
    from hvgp.infer.callbacks import WeightAveraging

    if not shared or not starts:
        return {}
    avg = est.averaging_recipe
    if avg is None:
        raise ValueError("average_start is tuned but the estimator does not average")
    return {s: WeightAveraging(int(s * epochs), avg.masked) for s in starts}


def _scored(est: Any, averager: Any, val: Any) -> dict[str, float]:
    """Validation metrics of ``est``'s prediction network, or of ``averager``'s mean."""
    main = est.averaged_
    if averager is not None:
        est.averaged_ = averager.averaged
    try:
        metrics = est.evaluate(val)
    finally:
        est.averaged_ = main
    return {f"val_{k}": float(metrics[k]) for k in RECORDED if k in metrics}


def _choose(result: TuneResult) -> dict[str, Any]:
    """The grid point with the lowest mean ``select_by`` (ties: the earlier point)."""
    best, best_value = None, math.inf
    for row in result.summary():
        value = row.get(result.select_by, math.inf)
        if value < best_value:
            best, best_value = row["params"], value
    if best is None:
        raise ValueError(f"no trial produced {result.select_by}")
    return best


#: RunConfig fields ``hvgp tune`` may search, and the CigL keyword each is
CONFIG_KEYS: dict[str, str] = {"drop_rate": "drop_rate", "averaging_start": "average_start"}


def tune_config(cfg: Any, grid: Mapping[str, Iterable[Any]] | None = None,
                seeds: Sequence[int] = (100, 101), select_by: str = "val_nll",
                progress: bool = True) -> tuple[TuneResult, Any]:
    """``hvgp tune``: :func:`tune` for a :class:`~hvgp.config.RunConfig` (grid keys are
    config fields: ``drop_rate``, ``averaging_start``); returns the result and the chosen
    configuration (``cfg`` with the best values; its seed is ``cfg``'s, not a tuning seed)."""
    from hvgp.experiment import build_estimator
    from hvgp.registry import get_model

    if grid is None:
        grid = {"drop_rate": DEFAULT_GRID["drop_rate"],
                "averaging_start": DEFAULT_GRID["average_start"]}
    grid = check_grid(grid, list(CONFIG_KEYS))
    if "averaging_start" in grid and "averaging_start" not in get_model(cfg.model).reads:
        raise ValueError(f"model {cfg.model!r} does not average; tune drop_rate only")
    check_disjoint(seeds, [cfg.seed])
    cache: dict[int, tuple[Any, Any, Any]] = {}

    def loaders(seed: int) -> tuple[Any, Any]:
        if seed not in cache:
            cache[seed] = _tuning_loaders(cfg, seed)
        train, val, _ = cache[seed]
        return train, val

    def build(params: dict[str, Any], seed: int) -> Any:
        loaders(seed)
        return build_estimator(cfg.updated(seed=seed, **params), cache[seed][2])

    result = tune(build, None, None, cfg.epochs, grid, seeds, select_by, progress,
                  loaders=loaders, start_key="averaging_start", t_end=cfg.t_end)
    return result, cfg.updated(**result.best)


def _tuning_loaders(cfg: Any, seed: int) -> tuple[Any, Any, Any]:
    """Train and validation loaders (and the data info) of ``cfg.data`` for ``seed``; the
    test loader is dropped unread."""
    from hvgp.data import get_loaders

    train, val, _test, info = get_loaders(cfg.data, batch_size=cfg.batch_size, seed=seed,
                                          val_fraction=cfg.val_fraction)
    if len(val.dataset) == 0:
        raise ValueError(f"{cfg.data} has no validation split at val_fraction="
                         f"{cfg.val_fraction}; tuning needs one (never the test split)")
    return train, val, info
