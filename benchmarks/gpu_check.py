"""One short GPU check: CUDA-marked tests, CigL vs RigL WRN-22-2 steps, MC prediction, AMP.

Sections, each timed and written into one JSON (``benchmarks/results/gpu_check_<device>.json``):

1. ``cuda_tests``: ``pytest -m cuda`` over the suite (tests that skip without CUDA).
2. ``training``: WRN-22-2 on synthetic CIFAR-shaped data (3x32x32, 10 classes), hvgp CigL
   vs hvgp RigL vs a plain-torch RigL loop (and, where AMP is supported, the two hvgp
   steps under bf16 autocast), a fixed number of steps each, interleaved A/B
   (:func:`step_overhead.interleaved_times`): ratios are medians of per-repetition ratios
   with quartiles and range, wall and CPU time; peak memory per step on CUDA; the loss at
   the first and last step (it must stay finite; whether it fell on the fixed batch).
3. ``prediction``: Monte Carlo prediction (S random masks) vectorised vs looped vs the
   automatic choice, interleaved, for the MLP, the 1-D CNN and WRN-22-2, and the largest
   difference between the two paths' probabilities under the same seed (same Z).

The whole run is sized to stay under ``--budget-s`` (default 420 s, under 8 minutes on one
modern GPU); a section that would start after the budget is recorded as skipped. Exit
status 0 iff every section that ran is ``ok``.

    .venv/bin/python benchmarks/gpu_check.py                        # --device auto
    .venv/bin/python benchmarks/gpu_check.py --device cpu --quick   # seconds (run by the tests)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common as C
import torch
from step_overhead import fmt_ratio, hvgp_estimator, interleaved_times, plain_step_fn, summary

from hvgp.infer import SparseBNN, predictive_samples
from hvgp.infer.predictive import choose_vectorize
from hvgp.nn import build_model
from hvgp.sparsity import SparseTopology
from hvgp.utils import resolve_device

ROOT = Path(__file__).resolve().parent.parent
Step = Callable[[], Any]


def amp_supported(device: torch.device) -> bool:
    """Whether bf16 autocast runs on ``device`` (CUDA: the GPU supports bf16)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return device.type == "cpu"


def cuda_tests(targets: list[str], timeout: float) -> dict[str, Any]:
    """Run ``pytest -m cuda`` on ``targets`` in a subprocess; return code, counts, tail."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda",
           *targets]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "MPLBACKEND": "Agg"})
        rc, text = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as err:
        rc = 124
        text = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else str(err.stdout)
    counts = {k: int(n) for n, k in re.findall(
        r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)", text)}
    return {"command": " ".join(cmd), "returncode": rc, "counts": counts,
            "seconds": time.perf_counter() - t0, "output_tail": text[-3000:],
            "ok": rc == 0 and not counts.get("failed") and not counts.get("error")
            and not counts.get("errors")}


def _autocast(device: torch.device, on: bool) -> Any:
    """bf16 autocast on ``device`` when ``on``, else a no-op context."""
    if on:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return torch.autocast(device.type, enabled=False)


def _peak_bytes(fn: Step, device: torch.device) -> int | None:
    """Peak CUDA memory one call of ``fn`` allocates above what was live (None on CPU)."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device) - base)


def training(device: torch.device, batch: int, width: float, reps: int, block: int,
             p: float, amp: bool) -> dict[str, Any]:
    """Interleaved step times of hvgp CigL / RigL (and AMP twins) and plain RigL, WRN-22-2."""
    shape = (3, 32, 32)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *shape, generator=g).to(device)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)
    trainers = {}
    for label, q in (("cigl", p), ("rigl", 0.0)):
        torch.manual_seed(0)
        net = build_model("wrn-22-2", shape, 10, width=width).to(device)
        trainers[label] = hvgp_estimator(net, x, y, q, 5e-4, device).trainer
    torch.manual_seed(0)
    plain = plain_step_fn(build_model("wrn-22-2", shape, 10, width=width).to(device), x, y,
                          0.0, 5e-4, device)
    losses: dict[str, list[float]] = {k: [] for k in trainers}

    def step(label: str, autocast: bool) -> Step:
        trainer = trainers[label]

        def run() -> None:
            with _autocast(device, autocast):
                losses[label].append(trainer.train_step(x, y))

        return run

    fns = {"hvgp_cigl": step("cigl", False), "hvgp_rigl": step("rigl", False),
           "plain_rigl": plain}
    pairs = {"cigl_over_rigl": ("hvgp_cigl", "hvgp_rigl"),
             "hvgp_rigl_over_plain_rigl": ("hvgp_rigl", "plain_rigl")}
    if amp:
        fns.update(hvgp_cigl_amp=step("cigl", True), hvgp_rigl_amp=step("rigl", True))
        pairs.update(cigl_amp_over_rigl_amp=("hvgp_cigl_amp", "hvgp_rigl_amp"),
                     cigl_amp_over_cigl=("hvgp_cigl_amp", "hvgp_cigl"),
                     rigl_amp_over_rigl=("hvgp_rigl_amp", "hvgp_rigl"))
    times = interleaved_times(fns, device, reps, block)
    res = summary(times, pairs)
    res["peak_bytes"] = {k: _peak_bytes(fn, device) for k, fn in fns.items()}
    res["steps_per_function"] = reps * block + 3
    res["fast_path"] = {k: getattr(t, "last_path", "generic") for k, t in trainers.items()}
    res["loss_first_last"] = {k: [v[0], v[-1]] for k, v in losses.items()}
    res["loss_fell"] = {k: v[-1] < v[0] for k, v in losses.items()}
    res["ok"] = all(math.isfinite(v) for vals in losses.values() for v in vals)
    res["settings"] = {"arch": "wrn-22-2", "shape": list(shape), "batch": batch,
                       "width": width, "reps": reps, "block": block, "drop_rate": p,
                       "amp": "bf16 autocast" if amp else "unsupported"}
    return res


def _same_seed(fn: Callable[[], Any], seed: int = 0) -> Any:
    """``fn()`` from a fixed torch seed (both prediction paths then draw the same Z)."""
    torch.manual_seed(seed)
    return fn()


def prediction(device: torch.device, cases: list[tuple[str, tuple[int, ...], int, float]],
               samples: int, reps: int) -> dict[str, Any]:
    """Vectorised vs looped vs automatic MC prediction (S = ``samples``), interleaved."""
    out: dict[str, Any] = {}
    ok = True
    for arch, shape, n, width in cases:
        torch.manual_seed(0)
        net = build_model(arch, shape, 10, width=width).to(device)
        SparseTopology(net, 0.9)
        bnn = SparseBNN(net, drop_rate=0.1, data_size=n).to(device)
        x = torch.randn(n, *shape, device=device)

        def predict(vec: bool | None, bnn: SparseBNN = bnn, x: torch.Tensor = x) -> Any:
            return predictive_samples(bnn, x, samples, vectorize=vec)

        fns = {"vectorised": lambda f=predict: f(True), "loop": lambda f=predict: f(False),
               "auto": lambda f=predict: f(None)}
        times = interleaved_times(fns, device, reps, 1, warmup=1)
        res = summary(times, {"loop_over_vectorised": ("loop", "vectorised"),
                              "loop_over_auto": ("loop", "auto")})
        a = _same_seed(lambda f=predict: f(True)).probs
        b = _same_seed(lambda f=predict: f(False)).probs
        res["max_abs_diff_same_seed"] = float((a - b).abs().max())
        res["auto_choice"] = "vectorised" if choose_vectorize(bnn, x, samples) else "loop"
        res["finite"] = bool(torch.isfinite(a).all() and torch.isfinite(b).all())
        ok &= res["finite"]
        res["settings"] = {"samples": samples, "n": n, "shape": list(shape), "width": width}
        out[arch] = res
    out["ok"] = ok
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the check; write the JSON; 0 iff every section that ran is ok."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (seconds, on CPU too)")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default: results/)")
    ap.add_argument("--budget-s", type=float, default=420.0)
    ap.add_argument("--batch", type=int, default=128, help="WRN-22-2 training batch")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--block", type=int, default=10)
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--drop-rate", type=float, default=0.01)
    ap.add_argument("--threads", type=int, default=1, help="torch threads on the CPU")
    ap.add_argument("--skip-tests", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    C.setup_threads(args.threads)
    device = resolve_device(args.device)
    width, pred_reps, tests = 1.0, 5, ["tests"]
    pred_cases = [("mlp", (40,), 256, 1.0), ("cnn1d", (40,), 256, 1.0),
                  ("wrn-22-2", (3, 32, 32), 256, 1.0)]
    if args.quick:
        args.batch, args.reps, args.block, args.samples = 4, 2, 1, 4
        width, pred_reps, tests = 0.25, 1, ["tests/test_cuda.py"]
        pred_cases = [(a, s, 8, 0.25) for a, s, _, _ in pred_cases]
    out = args.out or (Path("/tmp/hvgp_bench_quick") if args.quick else C.RESULTS) / (
        f"gpu_check_{device.type}.json")
    report: dict[str, Any] = {"command": C.command(), "machine": C.machine(),
                              "device": str(device), "settings": {
                                  k: str(v) if isinstance(v, Path) else v
                                  for k, v in vars(args).items()},
                              "sections": {}}
    if device.type == "cuda":
        report["machine"]["gpu"] = torch.cuda.get_device_name(device)
        report["machine"]["cuda"] = torch.version.cuda

    def remaining() -> float:
        return args.budget_s - (time.perf_counter() - t0)

    sections: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("training", lambda: training(device, args.batch, width, args.reps, args.block,
                                      args.drop_rate, amp_supported(device))),
        ("prediction", lambda: prediction(device, pred_cases, args.samples, pred_reps)),
    ]
    if not args.skip_tests:
        sections.insert(0, ("cuda_tests", lambda: cuda_tests(tests, max(60.0, remaining()
                                                                          - 120.0))))
    for name, run in sections:
        if remaining() <= 0:
            report["sections"][name] = {"skipped": "time budget spent", "ok": True}
            continue
        s0 = time.perf_counter()
        try:
            res = run()
        except Exception as err:  # record and go on: one broken section must not hide the rest
            res = {"error": f"{type(err).__name__}: {err}", "ok": False}
        res["wall_seconds"] = time.perf_counter() - s0
        report["sections"][name] = res
        print(f"{name}: ok={res['ok']} ({res['wall_seconds']:.1f} s)", flush=True)
        _print_section(name, res)
    report["wall_seconds"] = time.perf_counter() - t0
    report["ok"] = all(s["ok"] for s in report["sections"].values())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(out)
    print(f"wrote {out} (ok={report['ok']}, {report['wall_seconds']:.0f} s)")
    return 0 if report["ok"] else 1


def _print_section(name: str, res: dict[str, Any]) -> None:
    """A few lines per section for the console (the JSON has everything)."""
    if "error" in res:
        print(f"  error: {res['error']}")
    elif name == "cuda_tests":
        print(f"  {res['counts']} (rc {res['returncode']})")
    elif name == "training":
        for label, r in res["wall"]["ratios"].items():
            print(f"  {label}: {fmt_ratio(r)} (wall)")
    elif name == "prediction":
        for arch, r in res.items():
            if isinstance(r, dict):
                lv = fmt_ratio(r["wall"]["ratios"]["loop_over_vectorised"])
                print(f"  {arch}: loop/vectorised {lv}, auto={r['auto_choice']}, "
                      f"same-seed diff {r['max_abs_diff_same_seed']:.2e}")


if __name__ == "__main__":
    sys.exit(main())
