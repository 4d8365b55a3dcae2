"""SNGP and last-layer Laplace beside the RigL network they wrap, on MNIST-1D (large split).

Per seed, three trainings through :func:`hvgp.experiment.run` with one recipe (1-D CNN,
sparsity 0.9 ERK, SGD + Nesterov, the run's schedule and weight decay), scored on the 20 000
test signals of ``mnist1d-large``:

- ``rigl``: the plain sparse network (deterministic softmax).
- ``laplace``: the same RigL training (same seed, same code path), then laplace-torch's
  last-layer KFAC posterior with a marginal-likelihood prior precision; probit predictive.
  ``laplace MAP`` is that run's own network before Laplace (a paired row: it should equal
  ``rigl``).
- ``sngp``: the spectral-normalised network with the random-feature GP layer (static ERK
  mask at the same sparsity), mean-field predictive; ``sngp MAP logits`` is the same fit
  with ``lambda = 0`` (no covariance).

Writes ``benchmarks/results/peer_baselines_mnist1d.{json,md}`` (``--quick``: a 1-epoch smoke
run into ``peer_baselines_mnist1d_quick.*``) and prints the table.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/peer_baselines_mnist1d.py --epochs 100 --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from typing import Any

from _common import RESULTS, command, fmt, machine, mean_std, setup_threads

from hvgp.config import RunConfig
from hvgp.data import get_loaders
from hvgp.experiment import run
from hvgp.metrics.score import score

DATA = "mnist1d-large"
KEYS = ("accuracy", "nll", "ece", "ece_floor", "ece_debiased", "brier")
def _laplace_map(est: Any, test: Any) -> dict[str, float]:
    """The Laplace run's own RigL network, before the posterior (its MAP)."""
    return score(*est.base.predict_loader(test))


def _sngp_map_logits(est: Any, test: Any) -> dict[str, float]:
    """The SNGP fit's softmax of the posterior-mean logits (``lambda = 0``: no covariance)."""
    kept, est.mean_field_factor = est.mean_field_factor, 0.0
    try:
        return score(*est.predict_loader(test))
    finally:
        est.mean_field_factor = kept


#: row label -> (model trained, ``None``: the run's own test scores, or a function
#: (fitted estimator, test loader) -> scores of a predictive derived from the same fit)
VARIANTS: dict[str, tuple[str, Callable[[Any, Any], dict[str, float]] | None]] = {
    "rigl": ("rigl", None),
    "laplace": ("laplace", None),
    "laplace MAP": ("laplace", _laplace_map),
    "sngp": ("sngp", None),
    "sngp MAP logits": ("sngp", _sngp_map_logits),
}


def run_seed(base: RunConfig, seed: int) -> list[dict[str, Any]]:
    """Every row of :data:`VARIANTS` for one seed (one training per model)."""
    _, _, test, _ = get_loaders(DATA, batch_size=512, seed=seed)
    rows: list[dict[str, Any]] = []
    results: dict[str, Any] = {}
    for label, (model, derive) in VARIANTS.items():
        if model not in results:
            results[model] = run(base.updated(model=model, seed=seed), shift=False)
        res = results[model]
        derived = derive is not None
        metrics = derive(res.estimator, test) if derived else res.metrics
        row = {"row": label, "model": model, "seed": seed,
               **{k: float(metrics[k]) for k in KEYS},
               "nonzero_params": res.nonzero_params, "sparsity": res.sparsity,
               "train_seconds": res.train_seconds,
               "predict_seconds": None if derived else res.predict_seconds}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def paired(rows: Sequence[dict[str, Any]], label: str, key: str) -> tuple[float, float]:
    """Mean and std over seeds of ``label``'s ``key`` minus ``rigl``'s (same seed)."""
    ref = {r["seed"]: r[key] for r in rows if r["row"] == "rigl"}
    return mean_std(r[key] - ref[r["seed"]] for r in rows if r["row"] == label)


def table(rows: Sequence[dict[str, Any]], title: str) -> str:
    """Markdown: mean ± std over seeds per row, and the paired NLL / accuracy change."""
    lines = [title, "",
             "| model | accuracy % | NLL | ECE | ECE floor | debiased CE | Brier | "
             "Δ NLL vs rigl | Δ acc. vs rigl (pts) | non-zero | train s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for label in VARIANTS:
        mine = [r for r in rows if r["row"] == label]
        col = {k: fmt([r[k] for r in mine], 3 if k == "accuracy" else 4,
                      100.0 if k == "accuracy" else 1.0) for k in KEYS}
        d_nll, d_acc = paired(rows, label, "nll"), paired(rows, label, "accuracy")
        nonzero = int(mean_std(r["nonzero_params"] for r in mine)[0])
        train = mean_std(r["train_seconds"] for r in mine)[0]
        lines.append(f"| {label} | {col['accuracy']} | {col['nll']} | {col['ece']} | "
                     f"{col['ece_floor']} | {col['ece_debiased']} | {col['brier']} | "
                     f"{d_nll[0]:+.4f} ± {d_nll[1]:.4f} | {100 * d_acc[0]:+.2f} ± "
                     f"{100 * d_acc[1]:.2f} | {nonzero:,} | {train:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Train rigl, laplace and sngp per seed; write and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="1 epoch, seed 0: a smoke run")
    args = parser.parse_args()
    setup_threads(args.threads)
    epochs, seeds = (1, [0]) if args.quick else (args.epochs, args.seeds)
    base = RunConfig(data=DATA, arch="cnn1d", epochs=epochs, sparsity=args.sparsity,
                     device="cpu", num_samples=1)
    rows = [row for seed in seeds for row in run_seed(base, seed)]
    title = (f"SNGP and last-layer Laplace vs the RigL network on {DATA} (20 000 test "
             f"signals), 1-D CNN, sparsity {args.sparsity}, {epochs} epochs, seeds "
             f"{', '.join(map(str, seeds))}; CPU, {args.threads} thread(s)")
    text = table(rows, title)
    name = "peer_baselines_mnist1d" + ("_quick" if args.quick else "")
    RESULTS.mkdir(exist_ok=True)
    out = {"command": command(), "machine": machine(), "config": base.to_dict(),
           "seeds": seeds, "rows": rows}
    (RESULTS / f"{name}.json").write_text(json.dumps(out, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
