"""DKL on MNIST-1D (standard split, 1-D CNN features) beside the dense 1-D CNN, same recipe.

Both run through :func:`hvgp.experiment.run` with the same epochs, optimizer and seed, so the
difference is the output layer: a linear softmax readout (``dense``) or an SVGP layer on the
same last hidden features trained jointly by the ELBO (``dkl``). Writes
``benchmarks/results/dkl_mnist1d.{json,md}``.

    OMP_NUM_THREADS=1 python benchmarks/dkl_mnist1d.py --epochs 12
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from _common import RESULTS, command, machine

from hvgp.config import RunConfig
from hvgp.experiment import run

KEYS = ("accuracy", "ece", "nll", "brier")


def main() -> None:
    """Train dense and dkl once each and write the comparison table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default="dense,dkl")
    args = parser.parse_args()
    torch.set_num_threads(1)
    base = RunConfig(data="mnist1d", arch="cnn1d", epochs=args.epochs, sparsity=0.0,
                     device="cpu", seed=args.seed, num_samples=64)
    rows = []
    for model in args.models.split(","):
        t0 = time.process_time()
        res = run(base.updated(model=model), shift=False)
        row = {"model": model, **{k: res.metrics[k] for k in KEYS},
               "nonzero_params": res.nonzero_params, "train_seconds": res.train_seconds,
               "predict_seconds": res.predict_seconds, "cpu_seconds": time.process_time() - t0}
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = {"command": command(), "machine": machine(), "config": base.to_dict(), "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dkl_mnist1d.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [f"DKL vs dense 1-D CNN on MNIST-1D (standard split, seed {args.seed}, "
             f"{args.epochs} epochs, CPU, one thread)", "",
             "| model | accuracy | ECE | NLL | Brier | non-zero | train s | CPU s |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['accuracy']:.4f} | {r['ece']:.4f} | {r['nll']:.4f} | "
              f"{r['brier']:.4f} | {r['nonzero_params']:,} | {r['train_seconds']:.1f} | "
              f"{r['cpu_seconds']:.1f} |" for r in rows]
    (RESULTS / "dkl_mnist1d.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
