"""CNN-GP on MNIST-1D: the exact GP of hvgp's (infinitely wide, masked) 1-D CNN as a classifier.

Protocol. A grid over the kernel's ``σ_w²`` / ``σ_b²`` and the Dirichlet likelihood's ``α_ε``
(fixed below before any result was seen; the convolution shapes and depth are cnn1d's) is
scored by NLL on the validation split (``val_fraction=0.1``: 3600 train / 400 val); the best
setting is refitted on all 4000 training signals and the 1000 test signals are scored once.
Also timed: one 4000 × 4000 train kernel in float64 and in float32 (what the fit uses).

    .venv/bin/python benchmarks/cnngp_mnist1d.py            # ~15 min on one core
    .venv/bin/python benchmarks/cnngp_mnist1d.py --no-time-float64

Writes ``results/cnngp_mnist1d.json`` and ``results/cnngp_mnist1d.png`` (reliability diagram).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from typing import Any

import _common as C
import torch

from hvgp.baselines.gp.cnngp import CNNGPClassifier, CNNGPKernel
from hvgp.data import get_loaders
from hvgp.metrics import classification_report

#: the validation grid, fixed before looking at any result
GRID: dict[str, tuple[float, ...]] = {
    "weight_var": (2.0, 3.0),
    "bias_var": (0.0, 0.1),
    "alpha_epsilon": (0.01, 0.1),
}
NUM_SAMPLES = 256


def arrays(loader: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """All (flattened signal, label) pairs of a loader, as two tensors."""
    xs, ys = zip(*[(x.flatten(1), y) for x, y in loader])
    return torch.cat(xs), torch.cat(ys)


def time_kernel(x: torch.Tensor, dtype: torch.dtype) -> float:
    """Seconds for the train kernel ``K(x, x)`` of cnn1d's architecture in ``dtype``."""
    kernel = CNNGPKernel().to(dtype)
    t0 = time.perf_counter()
    with torch.no_grad():
        kernel(x.to(dtype)).to_dense()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-time-float64", action="store_true",
                        help="skip the float64 4000 x 4000 kernel timing (~2 min)")
    args = parser.parse_args()
    C.setup_threads(args.threads)
    common = dict(device="cpu", kernel_dtype=torch.float32, seed=0)

    train, val, _, _ = get_loaders("mnist1d", batch_size=512, seed=0, val_fraction=0.1)
    (x, y), (xv, yv) = arrays(train), arrays(val)
    grid = []
    for values in itertools.product(*GRID.values()):
        hp = dict(zip(GRID, values))
        clf = CNNGPClassifier(**hp, **common).fit(x, y)
        rep = classification_report(clf.predict(xv, num_samples=NUM_SAMPLES), yv)
        grid.append({**hp, **{f"val_{k}": rep[k] for k in ("accuracy", "ece", "nll", "brier")}})
        print(f"  {hp}: val nll {rep['nll']:.4f}  acc {rep['accuracy']:.4f}", flush=True)
    best = min(grid, key=lambda r: r["val_nll"])
    chosen = {k: best[k] for k in GRID}

    train, _, test, _ = get_loaders("mnist1d", batch_size=512, seed=0, val_fraction=0.0)
    (x, y), (xt, yt) = arrays(train), arrays(test)
    t0 = time.perf_counter()
    clf = CNNGPClassifier(**chosen, **common).fit(x, y)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    samples = clf.predict(xt, num_samples=NUM_SAMPLES)
    predict_s = time.perf_counter() - t0
    test_report = classification_report(samples, yt)

    timing = {"kernel_4000x4000_float32_s": time_kernel(x, torch.float32)}
    if not args.no_time_float64:
        timing["kernel_4000x4000_float64_s"] = time_kernel(x, torch.float64)

    out = {
        "model": "CNNGPClassifier", "hyperparameters": chosen, "grid": grid,
        "selection": "lowest validation NLL (3600 train / 400 val), refit on 4000",
        "n_train": int(x.shape[0]), "n_test": int(xt.shape[0]), "num_samples": NUM_SAMPLES,
        "test": test_report, "fit_s": fit_s, "predict_s": predict_s, **timing,
        "machine": C.machine(), "command": C.command(),
    }
    C.RESULTS.mkdir(exist_ok=True)
    (C.RESULTS / "cnngp_mnist1d.json").write_text(json.dumps(out, indent=2) + "\n")
    try:
        from hvgp.plots import reliability_diagram

        ax = reliability_diagram(samples, yt, title="CNN-GP, MNIST-1D test")
        ax.figure.savefig(C.RESULTS / "cnngp_mnist1d.png", dpi=100, bbox_inches="tight")
    except ImportError as err:  # plotting is optional
        print(f"no plot: {err}")

    print(f"\nchosen {chosen}")
    print("| model | accuracy | ECE | NLL | Brier | fit s | 4000² kernel s (f32 / f64) |")
    print("|---|---|---|---|---|---|---|")
    print(f"| CNN-GP | {test_report['accuracy']:.4f} | {test_report['ece']:.4f} | "
          f"{test_report['nll']:.4f} | {test_report['brier']:.4f} | {fit_s:.1f} | "
          f"{timing['kernel_4000x4000_float32_s']:.1f} / "
          f"{timing.get('kernel_4000x4000_float64_s', float('nan')):.1f} |")


if __name__ == "__main__":
    main()
