"""Monte Carlo prediction over the random mask: vectorised vs looped vs the automatic choice.

For each network (MLP and 1-D CNN on MNIST-1D shapes, WRN-22-2 on 3x32x32), S random-mask
predictions of one batch, four ways, interleaved A/B within this process
(:func:`step_overhead.interleaved_times`; ratios are medians of per-repetition ratios with
quartiles and range, wall and CPU time):

- ``auto``: ``predictive_samples(bnn, x, S)`` (:func:`hvgp.infer.predictive.choose_vectorize`);
- ``vectorised`` / ``loop``: the same with ``vectorize=True`` / ``False``;
- ``loop_pre17``: the loop prediction used before issue #17: the full Pyro program (guide,
  replayed model, ``functional_call``) per sample, with Z a Bernoulli over *every* weight.

Writes ``benchmarks/results/predict_vectorised.json`` (``_cuda`` on a GPU).

    .venv/bin/python benchmarks/predict_vectorised.py [--samples 32] [--device cpu]
    .venv/bin/python benchmarks/predict_vectorised.py --quick     # seconds
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import _common as C
import pyro.distributions as dist
import torch
from step_overhead import fmt_ratio, interleaved_times, summary

from hvgp.infer import SparseBNN, predictive_samples
from hvgp.infer.predictive import _program_outputs, choose_vectorize
from hvgp.nn import build_model
from hvgp.sparsity import SparseTopology
from hvgp.utils import resolve_device

OUT = Path(__file__).parent / "results" / "predict_vectorised.json"
PAIRS = {"pre17_loop_over_auto": ("loop_pre17", "auto"),
         "loop_over_vectorised": ("loop", "vectorised"),
         "pre17_loop_over_loop": ("loop_pre17", "loop"),
         "pre17_loop_over_vectorised": ("loop_pre17", "vectorised")}


def pre17_bnn(bnn: SparseBNN) -> SparseBNN:
    """A twin of ``bnn`` (same network) whose Z is the pre-#17 Bernoulli over every weight."""
    old = SparseBNN(bnn.net, bnn.likelihood, bnn.drop_rates, data_size=bnn.data_size)

    def bernoulli_everywhere(name: str) -> dist.Distribution:
        layer = old.layers[name]
        zero = torch.zeros((), device=layer.weight.device, dtype=layer.weight.dtype)
        return (dist.Bernoulli(probs=zero + (1.0 - old.drop_rates[name]))
                .expand(layer.weight_mask.shape).mask(False).to_event(layer.weight.dim()))

    old.mask_distribution = bernoulli_everywhere  # type: ignore[method-assign]
    return old


def measure(arch: str, shape: tuple[int, ...], n: int, samples: int, device: torch.device,
            reps: int, width: float = 1.0) -> dict[str, Any]:
    """Interleaved times of the four prediction paths for one network."""
    torch.manual_seed(0)
    net = build_model(arch, shape, 10, width=width).to(device)
    SparseTopology(net, 0.9)
    bnn = SparseBNN(net, drop_rate=0.1, data_size=n).to(device)
    old = pre17_bnn(bnn)
    x = torch.randn(n, *shape, device=device)
    fns = {"auto": lambda: predictive_samples(bnn, x, samples),
           "vectorised": lambda: predictive_samples(bnn, x, samples, vectorize=True),
           "loop": lambda: predictive_samples(bnn, x, samples, vectorize=False),
           "loop_pre17": lambda: _pre17_loop(old, x, samples)}
    res = summary(interleaved_times(fns, device, reps, 1, warmup=1), PAIRS)
    res["auto_choice"] = "vectorised" if choose_vectorize(bnn, x, samples) else "loop"
    res["settings"] = {"samples": samples, "n": n, "shape": list(shape), "width": width}
    return res


@torch.no_grad()
def _pre17_loop(bnn: SparseBNN, x: torch.Tensor, samples: int) -> torch.Tensor:
    """The pre-#17 looped prediction: the full program per sample (eval mode, blocked)."""
    bnn.eval()
    return _program_outputs(bnn, x, samples, False, None).softmax(-1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--batch", type=int, default=256, help="MLP / 1-D CNN batch")
    ap.add_argument("--wrn-batch", type=int, default=32)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--wrn-reps", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-wrn", action="store_true", help="skip WRN-22-2")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    out, wrn_width = OUT, 1.0
    if args.quick:
        args.samples, args.batch, args.wrn_batch, args.reps, args.wrn_reps = 4, 16, 4, 2, 2
        out, wrn_width = Path("/tmp/hvgp_bench_quick/predict_vectorised.json"), 0.25
    C.setup_threads(args.threads)
    device = resolve_device(args.device)
    if device.type != "cpu" and not args.quick:
        out = out.with_name(f"predict_vectorised_{device.type}.json")
    cases = [("mlp", (40,), args.batch, args.reps, 1.0),
             ("cnn1d", (40,), args.batch, args.reps, 1.0)]
    if not args.no_wrn:
        cases.append(("wrn-22-2", (3, 32, 32), args.wrn_batch, args.wrn_reps, wrn_width))
    results = {}
    for arch, shape, n, reps, width in cases:
        r = measure(arch, shape, n, args.samples, device, reps, width)
        results[arch] = r
        w, c = r["wall"], r["cpu"]
        print(f"{arch:9s} S={args.samples} N={n} auto={r['auto_choice']}: ms (wall) "
              + ", ".join(f"{k} {1e3 * v:.1f}" for k, v in w["seconds"].items())
              + " | pre-#17 loop / auto " + fmt_ratio(w["ratios"]["pre17_loop_over_auto"])
              + " (CPU time " + fmt_ratio(c["ratios"]["pre17_loop_over_auto"]) + ")"
              + ", loop / vectorised " + fmt_ratio(w["ratios"]["loop_over_vectorised"]),
              flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": C.command(), "machine": C.machine(),
                               "device": str(device), "settings": vars(args),
                               "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
