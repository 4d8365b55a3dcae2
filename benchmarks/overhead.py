"""Cost of CigL: per-step time and peak memory vs RigL, dense and plain torch; inference time.

Training step (topology updates excluded), six step functions built on the same network and
batch: hvgp CigL / RigL / dense (the package's SVI step: the fast step of #17 where it is
exact) and hand-written plain-torch loops for CigL / RigL / dense (the plain sparse loops
are :mod:`step_overhead`'s, imported, not copied). Networks: the MLP and the 1-D CNN on
MNIST-1D shapes (batch 128) and WRN-22-2 on 3x32x32 (batch 32; hvgp CigL / RigL and plain
RigL only, fewer repetitions: a CPU step takes seconds). Timings are interleaved A/B within
this process (:func:`step_overhead.interleaved_times`): each repetition times a block of
steps of every function in turn, in a rotated order, so load changes on a shared machine
hit all of them alike; a ratio is the median over repetitions of the per-repetition ratio,
with quartiles and range, for wall and for process CPU time. Peak memory:
``torch.cuda.max_memory_allocated`` on GPU; on CPU the peak of the live bytes reconstructed
from the torch profiler's per-op allocations over one step (op granularity, above the
memory already held before the step; a warm-up step is profiled first so that what a step
frees of the step before it counts).

Inference: the averaged sparse CigL model vs the dense model through ``predict`` (masked
dense arithmetic, what the estimators use) and the CSR twin of the averaged model
(:func:`hvgp.export.to_sparse`), at batch 1000, interleaved the same way.

    .venv/bin/python benchmarks/overhead.py            # a few minutes on 1 thread
    .venv/bin/python benchmarks/overhead.py --quick    # seconds
    .venv/bin/python benchmarks/overhead.py --memory-only --no-wrn   # peak memory only
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common as C
import torch
import torch.nn.functional as F
from step_overhead import fmt_ratio, hvgp_step_fn, interleaved_times, plain_step_fn, summary

from hvgp.utils import resolve_device

OUT = C.RESULTS / "overhead"
Step = Callable[[], Any]


def plain_dense_step_fn(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, wd: float,
                        ) -> Step:
    """The plain-torch dense step: forward, cross-entropy, backward, SGD Nesterov."""
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True,
                          weight_decay=wd)

    def step() -> None:
        opt.zero_grad(set_to_none=False)
        F.cross_entropy(net(x), y).backward()
        opt.step()

    return step


def hvgp_dense_step_fn(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, wd: float,
                       device: torch.device) -> Step:
    """hvgp's SVI step for the dense baseline (sparsity 0, no random mask, no averaging)."""
    from torch.utils.data import DataLoader, TensorDataset

    from hvgp.baselines.nn import make_estimator

    est = make_estimator("dense", net, lr=0.01, weight_decay=wd, device=device,
                         schedule="constant")
    est.fit(DataLoader(TensorDataset(x.cpu(), y.cpu()), batch_size=len(x)), epochs=1)
    return lambda: est.trainer.train_step(x, y)


def interleaved(fns: dict[str, Step], device: torch.device, reps: int, block: int,
                ) -> dict[str, float]:
    """Median wall seconds per call of each function, timing blocks in turn (rotated)."""
    return summary(interleaved_times(fns, device, reps, block), {})["wall"]["seconds"]


_BOUNDARY = "hvgp.peak_bytes.measured_call"


def peak_bytes(fn: Step, device: torch.device) -> int:
    """Peak memory one call of ``fn`` allocates above what was live before it.

    On the CPU the profile holds a warm-up call first: a call's frees of what the call
    before it left (a trainer's last Z) are then seen, where the profiler does not report
    frees of memory allocated before it started.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    from torch.profiler import ProfilerActivity, profile, record_function

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
        with record_function(_BOUNDARY):
            pass
        fn()
    # each op's own (self) allocations minus frees, plus free-standing [memory] events, in
    # start order: the running sum is the live memory at op granularity
    evs = list(prof.events())
    start = max(e.time_range.start for e in evs if e.name == _BOUNDARY)
    events = sorted((e.time_range.start, e.cpu_memory_usage if e.name == "[memory]"
                     else e.self_cpu_memory_usage) for e in evs if e.name != _BOUNDARY)
    live = sum(delta for t, delta in events if t < start)
    base = peak = live
    for t, delta in events:
        if t >= start:
            live += delta
            peak = max(peak, live)
    return int(peak - base)


TRAIN_PAIRS = {
    "cigl_over_rigl": ("hvgp_cigl", "hvgp_rigl"),
    "cigl_over_dense": ("hvgp_cigl", "hvgp_dense"),
    "rigl_over_dense": ("hvgp_rigl", "hvgp_dense"),
    "hvgp_over_plain_cigl": ("hvgp_cigl", "plain_cigl"),
    "hvgp_over_plain_rigl": ("hvgp_rigl", "plain_rigl"),
    "hvgp_over_plain_dense": ("hvgp_dense", "plain_dense"),
    "hvgp_cigl_over_plain_rigl": ("hvgp_cigl", "plain_rigl"),
}


def step_functions(arch: str, shape: tuple[int, ...], batch: int, device: torch.device,
                   p: float, wd: float = 5e-4, full: bool = True) -> dict[str, Step]:
    """The step functions on one network and batch (``full=False``: hvgp CigL / RigL and
    plain RigL only)."""
    from hvgp.nn import build_model

    x = torch.randn(batch, *shape, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def net() -> torch.nn.Module:
        torch.manual_seed(0)
        return build_model(arch, shape, 10).to(device)

    fns = {
        "hvgp_cigl": hvgp_step_fn(net(), x, y, p, wd, device),
        "hvgp_rigl": hvgp_step_fn(net(), x, y, 0.0, wd, device),
        "plain_rigl": plain_step_fn(net(), x, y, 0.0, wd, device),
    }
    if full:
        fns.update(hvgp_dense=hvgp_dense_step_fn(net(), x, y, wd, device),
                   plain_cigl=plain_step_fn(net(), x, y, p, wd, device),
                   plain_dense=plain_dense_step_fn(net(), x, y, wd))
    return fns


def memory_costs(fns: dict[str, Step], device: torch.device) -> dict[str, Any]:
    """Peak bytes of one call of each step function, and the CigL ratios."""
    mem = {k: peak_bytes(fn, device) for k, fn in fns.items()}
    ratios = {"mem_cigl_over_rigl": mem["hvgp_cigl"] / max(mem["hvgp_rigl"], 1)}
    if "hvgp_dense" in mem:
        ratios.update(mem_cigl_over_dense=mem["hvgp_cigl"] / max(mem["hvgp_dense"], 1),
                      mem_hvgp_cigl_over_plain_cigl=mem["hvgp_cigl"] / max(mem["plain_cigl"], 1))
    return {"peak_bytes": mem, "memory_ratios": ratios}


def training_costs(arch: str, shape: tuple[int, ...], batch: int, device: torch.device,
                   reps: int, block: int, p: float, wd: float = 5e-4, full: bool = True,
                   ) -> dict[str, Any]:
    """Per-step time (wall and CPU, ratio spreads) and peak memory of the step functions
    (``full=False``: hvgp CigL / RigL and plain RigL only)."""
    fns = step_functions(arch, shape, batch, device, p, wd, full)
    pairs = {k: v for k, v in TRAIN_PAIRS.items() if v[0] in fns and v[1] in fns}
    res = summary(interleaved_times(fns, device, reps, block), pairs)
    res.update(memory_costs(fns, device))
    res["settings"] = {"batch": batch, "shape": list(shape), "reps": reps, "block": block,
                       "drop_rate": p}
    return res


def inference_costs(device: torch.device, epochs: int, reps: int, block: int, p: float,
                    ) -> dict[str, Any]:
    """Predict time of the averaged sparse CigL model vs dense (and CSR twin), MNIST-1D CNN."""
    from hvgp.config import RunConfig
    from hvgp.data import get_loaders
    from hvgp.experiment import build_estimator
    from hvgp.export import to_sparse

    train, _, test, info = get_loaders("mnist1d", batch_size=128, seed=0, val_fraction=0.0)
    x = torch.cat([xb for xb, _ in test]).to(device)
    ests = {}
    for model, sparsity in (("cigl", 0.9), ("dense", 0.0)):
        cfg = RunConfig(model=model, sparsity=sparsity, drop_rate=p if model == "cigl" else 0.0,
                        epochs=epochs, device=str(device))
        ests[model] = build_estimator(cfg, info).fit(train, epochs)
    csr = to_sparse(ests["cigl"].model_)
    fns: dict[str, Step] = {
        "cigl_averaged_predict": lambda: ests["cigl"].predict(x),
        "dense_predict": lambda: ests["dense"].predict(x),
        "cigl_csr_forward": lambda: csr(x),
    }
    with torch.no_grad():
        t = interleaved(fns, device, reps, block)
    return {"batch": int(x.shape[0]), "seconds": t,
            "sparsity_of_averaged_model": ests["cigl"].sparsity(),
            "ratios": {"cigl_averaged_over_dense": t["cigl_averaged_predict"] / t["dense_predict"],
                       "csr_over_dense": t["cigl_csr_forward"] / t["dense_predict"]}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--reps", type=int, default=15, help="interleaved repetitions")
    ap.add_argument("--block", type=int, default=10, help="steps per timed block")
    ap.add_argument("--wrn-reps", type=int, default=4, help="repetitions for WRN-22-2")
    ap.add_argument("--drop-rate", type=float, default=0.01)
    ap.add_argument("--train-epochs", type=int, default=5,
                    help="epochs for the models whose inference is timed")
    ap.add_argument("--no-wrn", action="store_true", help="skip WRN-22-2 (3x32x32, batch 32)")
    ap.add_argument("--no-inference", action="store_true", help="skip the inference part")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--memory-only", action="store_true",
                    help="only the peak memory of one training step (printed; no result files)")
    args = ap.parse_args()
    out = OUT
    if args.quick:
        args.reps, args.block, args.train_epochs, args.wrn_reps = 3, 2, 1, 2
        out = Path("/tmp/hvgp_bench_quick/overhead")
    C.setup_threads(args.threads)
    device = resolve_device(args.device)
    if device.type != "cpu" and not args.quick:
        out = out.with_name(f"overhead_{device.type}")
    cases = [("cnn1d", (40,), 128, args.reps, args.block, True),
             ("mlp", (40,), 128, args.reps, args.block, True)]
    if not args.no_wrn:
        cases.append(("wrn-22-2", (3, 32, 32), 32 if not args.quick else 2, args.wrn_reps, 1,
                      False))
    if args.memory_only:
        print("| arch | batch | peak bytes hvgp CigL | hvgp RigL | CigL / RigL | hvgp dense "
              "| plain CigL |\n|" + "---|" * 7)
        for arch, shape, batch, _, _, full in cases:
            r = memory_costs(step_functions(arch, shape, batch, device, args.drop_rate,
                                            full=full), device)
            m = r["peak_bytes"]
            print(f"| {arch} | {batch} | {m['hvgp_cigl']} | {m['hvgp_rigl']} "
                  f"| {r['memory_ratios']['mem_cigl_over_rigl']:.4f} | {m.get('hvgp_dense', '')} "
                  f"| {m.get('plain_cigl', '')} |", flush=True)
        return
    res = C.ResultFile(out.with_suffix(".json"), vars(args).copy(), resume=False)
    lines = ["Step time: medians over interleaved repetitions, ms (wall); ratios: median "
             "[q25, q75] of the per-repetition ratios, wall time (CPU time in the JSON).", "",
             "| arch | batch | hvgp CigL ms | hvgp RigL ms | plain RigL ms | CigL/RigL "
             "| hvgp RigL / plain RigL | CigL/RigL (CPU time) | peak MiB CigL / RigL |",
             "|" + "---|" * 9]
    training = {}
    for arch, shape, batch, reps, block, full in cases:
        r = training_costs(arch, shape, batch, device, reps, block, args.drop_rate, full=full)
        training[arch] = r
        t, q, m = r["wall"]["seconds"], r["wall"]["ratios"], r["peak_bytes"]
        lines.append(
            f"| {arch} | {batch} | {1e3 * t['hvgp_cigl']:.2f} | {1e3 * t['hvgp_rigl']:.2f} "
            f"| {1e3 * t['plain_rigl']:.2f} | {fmt_ratio(q['cigl_over_rigl'])} "
            f"| {fmt_ratio(q['hvgp_over_plain_rigl'])} "
            f"| {fmt_ratio(r['cpu']['ratios']['cigl_over_rigl'])} "
            f"| {m['hvgp_cigl'] / 2**20:.2f} / {m['hvgp_rigl'] / 2**20:.2f} |")
        print(lines[-1], flush=True)
    inf = None
    if not args.no_inference:
        inf = inference_costs(device, args.train_epochs, args.reps, args.block, args.drop_rate)
        s = inf["seconds"]
        lines += ["", f"Inference, MNIST-1D CNN, batch {inf['batch']} "
                  f"(averaged CigL model at sparsity {inf['sparsity_of_averaged_model']:.3f}):",
                  "", "| model | ms per batch | vs dense |", "|---|---|---|",
                  f"| dense | {1e3 * s['dense_predict']:.2f} | 1.00 |",
                  f"| CigL averaged (masked dense) | {1e3 * s['cigl_averaged_predict']:.2f} "
                  f"| {inf['ratios']['cigl_averaged_over_dense']:.2f} |",
                  f"| CigL averaged, CSR twin | {1e3 * s['cigl_csr_forward']:.2f} "
                  f"| {inf['ratios']['csr_over_dense']:.2f} |"]
    md = "\n".join(lines)
    res.save(device=str(device), training=training, inference=inf)
    out.with_suffix(".md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
