"""Shared helpers for the benchmark scripts: method settings, one scored run, result files.

Every benchmark trains through :func:`hvgp.experiment.run` (the package's one data path), so
the numbers here are the numbers ``hvgp compare`` would print for the same configuration.
What this module adds is what benchmarks need on top: the ablation's method variants, the
validation-split scores used for model selection, the machine/command record saved beside
every result, resumable result files and the paper-shaped CigL-vs-RigL table.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from hvgp.config import RunConfig

RESULTS = Path(__file__).parent / "results"

#: metrics kept per run (test split; ``val_`` prefixed on the validation split)
METRICS: tuple[str, ...] = ("accuracy", "ece", "nll", "brier")

#: method name -> RunConfig changes. ``p`` is filled in with the random-mask rate.
#: "random mask only" is W-DP at sparsity > 0 (RigL + the random mask, no averaging);
#: "averaging only" is CigL with p = 0. drop_rate=0 is spelled out where it is meant.
METHODS: dict[str, Callable[[float], dict[str, Any]]] = {
    "RigL": lambda p: {"model": "rigl", "drop_rate": 0.0},
    "CigL": lambda p: {"model": "cigl", "drop_rate": p},
    "dense": lambda p: {"model": "dense", "drop_rate": 0.0, "sparsity": 0.0},
    "random mask only": lambda p: {"model": "wdp", "drop_rate": p},
    "averaging only": lambda p: {"model": "cigl", "drop_rate": 0.0},
}


def sync(device: torch.device) -> None:
    """Wait for queued CUDA work, so wall-clock times measure it (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device, repeats: int,
          warmup: int = 1) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t0)
    return out


def machine() -> dict[str, Any]:
    """CPU model, core and thread counts, library versions: where a result was measured."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        info["load_average"] = os.getloadavg()
    except OSError:
        pass
    return info


def command() -> str:
    """The command line that produced a result (to paste back into a shell)."""
    return " ".join([".venv/bin/python", *sys.argv])


def method_config(base: RunConfig, method: str, drop_rate: float, **changes: Any) -> RunConfig:
    """``base`` set up as ``method`` (see :data:`METHODS`) with random-mask rate ``drop_rate``."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    return base.updated(**{**changes, **METHODS[method](drop_rate)})


def scored_run(cfg: RunConfig, validation: bool = False, shift: bool = False,
               ) -> tuple[dict[str, Any], Any]:
    """Train and score ``cfg`` via :func:`hvgp.experiment.run`; a flat record and the result.

    :param validation: also score the validation split (the model-selection split; the
        test split is never used to choose anything).
    """
    from hvgp.data import get_loaders
    from hvgp.experiment import run

    result = run(cfg, shift=shift)
    row = result.row()
    rec: dict[str, Any] = {k: row[k] for k in ("model", "data", "seed", "sparsity_target",
                                               "sparsity", "nonzero_params", "train_seconds")}
    rec.update({k: float(result.metrics[k]) for k in (*METRICS, *EVIDENCE)
                if k in result.metrics})
    rec.update({k: float(v) for k, v in result.metrics.items() if k.startswith("shift_")})
    rec.update(arch=cfg.arch, width=cfg.width, drop_rate=cfg.drop_rate, epochs=cfg.epochs)
    if validation:
        _, val, _, _ = get_loaders(cfg.data, batch_size=512, seed=cfg.seed,
                                   val_fraction=cfg.val_fraction)
        rep = result.estimator.evaluate(val)
        rec.update({f"val_{k}": float(rep[k]) for k in METRICS})
    return rec, result


def predictions_path(folder: Path, key: dict[str, Any]) -> Path:
    """Where the test predictions of the run ``key`` are kept (one ``.npz`` per run)."""
    stem = "_".join(f"{v}" for v in key.values()).replace("/", "-").replace(" ", "")
    return Path(folder) / f"{stem}.npz"


def save_predictions(folder: Path, key: dict[str, Any], probs: torch.Tensor,
                     labels: torch.Tensor) -> Path:
    """Keep a run's test probabilities and labels, so new metrics can re-score it later."""
    import numpy as np

    path = predictions_path(folder, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, probs=probs.detach().cpu().float().numpy(),
                        labels=labels.cpu().numpy(), key=json.dumps(key))
    return path


def load_predictions(folder: Path, key: dict[str, Any]) -> tuple[Any, Any] | None:
    """The stored ``(probs, labels)`` of run ``key`` as float64/int64 tensors, if kept."""
    import numpy as np

    path = predictions_path(folder, key)
    if not path.is_file():
        return None
    with np.load(path) as d:
        return (torch.from_numpy(d["probs"]).double(), torch.from_numpy(d["labels"]).long())


class ResultFile:
    """A JSON result file written after every run, so an interrupted sweep can resume."""

    def __init__(self, path: Path, settings: dict[str, Any], resume: bool) -> None:
        self.path = path
        self.settings = settings
        self.runs: list[dict[str, Any]] = []
        self.extra: dict[str, Any] = {}
        if resume and path.is_file():
            old = json.loads(path.read_text())
            self.runs = list(old.get("runs", []))
            self.extra = dict(old.get("extra", {}))
        self.extra.setdefault("commands", []).append(command())
        self.started = time.time()

    def find(self, **key: Any) -> dict[str, Any] | None:
        """The stored run whose fields equal ``key`` (for resuming), if any."""
        for r in self.runs:
            if all(r.get(k) == v for k, v in key.items()):
                return r
        return None

    def add(self, rec: dict[str, Any]) -> None:
        self.runs.append(rec)
        self.save()

    def save(self, **extra: Any) -> None:
        self.extra.update(extra)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"command": command(), "machine": machine(), "settings": self.settings,
                   "wall_seconds": time.time() - self.started, "runs": self.runs,
                   "extra": self.extra}
        self.path.write_text(json.dumps(payload, indent=2) + "\n")


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    vals = [float(v) for v in values]
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def fmt(values: Sequence[float], digits: int = 4, scale: float = 1.0) -> str:
    """``mean ± std`` of ``values`` (times ``scale``)."""
    m, s = mean_std(v * scale for v in values)
    return f"{m:.{digits}f} ± {s:.{digits}f}" if len(values) > 1 else f"{m:.{digits}f}"


def select(runs: Sequence[dict[str, Any]], **key: Any) -> list[dict[str, Any]]:
    return [r for r in runs if all(r.get(k) == v for k, v in key.items())]


def reduction_table(runs: Sequence[dict[str, Any]], sparsities: Sequence[float],
                    **key: Any) -> tuple[str, list[dict[str, Any]]]:
    """The paper-shaped table: per sparsity, RigL vs CigL ECE, the ECE reduction in %,
    accuracy, NLL and Brier (mean ± std over seeds). Also returns the numbers as records.
    """
    head = ("| sparsity | RigL ECE | CigL ECE | ECE reduction | RigL acc (%) | CigL acc (%) "
            "| RigL NLL | CigL NLL | RigL Brier | CigL Brier | seeds |")
    lines = [head, "|" + "---|" * 11]
    out = []
    for s in sparsities:
        rig = select(runs, method="RigL", sparsity_target=s, **key)
        cig = select(runs, method="CigL", sparsity_target=s, **key)
        if not rig or not cig:
            continue
        er, ec = (statistics.fmean(r["ece"] for r in x) for x in (rig, cig))
        red = 1.0 - ec / er
        ar, ac = (statistics.fmean(r["accuracy"] for r in x) for x in (rig, cig))
        out.append({"sparsity": s, "rigl_ece": er, "cigl_ece": ec, "ece_reduction": red,
                    "rigl_accuracy": ar, "cigl_accuracy": ac,
                    "accuracy_diff_points": 100 * (ac - ar), "seeds": min(len(rig), len(cig))})
        lines.append(
            f"| {100 * s:g} % | {fmt([r['ece'] for r in rig])} | {fmt([r['ece'] for r in cig])} "
            f"| {100 * red:+.1f} % | {fmt([r['accuracy'] for r in rig], 2, 100)} "
            f"| {fmt([r['accuracy'] for r in cig], 2, 100)} | {fmt([r['nll'] for r in rig], 3)} "
            f"| {fmt([r['nll'] for r in cig], 3)} | {fmt([r['brier'] for r in rig], 3)} "
            f"| {fmt([r['brier'] for r in cig], 3)} | {min(len(rig), len(cig))} |")
    return "\n".join(lines), out


#: evidence fields added to a run record by :func:`rescore` (from ``classification_report``)
EVIDENCE: tuple[str, ...] = ("ece", "ece_floor", "ece_excess", "ece_p_value", "ece_debiased")


def rescore(runs: Sequence[dict[str, Any]], folder: Path, key_fields: Sequence[str]) -> int:
    """Add the calibration evidence (floor, excess, p-value, debiased) to stored runs.

    Recomputed from each run's kept test predictions (:func:`save_predictions`), so runs made
    before a metric existed get it too; runs without kept predictions are left as they are.
    The recomputed ECE must equal the stored one (same predictions, same estimator).
    Returns the number of runs re-scored.
    """
    from hvgp.metrics import classification_report

    done = 0
    for r in runs:
        kept = load_predictions(folder, {k: r[k] for k in key_fields})
        if kept is None:
            continue
        rep = classification_report(*kept)
        if abs(rep["ece"] - r["ece"]) > 1e-5:
            raise ValueError(f"kept predictions of {r} give ECE {rep['ece']:.6f}, "
                             f"the stored run has {r['ece']:.6f}: they are not this run's")
        r.update({k: float(rep[k]) for k in EVIDENCE[1:]}, n_test=int(kept[1].numel()))
        done += 1
    return done


def paired_sparsity_table(runs: Sequence[dict[str, Any]], sparsities: Sequence[float],
                          a: str = "CigL", b: str = "RigL") -> tuple[str, list[dict[str, Any]]]:
    """Per sparsity: each method's ECE next to its floor, and paired differences over seeds.

    The ``Δ`` cells are ``mean of a − b [95 % t interval], paired t p, seeds a wins/seeds``
    (:func:`hvgp.metrics.paired_difference`), paired by seed; ECE floors are the mean ECE a
    calibrated predictor with each run's confidences shows on the same test points.
    """
    from hvgp.metrics import paired_difference

    head = (f"| sparsity | {b} ECE (floor) | {a} ECE (floor) | Δ ECE | {b} debiased CE "
            f"| {a} debiased CE | Δ debiased CE | Δ NLL | Δ accuracy (points) | seeds |")
    lines = [head, "|" + "---|" * 10]
    out = []
    for s in sparsities:
        by_seed = {m: {r["seed"]: r for r in select(runs, method=m, sparsity_target=s)}
                   for m in (a, b)}
        seeds = sorted(set(by_seed[a]) & set(by_seed[b]))
        if len(seeds) < 2:
            continue
        ra, rb = ([by_seed[m][k] for k in seeds] for m in (a, b))
        diffs = {}
        for metric, lower in (("ece", True), ("ece_debiased", True), ("nll", True),
                              ("accuracy", False)):
            if all(metric in r for r in ra + rb):
                scale = 100 if metric == "accuracy" else 1  # accuracy in points
                diffs[metric] = paired_difference(
                    [r[metric] * scale for r in ra], [r[metric] * scale for r in rb],
                    seeds=seeds, lower_is_better=lower, metric=metric, names=(a, b))

        def ece_cell(rs: list[dict[str, Any]]) -> str:
            floor = (f" ({statistics.fmean(r['ece_floor'] for r in rs):.4f})"
                     if all("ece_floor" in r for r in rs) else "")
            return fmt([r["ece"] for r in rs]) + floor

        def deb(rs: list[dict[str, Any]]) -> str:
            return fmt([r["ece_debiased"] for r in rs]) if all(
                "ece_debiased" in r for r in rs) else "–"

        cell = {m: (d.cell() if (d := diffs.get(m)) else "–")
                for m in ("ece", "ece_debiased", "nll", "accuracy")}
        lines.append(f"| {100 * s:g} % | {ece_cell(rb)} | {ece_cell(ra)} | {cell['ece']} "
                     f"| {deb(rb)} | {deb(ra)} | {cell['ece_debiased']} | {cell['nll']} "
                     f"| {cell['accuracy']} | {len(seeds)} |")
        rec: dict[str, Any] = {"sparsity": s, "seeds": seeds}
        for m, d in diffs.items():
            rec[m] = {"mean": d.mean, "ci": [d.ci_low, d.ci_high], "t_p": d.t_p_value,
                      "wilcoxon_p": d.wilcoxon_p_value, "a_wins": d.a_wins, "n": d.n,
                      "sentence": d.sentence()}
        rec["floor"] = {m: statistics.fmean(r.get("ece_floor", float("nan")) for r in rs)
                        for m, rs in ((a, ra), (b, rb))}
        out.append(rec)
    lines += ["", f"Δ cells: mean of {a} − {b} over the paired seeds [95 % t interval], paired "
                  f"t-test p, seeds in which {a} is better (lower; higher for accuracy). "
                  "ECE: 10 equal-width bins, with the mean ECE of a perfectly calibrated "
                  "predictor with the same confidences on the same points (floor) in "
                  "brackets; debiased CE: Kumar et al. 2019, 15 equal-mass bins."]
    return "\n".join(lines), out


def setup_threads(threads: int) -> None:
    """One intra-op thread by default: the benchmark machines are shared."""
    torch.set_num_threads(threads)
