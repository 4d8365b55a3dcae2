"""Last-layer Laplace on MNIST-1D: the marginal-likelihood prior vs the validation-NLL prior.

Reads the ``laplace-s<seed>`` run folders that ``hvgp compare --models ...,laplace`` wrote
(RigL trained, KFAC posterior fitted, prior precision by marginal likelihood) and scores on
the run's test split, per seed, without retraining (the Hessian is kept):

- ``RigL MAP``: the run's own network (the posterior mean's deterministic softmax);
- ``laplace marglik``: the posterior as the run saved it (probit GLM predictive);
- ``laplace val-nll``: the same posterior after :meth:`LastLayerLaplace.tune_prior` on the
  validation split (the grid point with the lowest validation NLL).

The val-nll rule was chosen after seeing seed 0's *validation* scores (marglik's predictive
was under-confident there); the test split is read once per row, here. Writes
``benchmarks/results/laplace_prior.{json,md}`` and prints the table.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/laplace_prior.py runs/compare_mnist1d_large
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from _common import RESULTS, command, machine

from hvgp.config import RunConfig
from hvgp.data import get_loaders
from hvgp.experiment import load_run
from hvgp.metrics import paired_table
from hvgp.metrics.score import score

KEYS = ("accuracy", "nll", "ece", "ece_floor", "ece_debiased", "brier")


def score_seed(folder: Path) -> list[dict[str, Any]]:
    """The three rows of one laplace run folder."""
    cfg = RunConfig.from_saved(json.loads((folder / "config.json").read_text()))
    _, val, test, _ = get_loaders(cfg.data, batch_size=512, seed=cfg.seed)
    est = load_run(folder)
    rows = []
    for label, predictor in (("RigL MAP", est.map_predict), ("laplace marglik", None),
                             ("laplace val-nll", "tune")):
        if predictor == "tune":
            est.tune_prior(val, "val-nll")
        m = (score(*est.base.predict_loader(test)) if label == "RigL MAP"
             else score(*est.predict_loader(test)))
        prec = None if label == "RigL MAP" else float(est.prior_precision.mean())
        rows.append({"model": label, "seed": cfg.seed, "prior_precision": prec,
                     **{k: float(m[k]) for k in KEYS}})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """Mean ± std per row, then the paired differences against the MAP."""
    lines = ["| row | prior precision | " + " | ".join(KEYS) + " |",
             "|---|---|" + "---|" * len(KEYS)]
    for label in dict.fromkeys(r["model"] for r in rows):
        rs = [r for r in rows if r["model"] == label]
        cells = []
        for k in ("prior_precision", *KEYS):
            vals = [r[k] for r in rs if r[k] is not None]
            if not vals:
                cells.append("–")
                continue
            mean = sum(vals) / len(vals)
            sd = (sum((v - mean) ** 2 for v in vals) / max(len(vals) - 1, 1)) ** 0.5
            cells.append(f"{mean:.4g} ± {sd:.2g}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    paired = paired_table(rows, "RigL MAP", ("nll", "ece_debiased", "brier", "accuracy"))
    return "\n".join(lines) + "\n\n" + paired


def main() -> int:
    """Score every laplace run of a compare folder; write JSON and Markdown."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("compare_folder", type=Path, help="an `hvgp compare --out` folder")
    ap.add_argument("--out", type=Path, default=RESULTS / "laplace_prior")
    args = ap.parse_args()
    folders = sorted(args.compare_folder.glob("laplace-s*"))
    if not folders:
        ap.error(f"no laplace-s<seed> run folders in {args.compare_folder}")
    rows = [row for f in folders for row in score_seed(f)]
    md = (f"Last-layer Laplace priors, {len(folders)} seed(s) of {args.compare_folder.name}; "
          f"{machine()}\n\n{table(rows)}\n")
    args.out.with_suffix(".json").write_text(json.dumps(
        {"command": command(), "machine": machine(), "rows": rows}, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
