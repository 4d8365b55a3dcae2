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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hvgp.config import RunConfig
from hvgp.predict import PredictiveSamples
from hvgp.utils import seed_everything

__all__ = ["RunResult", "run", "compare", "evaluate_run", "format_table", "build_estimator",
           "GP_MODELS", "summarize"]

#: models trained as GPyTorch GPs on the flattened training inputs
GP_MODELS: tuple[str, ...] = ("svgp", "nngp", "deepgp")

#: estimators that wrap other estimators (several networks, or a fitted temperature): no
#: training checkpoint and no re-evaluation from ``model.pt``
WRAPPER_MODELS: tuple[str, ...] = ("ensemble", "temperature")

#: metrics shown in tables, in order
TABLE_METRICS: tuple[str, ...] = ("accuracy", "ece", "mce", "nll", "brier", "ood_auroc")


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


class _LoaderGP:
    """Gives a GPyTorch estimator (``fit(x, y)``) the loader surface of the neural models."""

    def __init__(self, gp: Any) -> None:
        self.gp = gp

    @staticmethod
    def _arrays(loader: Iterable) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = zip(*[(x.flatten(1), y) for x, y in loader])
        return torch.cat(xs), torch.cat(ys)

    def fit(self, train_loader: Iterable, epochs: int, **_: Any) -> _LoaderGP:
        x, y = self._arrays(train_loader)
        self.gp.fit(x, y, epochs=epochs)
        return self

    def predict_loader(
        self, loader: Iterable, num_samples: int | None = None
    ) -> tuple[PredictiveSamples, torch.Tensor]:
        x, y = self._arrays(loader)
        return self.gp.predict(x, num_samples=num_samples or 64).to("cpu"), y

    def sparsity(self) -> float:
        return 0.0

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.gp.model.state_dict(), "likelihood": self.gp.likelihood.state_dict()}


def build_estimator(cfg: RunConfig, info: Any, progress: bool = False,
                    checkpoint: str | Path | None = None) -> Any:
    """The estimator ``cfg.model`` names, built for data set ``info`` (shapes, classes)."""
    if cfg.model in GP_MODELS:
        return _build_gp(cfg, info, progress)
    from hvgp.baselines.nn import make_estimator
    from hvgp.nn import build_model

    kw: dict[str, Any] = dict(
        sparsity=cfg.sparsity, method=cfg.sparse_init, delta_t=cfg.delta_t, t_end=cfg.t_end,
        alpha=cfg.alpha, optimizer=cfg.optimizer, lr=cfg.lr, weight_decay=cfg.weight_decay,
        schedule=cfg.lr_schedule, device=cfg.device, seed=cfg.seed, progress=progress,
    )
    if info.task == "regression":  # categorical is every estimator's default
        kw["likelihood"] = "normal"
    # the random mask belongs to CigL and W-DP only; averaging to CigL only
    if cfg.model in ("cigl", "wdp"):
        kw["drop_rate"] = cfg.drop_rate
    if cfg.model == "cigl":
        kw["average_start"] = cfg.averaging_start
    if checkpoint is not None and cfg.model not in WRAPPER_MODELS:
        kw["checkpoint"] = checkpoint

    def factory() -> torch.nn.Module:
        return build_model(cfg.arch, info, width=cfg.width)

    return make_estimator(cfg.model, factory, **kw)


def _build_gp(cfg: RunConfig, info: Any, progress: bool) -> _LoaderGP:
    """GP baselines by name; on regression data ``svgp`` is the exact GP (it fits in memory)."""
    from hvgp.baselines import gp

    common = dict(device=cfg.device, seed=cfg.seed, progress=progress)
    if info.task == "regression":
        cls = {"svgp": gp.ExactGPRegressor, "nngp": gp.NNGPRegressor,
               "deepgp": gp.DeepGPRegressor}[cfg.model]
        return _LoaderGP(cls(**common))
    cls = {"svgp": gp.SVGPClassifier, "nngp": gp.NNGPClassifier,
           "deepgp": gp.DeepGPClassifier}[cfg.model]
    return _LoaderGP(cls(num_classes=info.num_classes, **common))


def _prediction_nets(est: Any) -> list[torch.nn.Module]:
    """The networks an estimator predicts with (ensembles: one per member)."""
    if hasattr(est, "members"):
        return [n for m in est.members for n in _prediction_nets(m)]
    if hasattr(est, "estimator"):  # a wrapper such as TemperatureScaled
        return _prediction_nets(est.estimator)
    net = getattr(est, "model_", None)
    return [] if net is None else [net]


def _nonzero(est: Any) -> int:
    """Non-zero parameters of the prediction network(s) (GPs: all their parameters)."""
    if isinstance(est, _LoaderGP):
        return sum(int((p != 0).sum()) for p in est.gp.model.parameters())
    return sum(int((p != 0).sum()) for n in _prediction_nets(est) for p in n.parameters())


def _score(samples: PredictiveSamples, y: torch.Tensor) -> dict[str, float]:
    from hvgp.metrics import classification_report, regression_report

    if samples.is_classification:
        return classification_report(samples, y)
    return regression_report(samples, y)


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
    out = {f"shift_{k}": v for k, v in _score(shifted, y).items()
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
    folder = None if out is None else Path(out)
    ckpt = None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        cfg.save(folder / "config.json")
        if cfg.model not in GP_MODELS:
            ckpt = folder / "checkpoint.pt"
    if resume and (ckpt is None or not ckpt.is_file()):
        raise FileNotFoundError(f"--resume: no checkpoint at {ckpt} to continue from")
    est = build_estimator(cfg, info, progress=progress, checkpoint=ckpt)
    t0 = time.perf_counter()
    fit_kw: dict[str, Any] = {"resume": ckpt} if resume else {}
    if cfg.model == "temperature":
        fit_kw["val_loader"] = val  # the temperature is fitted on the validation split
    est.fit(train, cfg.epochs, **fit_kw)
    train_s = time.perf_counter() - t0
    num_samples = None if cfg.num_samples <= 1 and cfg.model not in GP_MODELS else cfg.num_samples
    t0 = time.perf_counter()
    samples, y = est.predict_loader(test, num_samples=num_samples)
    predict_s = time.perf_counter() - t0
    metrics = _score(samples, y)
    if shift:
        metrics.update(_shift_metrics(est, cfg, samples, num_samples))
    result = RunResult(cfg, metrics, train_s, predict_s, float(est.sparsity()), _nonzero(est),
                       samples, y, est)
    if folder is not None:
        _save_run(folder, result)
    return result


def _save_run(folder: Path, result: RunResult) -> None:
    (folder / "metrics.json").write_text(json.dumps(result.row(), indent=2) + "\n")
    est = result.estimator
    if hasattr(est, "state_dict"):
        states = [est.state_dict()]
    else:
        states = [net.state_dict() for net in _prediction_nets(est)]
    from hvgp.infer import save_checkpoint

    save_checkpoint(folder / "model.pt", {"states": states, "config": result.config.to_dict()})
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
    if cfg.model in GP_MODELS + WRAPPER_MODELS:
        raise ValueError(f"re-evaluating a saved {cfg.model!r} run is not supported (it holds "
                         "several networks or a GP); its metrics.json has the scores")
    name = data or cfg.data
    if shift:
        name = f"{name}-shift"
    _, _, test, info = get_loaders(name, batch_size=512, seed=cfg.seed)
    est = build_estimator(cfg, info)
    (state,) = load_checkpoint(folder / "model.pt")["states"]
    est.net.load_state_dict(state)
    ns = num_samples if num_samples is not None else (
        None if cfg.num_samples <= 1 else cfg.num_samples)
    samples, y = est.predict_loader(test, num_samples=ns)
    return _score(samples, y)


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
            changes = {"model": model, "data": data, "seed": int(seed)}
            if model in ("dense", *GP_MODELS):  # the rest share the sparsity, as in the paper
                changes["sparsity"] = 0.0
            changes.update(overrides.get(model, {}))
            cfg = base.updated(**changes)
            sub = None if out is None else Path(out) / f"{model}-s{seed}"
            results.append(run(cfg, out=sub, progress=progress))
    if out is not None:
        _save_comparison(Path(out), results, seeds[0])
    return results


def _save_comparison(folder: Path, results: list[RunResult], seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(
        json.dumps({"runs": [r.row() for r in results], "summary": summarize(results)},
                   indent=2) + "\n")
    (folder / "table.md").write_text(format_table(results) + "\n")
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
