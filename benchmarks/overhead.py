"""Cost of CigL: per-step time and peak memory vs RigL, dense and plain torch; inference time.

Training step (one batch of 128, topology updates excluded), six step functions built on
the same network and batch: hvgp CigL / RigL / dense (the package's SVI step) and
hand-written plain-torch loops for CigL / RigL / dense (the plain sparse loops are
:mod:`step_overhead`'s, imported, not copied). Timings are *interleaved*: each repetition
times a block of steps of every function in turn, so load changes on a shared machine hit
all of them alike; the reported time is the median block. Ratios are taken within this one
run. Peak memory: ``torch.cuda.max_memory_allocated`` on GPU; on CPU the peak of the live
bytes reconstructed from the torch profiler's per-op allocations over one step (op
granularity, above the memory already held before the step).

Inference: the averaged sparse CigL model vs the dense model through ``predict`` (masked
dense arithmetic, what the estimators use) and the CSR twin of the averaged model
(:func:`hvgp.export.to_sparse`), at batch 1000, interleaved the same way.

    .venv/bin/python benchmarks/overhead.py            # ~2 min on 1 thread
    .venv/bin/python benchmarks/overhead.py --quick    # seconds
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common as C
import torch
import torch.nn.functional as F
from step_overhead import hvgp_step_fn, plain_step_fn

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
    """Median seconds per call of each function, timing blocks in turn (rep-major)."""
    for fn in fns.values():
        for _ in range(3):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            C.sync(device)
            t0 = time.perf_counter()
            for _ in range(block):
                fn()
            C.sync(device)
            times[name].append((time.perf_counter() - t0) / block)
    return {k: statistics.median(v) for k, v in times.items()}


def peak_bytes(fn: Step, device: torch.device) -> int:
    """Peak memory one call of ``fn`` allocates above what was live before it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # each op's own (self) allocations minus frees, plus free-standing [memory] events, in
    # start order: the running sum is the live memory at op granularity
    events = sorted((e.time_range.start, e.cpu_memory_usage if e.name == "[memory]"
                     else e.self_cpu_memory_usage) for e in prof.events())
    live = peak = 0
    for _, delta in events:
        live += delta
        peak = max(peak, live)
    return int(peak)


def training_costs(arch: str, shape: tuple[int, ...], batch: int, device: torch.device,
                   reps: int, block: int, p: float, wd: float = 5e-4) -> dict[str, Any]:
    """Per-step time and peak memory of the six step functions, with ratios."""
    from hvgp.nn import build_model

    x = torch.randn(batch, *shape, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def net() -> torch.nn.Module:
        torch.manual_seed(0)
        return build_model(arch, shape, 10).to(device)

    fns = {
        "hvgp_cigl": hvgp_step_fn(net(), x, y, p, wd, device),
        "hvgp_rigl": hvgp_step_fn(net(), x, y, 0.0, wd, device),
        "hvgp_dense": hvgp_dense_step_fn(net(), x, y, wd, device),
        "plain_cigl": plain_step_fn(net(), x, y, p, wd, device),
        "plain_rigl": plain_step_fn(net(), x, y, 0.0, wd, device),
        "plain_dense": plain_dense_step_fn(net(), x, y, wd),
    }
    t = interleaved(fns, device, reps, block)
    mem = {k: peak_bytes(fn, device) for k, fn in fns.items()}
    ratios = {
        "cigl_over_rigl": t["hvgp_cigl"] / t["hvgp_rigl"],
        "cigl_over_dense": t["hvgp_cigl"] / t["hvgp_dense"],
        "rigl_over_dense": t["hvgp_rigl"] / t["hvgp_dense"],
        "hvgp_over_plain_cigl": t["hvgp_cigl"] / t["plain_cigl"],
        "hvgp_over_plain_rigl": t["hvgp_rigl"] / t["plain_rigl"],
        "hvgp_over_plain_dense": t["hvgp_dense"] / t["plain_dense"],
        "mem_cigl_over_rigl": mem["hvgp_cigl"] / max(mem["hvgp_rigl"], 1),
        "mem_cigl_over_dense": mem["hvgp_cigl"] / max(mem["hvgp_dense"], 1),
        "mem_hvgp_cigl_over_plain_cigl": mem["hvgp_cigl"] / max(mem["plain_cigl"], 1),
    }
    return {"step_seconds": t, "peak_bytes": mem, "ratios": ratios}


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
    ap.add_argument("--drop-rate", type=float, default=0.01)
    ap.add_argument("--train-epochs", type=int, default=5,
                    help="epochs for the models whose inference is timed")
    ap.add_argument("--big", action="store_true", help="also WRN-22-2 on 3x32x32 (GPU)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    out = OUT
    if args.quick:
        args.reps, args.block, args.train_epochs = 3, 2, 1
        out = Path("/tmp/hvgp_bench_quick/overhead")
    C.setup_threads(args.threads)
    device = resolve_device(args.device)
    if device.type != "cpu" and not args.quick:
        out = out.with_name(f"overhead_{device.type}")
    cases = [("cnn1d", (40,)), ("mlp", (40,))]
    if args.big:
        cases.append(("wrn-22-2", (3, 32, 32)))
    res = C.ResultFile(out.with_suffix(".json"), vars(args).copy(), resume=False)
    lines = ["| arch | hvgp CigL ms | hvgp RigL ms | hvgp dense ms | plain CigL ms | plain RigL ms "
             "| plain dense ms | CigL/RigL | CigL/dense | hvgp/plain (CigL) | peak MiB CigL "
             "/ RigL / dense (plain CigL) |", "|" + "---|" * 11]
    training = {}
    for arch, shape in cases:
        r = training_costs(arch, shape, 128, device, args.reps, args.block, args.drop_rate)
        training[arch] = r
        t, m, q = r["step_seconds"], r["peak_bytes"], r["ratios"]
        mib = [m[k] / 2**20 for k in ("hvgp_cigl", "hvgp_rigl", "hvgp_dense", "plain_cigl")]
        lines.append(
            f"| {arch} | {1e3 * t['hvgp_cigl']:.2f} | {1e3 * t['hvgp_rigl']:.2f} "
            f"| {1e3 * t['hvgp_dense']:.2f} | {1e3 * t['plain_cigl']:.2f} "
            f"| {1e3 * t['plain_rigl']:.2f} | {1e3 * t['plain_dense']:.2f} "
            f"| {q['cigl_over_rigl']:.2f} | {q['cigl_over_dense']:.2f} "
            f"| {q['hvgp_over_plain_cigl']:.2f} "
            f"| {mib[0]:.2f} / {mib[1]:.2f} / {mib[2]:.2f} ({mib[3]:.2f}) |")
        print(lines[-1], flush=True)
    inf = inference_costs(device, args.train_epochs, args.reps, args.block, args.drop_rate)
    s = inf["seconds"]
    lines += ["", f"Inference, MNIST-1D CNN, batch {inf['batch']} "
              f"(averaged CigL model at sparsity {inf['sparsity_of_averaged_model']:.3f}):", "",
              "| model | ms per batch | vs dense |", "|---|---|---|",
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
