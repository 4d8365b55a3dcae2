"""CigL vs RigL (+ dense) across sparsity on CIFAR-10/100 with WRN-22-2 or ResNet-18 (GPU).

The MNIST-1D sweep of ``calibration_vs_sparsity.py`` at the paper's scale: SGD Nesterov 0.9,
lr 0.1 cosine, weight decay 5e-4, batch 128, 250 epochs, averaging from epoch 200 (80 %),
crop + flip augmentation, sparsity 80/90/95/99 %, 3 seeds. Not run in CI. Data come from a
local copy of the python-pickle archives under ``--root`` or ``$HVGP_CIFAR_ROOT``; without
one the data module's error (which names the expected layout) is printed and the exit
status is 2.

Before the sweep it times a few training steps of RigL and CigL on the device and prints
the expected wall time of the whole sweep (steps/epoch x epochs x runs); ``--estimate-only``
stops there.

    HVGP_CIFAR_ROOT=~/data .venv/bin/python benchmarks/cifar.py --device cuda
    .venv/bin/python benchmarks/cifar.py --quick --fake-root /tmp/fake_cifar   # smoke, CPU
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import sys
from pathlib import Path
from typing import Any

import _common as C
import numpy as np
import torch

from hvgp.config import RunConfig

OUT = C.RESULTS / "cifar"


def write_fake_cifar10(root: Path, per_batch: int = 30, test: int = 20, seed: int = 0) -> Path:
    """A tiny random CIFAR-10 archive in the real python-pickle layout (smoke tests only).

    150 training images: after the 10 % validation carve the first batch is a full 128.
    """
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", test)]
    for name, n in names:
        batch = {b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                 b"labels": [int(v) for v in rng.integers(0, 10, n)],
                 b"batch_label": b"fake", b"filenames": [b"x.png"] * n}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    return root


def estimate(base: RunConfig, steps: int, runs: int, p: float) -> dict[str, Any]:
    """Seconds per training step (RigL, CigL) on the device, and the whole sweep's estimate."""
    from step_overhead import hvgp_step_fn

    from hvgp.data import get_loaders
    from hvgp.nn import build_model
    from hvgp.utils import resolve_device

    train, _, _, info = get_loaders(base.data, batch_size=base.batch_size, seed=0,
                                    val_fraction=base.val_fraction)
    device = resolve_device(base.device)
    x, y = next(iter(train))
    x, y = x.to(device), y.to(device)
    per_step = {}
    for label, rate in (("RigL", 0.0), ("CigL", p)):
        torch.manual_seed(0)
        step = hvgp_step_fn(build_model(base.arch, info, width=base.width), x, y, rate,
                            base.weight_decay, device)
        per_step[label] = statistics.median(C.timed(step, device, steps, warmup=2))
    step_s = statistics.fmean(per_step.values())
    total = step_s * len(train) * base.epochs * runs
    return {"device": str(device), "seconds_per_step": per_step,
            "steps_per_epoch": len(train), "epochs": base.epochs, "runs": runs,
            "expected_hours": total / 3600, "note": "training steps only; evaluation, BN "
            "re-estimation and topology updates add a few %"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="cifar10", choices=["cifar10", "cifar100"])
    ap.add_argument("--arch", default="wrn-22-2", choices=["wrn-22-2", "resnet18"])
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--sparsities", type=float, nargs="+", default=[0.8, 0.9, 0.95, 0.99])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=250)
    ap.add_argument("--drop-rate", type=float, default=0.01)
    ap.add_argument("--averaging-start", type=float, default=0.8)
    ap.add_argument("--no-dense", dest="dense", action="store_false")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--root", default=None, help="CIFAR root (else $HVGP_CIFAR_ROOT)")
    ap.add_argument("--fake-root", default=None,
                    help="write a tiny random CIFAR-10 archive there and use it (smoke tests)")
    ap.add_argument("--estimate-steps", type=int, default=10)
    ap.add_argument("--estimate-only", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--quick", action="store_true",
                    help="1 epoch, 1 seed, 90 %% sparsity (with --fake-root: the CI smoke)")
    args = ap.parse_args()
    out = OUT
    if args.quick:
        args.epochs, args.seeds, args.sparsities, args.estimate_steps = 1, [0], [0.9], 2
        out = C.RESULTS / "cifar_smoke"
    if args.fake_root:
        args.root = str(write_fake_cifar10(Path(args.fake_root)))
    if args.root:
        os.environ["HVGP_CIFAR_ROOT"] = args.root
    C.setup_threads(args.threads)
    base = RunConfig(data=args.data, arch=args.arch, width=args.width, epochs=args.epochs,
                     averaging_start=args.averaging_start, device=args.device)
    plan = [(s, seed, m) for s in args.sparsities for seed in args.seeds for m in ("RigL", "CigL")]
    if args.dense:
        plan += [(0.0, seed, "dense") for seed in args.seeds]
    try:
        est = estimate(base, args.estimate_steps, len(plan), args.drop_rate)
    except FileNotFoundError as err:  # no CIFAR root: the data module says what to put where
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"{args.arch} on {est['device']}: {1e3 * est['seconds_per_step']['RigL']:.1f} ms/step "
          f"RigL, {1e3 * est['seconds_per_step']['CigL']:.1f} ms/step CigL, "
          f"{est['steps_per_epoch']} steps/epoch -> {len(plan)} runs x {args.epochs} epochs "
          f"~ {est['expected_hours']:.2f} h", flush=True)
    results = C.ResultFile(out.with_suffix(".json"), vars(args).copy(), resume=args.resume)
    results.save(estimate=est, fake_data=bool(args.fake_root))
    if args.estimate_only:
        return
    for sparsity, seed, method in plan:
        key = dict(method=method, sparsity_target=sparsity, seed=seed, epochs=args.epochs)
        if results.find(**key):
            continue
        cfg = C.method_config(base, method, args.drop_rate, sparsity=sparsity, seed=seed)
        rec, _ = C.scored_run(cfg)
        rec.update(key)
        results.add(rec)
        print(f"{method:5s} s={sparsity:.2f} seed {seed}: acc {rec['accuracy']:.4f} "
              f"ece {rec['ece']:.4f} nll {rec['nll']:.4f} ({rec['train_seconds']:.0f}s)",
              flush=True)
    table, nums = C.reduction_table(results.runs, args.sparsities)
    results.save(summary=nums)
    out.with_suffix(".md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
