"""Step-time ratios: CigL / RigL (both hvgp SVI) and hvgp SVI / an equivalent plain-torch loop.

The plain-torch loops do the same arithmetic by hand: RigL = masked forward, cross-entropy,
SGD weight decay, mask grads, step, re-apply mask; CigL adds a Bernoulli mask (over every
weight) with inverted scaling, decay only on kept weights and a held step for dropped
weights. Timing is interleaved A/B within one process (:func:`interleaved_times`): every
repetition times a block of steps of each function in turn, in a rotated order, and a ratio
is the median over repetitions of the per-repetition ratio, reported with its quartiles and
range (a shared machine's load hits both sides of one repetition alike). Wall and process
CPU time are both kept. Topology updates are excluded.

    .venv/bin/python benchmarks/step_overhead.py [--device cpu] [--reps 15] [--block 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import _common as C
import torch
import torch.nn.functional as F
from torch.func import functional_call
from torch.utils.data import DataLoader, TensorDataset

from hvgp.infer import CigL, RigL, hold_dropped_step
from hvgp.nn import build_model, masked_layers
from hvgp.sparsity import SparseTopology
from hvgp.utils import resolve_device

OUT = Path(__file__).parent / "results" / "step_overhead.json"
Step = Callable[[], Any]


def interleaved_times(fns: Mapping[str, Step], device: torch.device, reps: int, block: int,
                      warmup: int = 3) -> dict[str, dict[str, list[float]]]:
    """Per-repetition seconds per call (``wall`` and process ``cpu``) of every function.

    Each repetition runs a block of ``block`` calls of every function, the order rotated by
    one each repetition, so slow phases of a shared machine fall on all functions alike.
    """
    names = list(fns)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    out: dict[str, dict[str, list[float]]] = {"wall": {k: [] for k in names},
                                              "cpu": {k: [] for k in names}}
    for r in range(reps):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn = fns[name]
            C.sync(device)
            w0, c0 = time.perf_counter(), time.process_time()
            for _ in range(block):
                fn()
            C.sync(device)
            out["wall"][name].append((time.perf_counter() - w0) / block)
            out["cpu"][name].append((time.process_time() - c0) / block)
    return out


def spread(values: list[float]) -> dict[str, float]:
    """Median, quartiles and range of ``values`` (the spread every ratio is reported with)."""
    v = sorted(values)
    q = statistics.quantiles(v, n=4, method="inclusive") if len(v) > 1 else [v[0]] * 3
    return {"median": statistics.median(v), "q25": q[0], "q75": q[2], "min": v[0],
            "max": v[-1], "n": len(v)}


def ratio(times: dict[str, list[float]], a: str, b: str) -> dict[str, float]:
    """Spread of the per-repetition ratios ``a / b`` (same repetition, same machine state)."""
    return spread([x / y for x, y in zip(times[a], times[b])])


def summary(times: dict[str, dict[str, list[float]]], pairs: Mapping[str, tuple[str, str]],
            ) -> dict[str, Any]:
    """Median seconds per call and the ratio spreads of ``pairs``, for wall and CPU time."""
    return {kind: {"seconds": {k: statistics.median(v) for k, v in t.items()},
                   "ratios": {label: ratio(t, a, b) for label, (a, b) in pairs.items()}}
            for kind, t in times.items()}


def fmt_ratio(r: dict[str, float]) -> str:
    """``median [q25, q75]`` of a ratio spread, for tables."""
    return f"{r['median']:.2f} [{r['q25']:.2f}, {r['q75']:.2f}]"


def plain_step_fn(net, x, y, p: float, wd: float, device) -> Step:
    """A hand-written torch step equivalent to hvgp's (RigL if p == 0, else CigL)."""
    topo = SparseTopology(net, 0.9, seed=0)
    layers = masked_layers(net)
    masked = {id(layer.weight) for layer in layers.values()}
    weights = [q for q in net.parameters() if id(q) in masked]
    others = [q for q in net.parameters() if id(q) not in masked]
    opt = torch.optim.SGD([{"params": weights, "weight_decay": 0 if p else wd},
                           {"params": others, "weight_decay": wd}],
                          lr=0.01, momentum=0.9, nesterov=True)

    def step() -> None:
        opt.zero_grad(set_to_none=False)
        if p == 0:
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            topo.mask_grads_()
            opt.step()
        else:
            used, penalty, held = {}, 0.0, []
            for name, layer in layers.items():
                m = layer.weight_mask
                z = torch.bernoulli(torch.full(m.shape, 1 - p, device=device))
                keep = m & z.bool()
                used[f"{name}.weight"] = layer.weight * torch.where(m, z / (1 - p), 1.0)
                penalty = penalty + (layer.weight * keep).pow(2).sum()
                held.append((layer.weight, m & ~keep))
            loss = F.cross_entropy(functional_call(net, used, (x,)), y) + wd / 2 * penalty
            loss.backward()
            topo.mask_grads_()
            hold_dropped_step(opt, held)
        topo.apply_()

    return step


def hvgp_estimator(net, x, y, p: float, wd: float, device, infer: ModuleType | None = None,
                   **kw: Any) -> CigL:
    """A fitted (one step) hvgp CigL (p > 0) or RigL (p == 0) on the batch ``(x, y)``;
    ``infer``: the ``hvgp.infer`` module to take them from (another version's, for A/B)."""
    cigl, rigl = (CigL, RigL) if infer is None else (infer.CigL, infer.RigL)
    loader = DataLoader(TensorDataset(x.cpu(), y.cpu()), batch_size=len(x))
    kw = dict(sparsity=0.9, lr=0.01, weight_decay=wd, device=device, schedule="constant",
              delta_t=10**9, **kw)
    est = cigl(net, drop_rate=p, averaging=False, **kw) if p else rigl(net, **kw)
    return est.fit(loader, epochs=1)


def hvgp_step_fn(net, x, y, p: float, wd: float, device,
                 infer: ModuleType | None = None) -> Step:
    """hvgp's SVI step (Trainer.train_step) for CigL (p > 0) or RigL (p == 0)."""
    trainer = hvgp_estimator(net, x, y, p, wd, device, infer).trainer
    return lambda: trainer.train_step(x, y)


def mnist1d_steps(arch: str, device: torch.device, p: float = 0.01) -> dict[str, Step]:
    """hvgp's RigL and CigL (``p``) steps on MNIST-1D shapes (batch 128, one seeded batch),
    each on a network built from seed 0: the pair the attribution and memory checks use."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(128, 40, generator=g), torch.randint(0, 10, (128,), generator=g)
    steps = {}
    for label, q in (("rigl", 0.0), ("cigl", p)):
        torch.manual_seed(0)
        steps[label] = hvgp_step_fn(build_model(arch, (40,), 10).to(device), x.to(device),
                                    y.to(device), q, 5e-4, device)
    return steps


PAIRS = {"cigl_over_rigl": ("hvgp_cigl", "hvgp_rigl"),
         "hvgp_rigl_over_plain_rigl": ("hvgp_rigl", "plain_rigl"),
         "hvgp_cigl_over_plain_cigl": ("hvgp_cigl", "plain_cigl"),
         "hvgp_cigl_over_plain_rigl": ("hvgp_cigl", "plain_rigl")}


def measure(arch: str, shape, batch: int, device: torch.device, reps: int, block: int,
            width: float = 1.0, p: float = 0.01) -> dict[str, Any]:
    """Interleaved step times of plain/hvgp RigL/CigL on one architecture, with ratios."""
    x = torch.randn(batch, *shape, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    fns = {}
    for label, fn, q in [("plain_rigl", plain_step_fn, 0.0), ("plain_cigl", plain_step_fn, p),
                         ("hvgp_rigl", hvgp_step_fn, 0.0), ("hvgp_cigl", hvgp_step_fn, p)]:
        torch.manual_seed(0)
        fns[label] = fn(build_model(arch, shape, 10, width=width).to(device), x, y, q, 5e-4,
                        device)
    return summary(interleaved_times(fns, device, reps, block), PAIRS)


def timing_args(ap: argparse.ArgumentParser, out: Path, reps: int, block: int,
                ) -> tuple[argparse.Namespace, Path]:
    """Parse ``ap`` with the timing options every step benchmark shares (``--reps``,
    ``--block``, ``--quick``: 2 repetitions of 1 step, output under /tmp); returns the
    arguments and where the JSON goes."""
    ap.add_argument("--reps", type=int, default=reps, help="interleaved repetitions")
    ap.add_argument("--block", type=int, default=block, help="steps per timed block")
    ap.add_argument("--quick", action="store_true", help="a smoke run (seconds)")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.block = 2, 1
        out = Path("/tmp/hvgp_bench_quick") / out.name
    return args, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--big", action="store_true", help="also WRN-22-2 on 3x32x32, batch 32")
    args, out = timing_args(ap, OUT, reps=15, block=10)
    C.setup_threads(args.threads)
    device = resolve_device(args.device)
    cases = [("cnn1d", (40,), 128), ("mlp", (40,), 128)]
    if args.big:
        cases.append(("wrn-22-2", (3, 32, 32), 32))
    results = {}
    for arch, shape, batch in cases:
        r = measure(arch, shape, batch, device, args.reps, args.block)
        results[arch] = r
        w = r["wall"]
        print(f"{arch:9s} wall ratios: " + ", ".join(
            f"{k} {fmt_ratio(v)}" for k, v in w["ratios"].items()), flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    if device.type != "cpu" and not args.quick:
        out = out.with_name(f"step_overhead_{device.type}.json")
    out.write_text(json.dumps({"command": C.command(), "machine": C.machine(),
                               "settings": vars(args), "results": results}, indent=2))


if __name__ == "__main__":
    main()
