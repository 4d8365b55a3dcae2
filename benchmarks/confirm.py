"""Confirm a chosen CigL configuration on fresh seeds: RigL vs CigL(p, T*), nothing selected.

A (p, T*) picked on validation from one set of seeds is re-run on seeds that took no part
in the choice (new initialisations and new validation carves), so the test-split gain is
measured out of sample. Same runs and record format as ``ablation.py``, so
``acceptance.py --prefix confirm`` reads the result.

    .venv/bin/python benchmarks/confirm.py --sparsity 0.8 --drop-rate 0.1 --averaging-start 0.6
    .venv/bin/python benchmarks/confirm.py --sparsity 0.9 --drop-rate 0.05 --averaging-start 0.8
    .venv/bin/python benchmarks/acceptance.py --prefix confirm --out results/confirm
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _common as C
from ablation import train

from hvgp.config import RunConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sparsity", type=float, required=True)
    ap.add_argument("--drop-rate", type=float, required=True)
    ap.add_argument("--averaging-start", type=float, required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[5, 6, 7, 8, 9])
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None,
                    help="result path stem (default results/confirm_s<sparsity %%>)")
    args = ap.parse_args()
    out = args.out or C.RESULTS / f"confirm_s{round(100 * args.sparsity)}"
    C.setup_threads(args.threads)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    results = C.ResultFile(out.with_suffix(".json"), settings, resume=True)
    base = RunConfig(arch="cnn1d", sparsity=args.sparsity, epochs=args.epochs,
                     val_fraction=args.val_fraction, device=args.device)
    for seed in args.seeds:
        train(results, base, "RigL", 0.0, seed)
        train(results, base, "CigL", args.drop_rate, seed, args.averaging_start)
    results.save()


if __name__ == "__main__":
    main()
