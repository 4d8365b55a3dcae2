"""CigL vs RigL on MNIST-1D with the 1-D CNN at 90 % sparsity (same budget, 3 seeds).

Both runs share every hyper-parameter (SGD Nesterov 0.9, lr 0.1 cosine, weight decay 5e-4,
batch 128, ERK, RigL updates every 100 steps until 75 %); CigL adds the random mask
(p = 0.01) and weight & mask averaging from 80 % of the epochs. Prints a table and writes
``benchmarks/results/cigl_vs_rigl_mnist1d.json``.

    .venv/bin/python benchmarks/cigl_vs_rigl_mnist1d.py [--epochs 100] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from hvgp.data import get_loaders
from hvgp.infer import CigL, RigL
from hvgp.nn import build_model

OUT = Path(__file__).parent / "results" / "cigl_vs_rigl_mnist1d.json"


def run(method: str, seed: int, epochs: int, drop_rate: float, width: float) -> dict:
    """Train one model; return test metrics, sparsity and train time."""
    train, _, test, info = get_loaders("mnist1d", batch_size=128, seed=seed, val_fraction=0.0)
    torch.manual_seed(seed)
    net = build_model("cnn1d", info, width=width)
    common = dict(sparsity=0.9, lr=0.1, momentum=0.9, weight_decay=5e-4, device="cpu", seed=seed)
    est = (CigL(net, drop_rate=drop_rate, average_start=0.8, **common) if method == "CigL"
           else RigL(net, **common))
    t0 = time.perf_counter()
    est.fit(train, epochs=epochs)
    seconds = time.perf_counter() - t0
    report = est.evaluate(test)
    return {"method": method, "seed": seed, "train_s": seconds, "sparsity": est.sparsity(),
            **{k: report[k] for k in ("accuracy", "ece", "nll", "brier")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--drop-rate", type=float, default=0.01)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for seed in args.seeds:
        for method in ("RigL", "CigL"):
            rows.append(run(method, seed, args.epochs, args.drop_rate, args.width))
            r = rows[-1]
            print(f"{method:5s} seed {seed}: acc {r['accuracy']:.4f} ece {r['ece']:.4f} "
                  f"nll {r['nll']:.4f} ({r['train_s']:.0f}s)", flush=True)
    summary = {}
    for method in ("RigL", "CigL"):
        sel = [r for r in rows if r["method"] == method]
        summary[method] = {k: statistics.mean(r[k] for r in sel)
                           for k in ("accuracy", "ece", "nll", "brier", "sparsity", "train_s")}
    rig, cig = summary["RigL"], summary["CigL"]
    verdict = {
        "ece_reduction": 1 - cig["ece"] / rig["ece"],
        "accuracy_drop_points": 100 * (rig["accuracy"] - cig["accuracy"]),
    }
    verdict["pass"] = verdict["ece_reduction"] >= 0.40 and verdict["accuracy_drop_points"] <= 0.5
    print(f"\n{'method':8s}{'accuracy':>10s}{'ECE':>9s}{'NLL':>9s}{'Brier':>9s}{'sparsity':>10s}")
    for m, s in summary.items():
        print(f"{m:8s}{s['accuracy']:10.4f}{s['ece']:9.4f}{s['nll']:9.4f}{s['brier']:9.4f}"
              f"{s['sparsity']:10.4f}")
    word = "PASS" if verdict["pass"] else "FAIL"
    print(f"ECE reduction {verdict['ece_reduction']:.1%}, accuracy drop "
          f"{verdict['accuracy_drop_points']:.2f} points -> {word}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"config": vars(args), "runs": rows, "summary": summary,
                               "verdict": verdict}, indent=2))


if __name__ == "__main__":
    main()
