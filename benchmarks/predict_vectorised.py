"""Vectorised (one pass in a ``samples`` plate) vs Python-loop prediction over the random mask.

Prints the time of S random-mask predictions both ways and their ratio, and writes
``benchmarks/results/predict_vectorised.json``.

    .venv/bin/python benchmarks/predict_vectorised.py [--samples 32] [--device auto]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import _common as C
import torch

from hvgp.infer import SparseBNN, predictive_samples
from hvgp.nn import build_model
from hvgp.sparsity import SparseTopology
from hvgp.utils import resolve_device

OUT = Path(__file__).parent / "results" / "predict_vectorised.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--big", action="store_true", help="also WRN-22-2 on 3x32x32")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cases = [("cnn1d", (40,), 1000), ("mlp", (40,), 1000)]
    if args.big:
        cases.append(("wrn-22-2", (3, 32, 32), 256))
    results = {}
    for arch, shape, n in cases:
        torch.manual_seed(0)
        net = build_model(arch, shape, 10).to(device)
        SparseTopology(net, 0.9)
        bnn = SparseBNN(net, drop_rate=0.1, data_size=n)
        x = torch.randn(n, *shape, device=device)
        vec = min(C.timed(lambda: predictive_samples(bnn, x, args.samples, vectorize=True),  # noqa: B023
                          device, 3))
        loop = min(C.timed(lambda: predictive_samples(bnn, x, args.samples, vectorize=False),  # noqa: B023
                           device, 3))
        results[arch] = {"samples": args.samples, "n": n, "vectorised_s": vec, "loop_s": loop,
                         "loop_over_vectorised": loop / vec}
        print(f"{arch:9s} S={args.samples} N={n}: vectorised {vec * 1e3:.1f} ms, loop "
              f"{loop * 1e3:.1f} ms, loop/vectorised = {loop / vec:.2f}x", flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    out = OUT if device.type == "cpu" else OUT.with_name(f"predict_vectorised_{device.type}.json")
    out.write_text(json.dumps({"device": str(device), "results": results}, indent=2))


if __name__ == "__main__":
    main()
