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
           "summarize", "paired_comparison", "save_comparison", "default_reference", "load_run",
           "plan_compare", "fitting_architectures", "check_architecture"]
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
                                  "brier", "ood_auroc", "rmse", "crps", "coverage_90")

#: metrics of the paired comparison against a reference model (``hvgp compare``)
PAIRED_METRICS: tuple[str, ...] = ("ece", "ece_debiased", "nll", "accuracy", "rmse", "crps")


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


#: smallest signal length a ``cnn1d`` convolves (kernel 5, two stride-2 stages) and the
#: smallest image side of the image networks
MIN_SIGNAL, MIN_IMAGE = 16, 8

#: fields a resume may change: they do not change training
RESUMABLE_CHANGES: tuple[str, ...] = ("device", "num_samples")


def _fits(arch: str, shape: tuple[int, ...]) -> bool:
    """Whether network ``arch`` is meant for inputs of ``shape`` (not only runnable)."""
    if arch == "mlp":
        return True
    if arch == "cnn1d":
        return len(shape) in (1, 2) and shape[-1] >= MIN_SIGNAL
    return len(shape) == 3 and min(shape[1:]) >= MIN_IMAGE


def fitting_architectures(input_shape: Sequence[int]) -> list[str]:
    """The architectures of :mod:`hvgp.nn` meant for inputs of ``input_shape``."""
    from hvgp.nn import ARCHITECTURES

    return [a for a in ARCHITECTURES if _fits(a, tuple(input_shape))]


def check_architecture(arch: str, info: Any) -> None:
    """Refuse an architecture that does not fit the data set (``cnn1d`` on 2-D points).

    :raises ValueError: naming the data set's input shape and the architectures that fit.
    """
    from hvgp.nn import ARCHITECTURES

    key = str(arch).lower().replace("_", "-")
    if key not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose from {sorted(ARCHITECTURES)}")
    shape = tuple(info.input_shape)
    if not _fits(key, shape):
        need = (f"a 1-D signal of length >= {MIN_SIGNAL}" if key == "cnn1d"
                else f"(C, H, W) images of side >= {MIN_IMAGE}")
        raise ValueError(f"architecture {arch!r} does not fit data set {info.name!r} (inputs "
                         f"of shape {shape}; it needs {need}); architectures that fit: "
                         f"{', '.join(fitting_architectures(shape))}")


def build_estimator(cfg: RunConfig, info: Any, progress: bool = False,
                    checkpoint: str | Path | None = None) -> Estimator:
    """The estimator ``cfg.model`` names, built for data set ``info`` (shapes, classes).

    Networks and wrappers get the recipes of ``cfg`` (:mod:`hvgp.infer.recipes`), the
    fields their registration ``reads`` and their ``model_options``; GPs get the device,
    seed and options.
    """
    from hvgp.nn import build_model

    spec = get_model(cfg.model)
    label = f"{cfg.model} seed {cfg.seed} sparsity {cfg.sparsity:.0%}"  # says what runs
    kw: dict[str, Any] = dict(device=cfg.device, seed=cfg.seed,
                              progress=label if progress else False, **cfg.options())
    if spec.kind == "gp":
        if info.task == "classification":
            kw["num_classes"] = info.num_classes
        return make_estimator(spec.name, task=info.task, **kw)
    from hvgp.infer.recipes import OptimRecipe, TopologyRecipe

    kw.update(sparsity=cfg.sparsity, topology=TopologyRecipe.from_config(cfg),
              optim=OptimRecipe.from_config(cfg))
    kw.update({arg: getattr(cfg, name) for name, arg in spec.reads.items()})
    check_architecture(cfg.arch, info)
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
        resume: bool = False, shift: bool = True, overwrite: bool = False) -> RunResult:
    """Train ``cfg.model`` on ``cfg.data`` and score it on the test split.

    :param out: run folder; receives ``config.json``, ``metrics.json``, ``model.pt``,
        ``reliability.png`` and (neural models) the training checkpoint ``checkpoint.pt``.
        It is locked for the run (:mod:`hvgp.runs`: a second run into it is refused); a run
        that fails leaves nothing new in it, or ``FAILED.json`` once it has written files.
    :param resume: continue from ``out/checkpoint.pt`` (written by an interrupted run); the
        settings must be those of ``out/config.json`` (only ``device`` and ``num_samples``
        may change).
    :param overwrite: replace a finished (or unfinished) run in ``out``; without it such a
        folder is refused.
    :param shift: also score on ``<data>-shift`` where that data set exists.
    """
    if out is None:
        if resume:
            raise ValueError("resume=True needs the run folder (out=) to continue from")
        return _run(cfg, None, progress, False, shift)
    from hvgp.runs import run_folder

    with run_folder(out, resume=resume, overwrite=overwrite) as folder:
        if resume:
            check_resume(folder, cfg)
        return _run(cfg, folder, progress, resume, shift)


def check_resume(folder: str | Path, cfg: RunConfig) -> None:
    """Refuse to resume the run in ``folder`` with settings other than its ``config.json``.

    :raises ValueError: listing every differing field (saved value vs requested value).
    """
    path = Path(folder) / "config.json"
    if not path.is_file():
        return  # nothing recorded to compare with (the checkpoint's own checks still apply)
    saved = RunConfig.from_saved(json.loads(path.read_text()))
    old, new = saved.to_dict(), cfg.to_dict()
    differ = [f"{k}: {old[k]!r} (run) vs {new[k]!r} (now)" for k in old
              if k not in RESUMABLE_CHANGES and old[k] != new[k]]
    if differ:
        raise ValueError(f"--resume: {folder} was trained with other settings; differing: "
                         f"{'; '.join(differ)}. Resume with the run's settings, or start a "
                         "new run (another --out, or --overwrite)")


def _run(cfg: RunConfig, folder: Path | None, progress: bool, resume: bool,
         shift: bool) -> RunResult:
    """:func:`run` inside its (locked) folder: nothing is written before the estimator is
    built, so a bad architecture or an absent CUDA leaves the folder as it was."""
    from hvgp.data import get_loaders

    seed_everything(cfg.seed)
    train, val, test, info = get_loaders(cfg.data, batch_size=cfg.batch_size, seed=cfg.seed,
                                         val_fraction=cfg.val_fraction)
    spec = get_model(cfg.model)
    ckpt = None if folder is None or not spec.checkpoints else folder / "checkpoint.pt"
    if resume and (ckpt is None or not ckpt.is_file()):
        raise FileNotFoundError(f"--resume: no checkpoint at {ckpt} to continue from")
    est = build_estimator(cfg, info, progress=progress, checkpoint=ckpt)
    if folder is not None:
        cfg.save(folder / "config.json")
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
    """``model.pt``, ``reliability.png``, then ``metrics.json`` (last: it marks the run
    finished)."""
    from hvgp.infer import save_checkpoint

    save_checkpoint(folder / "model.pt", {"states": [result.estimator.state_dict()],
                                          "config": result.config.to_dict()})
    if result.samples is not None and result.samples.is_classification:
        from hvgp.plots import reliability_grid

        fig = reliability_grid({result.config.model: (result.samples, result.labels)},
                               path=folder / "reliability.png")
        import matplotlib.pyplot as plt

        plt.close(fig)
    (folder / "metrics.json").write_text(json.dumps(result.row(), indent=2) + "\n")


def load_run(folder: str | Path, data: str | None = None) -> Estimator:
    """The estimator of a finished run folder (``hvgp train --out FOLDER``), ready to predict.

    The one way to open a CLI run from Python: the network is rebuilt from ``config.json``
    for the data set's shapes and ``model.pt`` is loaded with ``weights_only=True`` (opening
    a run never executes code from it). ``data``: another data set with the same shapes.

    :raises FileNotFoundError: ``folder`` is not a finished run (or the run failed).
    """
    from hvgp.data import get_dataset
    from hvgp.infer import load_checkpoint
    from hvgp.runs import FAILED_NAME

    folder = Path(folder)
    if (folder / FAILED_NAME).is_file():
        error = json.loads((folder / FAILED_NAME).read_text()).get("error", "")
        raise FileNotFoundError(f"{folder} holds a run that failed ({error}); nothing to load")
    for name in ("config.json", "model.pt"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder} is not a finished run: {name} is missing")
    cfg = RunConfig.from_saved(json.loads((folder / "config.json").read_text()))
    info = get_dataset(data or cfg.data, "test", seed=cfg.seed).info
    est = build_estimator(cfg, info)
    (state,) = load_checkpoint(folder / "model.pt")["states"]
    est.load_state_dict(state)
    return est


def evaluate_run(folder: str | Path, data: str | None = None, shift: bool = False,
                 num_samples: int | None = None) -> dict[str, float]:
    """Re-score a saved run (``hvgp evaluate``) on its own or another data set's test split
    (the estimator from :func:`load_run`)."""
    from hvgp.data import get_loaders

    folder = Path(folder)
    est = load_run(folder, data)
    cfg = RunConfig.from_saved(json.loads((folder / "config.json").read_text()))
    name = data or cfg.data
    if shift:
        name = f"{name}-shift"
    _, _, test, _ = get_loaders(name, batch_size=512, seed=cfg.seed)
    ns = num_samples if num_samples is not None else est.run_samples(cfg.num_samples)
    samples, y = est.predict_loader(test, num_samples=ns)
    return score(samples, y)


def plan_compare(models: Sequence[str], data: str = "mnist1d", seeds: Sequence[int] = (0,),
                 base: RunConfig | None = None, out: str | Path | None = None,
                 overrides: dict[str, dict[str, Any]] | None = None, overwrite: bool = False,
                 ) -> list[tuple[RunConfig, Path | None]]:
    """Every run of :func:`compare` as ``(config, folder)``, all validated before any trains.

    Why: a typo in the last model name, a sparsity out of range or an architecture that does
    not fit the data used to surface only after the earlier runs had trained.

    :raises ValueError: unknown or repeated model, bad value, unfitting architecture, or a
        run folder that holds a finished run (without ``overwrite``).
    """
    from hvgp.data import get_dataset
    from hvgp.runs import check_folder

    base = base or RunConfig()
    overrides = overrides or {}
    models = list(models)
    canonical = [get_model(m).name for m in models]  # every name checked before anything runs
    for what, values in (("model", canonical), ("seed", [int(s) for s in seeds])):
        repeated = sorted({str(v) for v in values if values.count(v) > 1})
        if repeated:
            raise ValueError(f"{what}s given more than once: {', '.join(repeated)}")
    if not models or not seeds:
        raise ValueError("compare needs at least one model and one seed")
    info = get_dataset(data, "test", seed=int(seeds[0])).info
    plan: list[tuple[RunConfig, Path | None]] = []
    for model in models:
        spec = get_model(model)
        for seed in seeds:
            changes: dict[str, Any] = {  # base options reach the models that have them
                "model": model, "data": data, "seed": int(seed),
                "model_options": {k: v for k, v in base.model_options.items()
                                  if k in spec.options}}
            if model == "dense" or spec.kind == "gp":
                changes["sparsity"] = 0.0  # the rest share the sparsity, as in the paper
            changes.update(overrides.get(model, {}))
            cfg = base.updated(**changes)
            if spec.kind != "gp":
                check_architecture(cfg.arch, info)
            sub = None if out is None else Path(out) / f"{model}-s{seed}"
            if sub is not None:
                check_folder(sub, overwrite=overwrite)
            plan.append((cfg, sub))
    return plan


def compare(models: Sequence[str], data: str = "mnist1d", seeds: Sequence[int] = (0,),
            base: RunConfig | None = None, out: str | Path | None = None,
            progress: bool = False, overrides: dict[str, dict[str, Any]] | None = None,
            overwrite: bool = False, workers: int = 1,
            reference: str | None = None) -> list[RunResult]:
    """Train and score every model on the same data splits and seeds.

    ``dense`` and the GPs run at sparsity 0; every other baseline (MC dropout, mixup...) is
    applied to a sparse network of ``base.sparsity``, as in the CigL paper's comparisons.
    Every run is validated first (:func:`plan_compare`), so a bad name or value fails before
    anything trains.

    :param overrides: per-model config changes, e.g. ``{"mc-dropout": {"sparsity": 0.0}}``.
    :param out: folder for one sub-folder per run, ``results.json``, ``table.md`` and a
        reliability-diagram grid (seed ``seeds[0]``) ``reliability.png``.
    :param overwrite: replace finished runs in the sub-folders (else they are refused).
    :param workers: runs trained at once in worker processes (:func:`hvgp.pool.run_plan`;
        the results are the same, the estimators stay in the workers).
    :param reference: the model ``table.md``'s paired differences are taken against
        (default: :func:`default_reference`).
    """
    from hvgp.pool import run_plan

    plan = plan_compare(models, data, seeds, base, out, overrides, overwrite)
    if reference is not None and get_model(reference).name not in {c.model for c, _ in plan}:
        # the config's model is the canonical name; paired_comparison canonicalises too
        raise ValueError(f"reference {reference!r} is not among the compared models "
                         f"({', '.join(models)})")
    results = run_plan(plan, workers=workers, progress=progress, overwrite=overwrite)
    if out is not None:
        save_comparison(Path(out), results, seeds[0], reference)
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

    reference = get_model(reference).name if reference else default_reference(results)
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
