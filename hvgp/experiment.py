"""One data path for every model: config -> data -> estimator -> fit -> predict -> metrics.

The CLI, the demo, :func:`compare` and the benchmarks all go through :func:`run`, so every
method (CigL, RigL, dense, MC dropout, GPs...) is trained and scored on the same splits and
seeds by the same code, and every run leaves the same files behind
(``config.json``, ``metrics.json``, ``model.pt``, ``reliability.png``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hvgp.config import RunConfig
from hvgp.estimator import Estimator
from hvgp.metrics.score import score
from hvgp.predict import PredictiveSamples
from hvgp.registry import get_model, make_estimator, model_names
from hvgp.utils import seed_everything

__all__ = ["RunResult", "run", "compare", "evaluate_run", "format_table", "build_estimator",
           "summarize", "paired_comparison", "save_comparison", "default_reference"]
# and GP_MODELS / WRAPPER_MODELS, read from the registry


def __getattr__(name: str) -> Any:
    # GP_MODELS: GPyTorch GPs on the flattened inputs; WRAPPER_MODELS: several networks or a
    # fitted temperature (no training checkpoint). Both from :mod:`hvgp.registry`.
    kinds = {"GP_MODELS": "gp", "WRAPPER_MODELS": "wrapper"}
    if name in kinds:
        return model_names(kinds[name])
    raise AttributeError(f"module 'hvgp.experiment' has no attribute {name!r}")


#: metrics shown in tables, in order
TABLE_METRICS: tuple[str, ...] = ("accuracy", "ece", "ece_floor", "ece_debiased", "mce", "nll",
                                  "brier", "ood_auroc")

#: metrics of the paired comparison against a reference model (``hvgp compare``)
PAIRED_METRICS: tuple[str, ...] = ("ece", "ece_debiased", "nll", "accuracy")


@dataclass
class RunResult:
    """What one run produced: metrics on the test split (and the shifted test split)."""

    config: RunConfig
    metrics: dict[str, float]
    train_seconds: float
    predict_seconds: float
    sparsity: float
    nonzero_params: int
    samples: PredictiveSamples | None = field(default=None, repr=False)
    labels: torch.Tensor | None = field(default=None, repr=False)
    estimator: Any = field(default=None, repr=False)

    def row(self) -> dict[str, Any]:
        """Flat record for tables and JSON."""
        return {
            "model": self.config.model, "data": self.config.data, "seed": self.config.seed,
            "sparsity_target": self.config.sparsity, "sparsity": self.sparsity,
            "nonzero_params": self.nonzero_params, "train_seconds": self.train_seconds,
            "predict_seconds": self.predict_seconds, **self.metrics,
        }


def build_estimator(cfg: RunConfig, info: Any, progress: bool = False,
                    checkpoint: str | Path | None = None) -> Estimator:
    """The estimator ``cfg.model`` names, built for data set ``info`` (shapes, classes).

    Networks and wrappers get the recipes of ``cfg`` (:mod:`hvgp.infer.recipes`), the
    fields their registration ``reads`` and their ``model_options``; GPs get the device,
    seed and options.
    """
    from hvgp.nn import build_model

    spec = get_model(cfg.model)
    kw: dict[str, Any] = dict(device=cfg.device, seed=cfg.seed, progress=progress,
                              **cfg.options())
    if spec.kind == "gp":
        if info.task == "classification":
            kw["num_classes"] = info.num_classes
        return make_estimator(spec.name, task=info.task, **kw)
    from hvgp.infer.recipes import OptimRecipe, TopologyRecipe

    kw.update(sparsity=cfg.sparsity, topology=TopologyRecipe.from_config(cfg),
              optim=OptimRecipe.from_config(cfg))
    kw.update({arg: getattr(cfg, name) for name, arg in spec.reads.items()})
    if info.task == "regression":  # categorical is every estimator's default
        kw["likelihood"] = "normal"
    if checkpoint is not None and spec.checkpoints:
        kw["checkpoint"] = checkpoint

    def factory() -> torch.nn.Module:
        return build_model(cfg.arch, info, width=cfg.width)

    return make_estimator(spec.name, factory, **kw)


def _shift_metrics(est: Any, cfg: RunConfig, clean: PredictiveSamples,
                   num_samples: int | None) -> dict[str, float]:
    """Scores on the shifted test set, plus AUROC of clean-vs-shifted by predictive entropy."""
    from hvgp.data import get_loaders, list_datasets
    from hvgp.metrics import ood_auroc

    name = f"{cfg.data}-shift"
    if name not in list_datasets() or not clean.is_classification:
        return {}
    _, _, test, _ = get_loaders(name, batch_size=512, seed=cfg.seed)
    shifted, y = est.predict_loader(test, num_samples=num_samples)
    out = {f"shift_{k}": v for k, v in score(shifted, y).items()
           if k in ("accuracy", "ece", "nll", "brier")}
    out["ood_auroc"] = ood_auroc(clean, shifted)
    return out


def run(cfg: RunConfig, out: str | Path | None = None, progress: bool = False,
        resume: bool = False, shift: bool = True) -> RunResult:
    """Train ``cfg.model`` on ``cfg.data`` and score it on the test split.

    :param out: run folder; receives ``config.json``, ``metrics.json``, ``model.pt``,
        ``reliability.png`` and (neural models) the training checkpoint ``checkpoint.pt``.
    :param resume: continue from ``out/checkpoint.pt`` (written by an interrupted run).
    :param shift: also score on ``<data>-shift`` where that data set exists.
    """
    from hvgp.data import get_loaders

    seed_everything(cfg.seed)
    train, val, test, info = get_loaders(cfg.data, batch_size=cfg.batch_size, seed=cfg.seed,
                                         val_fraction=cfg.val_fraction)
    spec = get_model(cfg.model)
    folder = None if out is None else Path(out)
    ckpt = None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        cfg.save(folder / "config.json")
        if spec.checkpoints:
            ckpt = folder / "checkpoint.pt"
    if resume and (ckpt is None or not ckpt.is_file()):
        raise FileNotFoundError(f"--resume: no checkpoint at {ckpt} to continue from")
    est = build_estimator(cfg, info, progress=progress, checkpoint=ckpt)
    t0 = time.perf_counter()
    fit_kw: dict[str, Any] = {"resume": ckpt} if resume else {}
    if spec.needs_val:
        fit_kw["val_loader"] = val  # e.g. the temperature is fitted on the validation split
    est.fit(train, epochs=cfg.epochs, **fit_kw)
    train_s = time.perf_counter() - t0
    num_samples = est.run_samples(cfg.num_samples)
    t0 = time.perf_counter()
    samples, y = est.predict_loader(test, num_samples=num_samples)
    predict_s = time.perf_counter() - t0
    metrics = score(samples, y)
    if shift:
        metrics.update(_shift_metrics(est, cfg, samples, num_samples))
    result = RunResult(cfg, metrics, train_s, predict_s, float(est.sparsity()), est.nonzero(),
                       samples, y, est)
    if folder is not None:
        _save_run(folder, result)
    return result


def _save_run(folder: Path, result: RunResult) -> None:
    (folder / "metrics.json").write_text(json.dumps(result.row(), indent=2) + "\n")
    from hvgp.infer import save_checkpoint

    save_checkpoint(folder / "model.pt", {"states": [result.estimator.state_dict()],
                                          "config": result.config.to_dict()})
    if result.samples is not None and result.samples.is_classification:
        from hvgp.plots import reliability_grid

        fig = reliability_grid({result.config.model: (result.samples, result.labels)},
                               path=folder / "reliability.png")
        import matplotlib.pyplot as plt

        plt.close(fig)


def evaluate_run(folder: str | Path, data: str | None = None, shift: bool = False,
                 num_samples: int | None = None) -> dict[str, float]:
    """Re-score a saved run (``hvgp evaluate``) on its own or another data set's test split.

    The prediction network is rebuilt from ``config.json`` and ``model.pt`` (loaded with
    ``weights_only=True``: opening a run never executes code from it).
    """
    from hvgp.data import get_loaders
    from hvgp.infer import load_checkpoint

    folder = Path(folder)
    for name in ("config.json", "model.pt"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder} is not a finished run: {name} is missing")
    cfg = RunConfig.from_dict(json.loads((folder / "config.json").read_text()))
    name = data or cfg.data
    if shift:
        name = f"{name}-shift"
    _, _, test, info = get_loaders(name, batch_size=512, seed=cfg.seed)
    est = build_estimator(cfg, info)
    (state,) = load_checkpoint(folder / "model.pt")["states"]
    est.load_state_dict(state)
    ns = num_samples if num_samples is not None else est.run_samples(cfg.num_samples)
    samples, y = est.predict_loader(test, num_samples=ns)
    return score(samples, y)


def compare(models: Sequence[str], data: str = "mnist1d", seeds: Sequence[int] = (0,),
            base: RunConfig | None = None, out: str | Path | None = None,
            progress: bool = False, overrides: dict[str, dict[str, Any]] | None = None,
            ) -> list[RunResult]:
    """Train and score every model on the same data splits and seeds.

    ``dense`` and the GPs run at sparsity 0; every other baseline (MC dropout, mixup...) is
    applied to a sparse network of ``base.sparsity``, as in the CigL paper's comparisons.

    :param overrides: per-model config changes, e.g. ``{"mc-dropout": {"sparsity": 0.0}}``.
    :param out: folder for one sub-folder per run, ``results.json``, ``table.md`` and a
        reliability-diagram grid (seed ``seeds[0]``) ``reliability.png``.
    """
    base = base or RunConfig()
    overrides = overrides or {}
    results: list[RunResult] = []
    for model in models:
        for seed in seeds:
            own = get_model(model).options  # base options reach the models that have them
            changes: dict[str, Any] = {
                "model": model, "data": data, "seed": int(seed),
                "model_options": {k: v for k, v in base.model_options.items() if k in own}}
            if model == "dense" or get_model(model).kind == "gp":
                changes["sparsity"] = 0.0  # the rest share the sparsity, as in the paper
            changes.update(overrides.get(model, {}))
            cfg = base.updated(**changes)
            sub = None if out is None else Path(out) / f"{model}-s{seed}"
            results.append(run(cfg, out=sub, progress=progress))
    if out is not None:
        save_comparison(Path(out), results, seeds[0])
    return results


def default_reference(results: Sequence[RunResult]) -> str | None:
    """The model the others are compared with: RigL when present, else the first model."""
    models = list(dict.fromkeys(r.config.model for r in results))
    if not models:
        return None
    return "rigl" if "rigl" in models else models[0]


def paired_comparison(results: Sequence[RunResult], reference: str | None = None) -> str:
    """Markdown table of every model minus ``reference`` over the seeds both ran.

    Paired mean difference with a 95 % t interval, paired t-test p and seeds won, per metric
    of :data:`PAIRED_METRICS` that every run has (:func:`hvgp.metrics.paired_table`). Empty
    when fewer than 2 seeds pair up (a paired test needs two).
    """
    from hvgp.metrics import paired_table

    reference = reference or default_reference(results)
    rows = [r.row() for r in results]
    metrics = [m for m in PAIRED_METRICS if rows and all(m in row for row in rows)]
    seeds = {r.config.seed for r in results if r.config.model == reference}
    others = {r.config.model for r in results if r.config.model != reference}
    paired = [m for m in others if len(seeds & {r.config.seed for r in results
                                                if r.config.model == m}) >= 2]
    if reference is None or not metrics or not paired:
        return ""
    keep = [row for row in rows if row["model"] in (reference, *paired)]
    return paired_table(keep, reference, metrics)


def save_comparison(folder: Path, results: Sequence[RunResult], seed: int,
                    reference: str | None = None) -> None:
    """``results.json``, ``table.md`` (with the paired differences) and ``reliability.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(
        json.dumps({"runs": [r.row() for r in results], "summary": summarize(results)},
                   indent=2) + "\n")
    paired = paired_comparison(results, reference)
    (folder / "table.md").write_text(format_table(results) + "\n"
                                     + (f"\n{paired}\n" if paired else ""))
    pairs = {r.config.model: (r.samples, r.labels) for r in results
             if r.config.seed == seed and r.samples is not None and r.samples.is_classification}
    if pairs:
        import matplotlib.pyplot as plt

        from hvgp.plots import reliability_grid

        plt.close(reliability_grid(pairs, path=folder / "reliability.png"))


def summarize(results: Sequence[RunResult]) -> dict[str, dict[str, tuple[float, float]]]:
    """``{model: {metric: (mean, std over seeds)}}`` for every numeric column."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault(r.config.model, []).append(r.row())
    summary: dict[str, dict[str, tuple[float, float]]] = {}
    for model, rows in groups.items():
        keys = [k for k, v in rows[0].items() if isinstance(v, (int, float)) and k != "seed"]
        summary[model] = {}
        for k in keys:
            t = torch.tensor([float(r[k]) for r in rows], dtype=torch.float64)
            std = float(t.std()) if len(rows) > 1 else 0.0
            summary[model][k] = (float(t.mean()), std)
    return summary


def format_table(results: Sequence[RunResult]) -> str:
    """Markdown table, one row per model, mean ± std over seeds."""
    summary = summarize(results)
    metrics = [m for m in TABLE_METRICS if any(m in s for s in summary.values())]
    cols = ["model", *metrics, "sparsity", "nonzero_params", "train_seconds", "predict_seconds"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for model, s in summary.items():
        cells = [model]
        for c in cols[1:]:
            if c not in s:
                cells.append("–")
                continue
            mean, std = s[c]
            if c == "nonzero_params":
                cells.append(f"{mean:,.0f}")
            elif c.endswith("seconds"):
                cells.append(f"{mean:.1f}")
            elif math.isnan(mean):
                cells.append("nan")
            else:
                cells.append(f"{mean:.4f} ± {std:.4f}" if std else f"{mean:.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
