"""Width study: CigL vs RigL at network widths 0.5 / 1 / 2, with p tuned per width.

Protocol, fixed before any run: ``mnist1d-large`` (the standard 4000 training signals,
4000 validation signals from the generator's seed 43, 20 000 test signals), 90 % sparsity,
the ``paper`` recipe (the package default), T* = 0.8 (the value both architectures chose at
width 1, ``tune_cigl.py``). Per width, p is chosen from ``--drop-rates`` by the mean
*validation* NLL over the tuning seeds 100 and 101 (:func:`hvgp.tune.tune_config`; p = 0 is
averaging alone); then RigL and CigL at that p are trained on the reporting seeds 0-4 and
scored once on the test split, paired by seed. Nothing on the test split chooses anything.

Writes ``benchmarks/results/width_study_<arch>.{json,md,png}``; ``--resume`` skips stored
runs (tuning is stored per width too).

    .venv/bin/python benchmarks/width_study.py                # MLP, ~35 min on 1 thread
    .venv/bin/python benchmarks/width_study.py --quick        # seconds (smoke test)
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import _common as C

from hvgp.config import RunConfig


def tuned_p(results: C.ResultFile, base: RunConfig, width: float, rates: list[float],
            seeds: list[int]) -> float:
    """p for ``width`` by validation NLL (stored under ``extra['tuning']`` once chosen)."""
    from hvgp.tune import tune_config

    done = results.extra.setdefault("tuning", {})
    key = f"{width:g}"
    if key not in done:
        t0 = time.perf_counter()
        res, _ = tune_config(base.updated(model="cigl", width=width),
                             {"drop_rate": rates, "averaging_start": [base.averaging_start]},
                             seeds, select_by="val_nll", progress=False)
        done[key] = {"best": res.best, "table": res.table(), "summary": res.summary(),
                     "seconds": time.perf_counter() - t0}
        results.save()
        print(f"width {width:g}: chosen {res.best}\n{res.table()}", flush=True)
    return float(done[key]["best"]["drop_rate"])


def train(results: C.ResultFile, base: RunConfig, width: float, method: str, p: float,
          seed: int) -> dict[str, Any]:
    """One reporting run (or the stored one), scored on the test split."""
    key = dict(width=width, method=method, seed=seed, drop_rate_p=p, epochs=base.epochs,
               sparsity_target=base.sparsity, recipe=base.recipe, arch=base.arch)
    old = results.find(**key)
    if old is not None:
        return old
    t0 = time.perf_counter()
    rec, _ = C.scored_run(C.method_config(base, method, p, width=width, seed=seed))
    rec.update(key)
    results.add(rec)
    print(f"w{width:g} {method:4s} p={p:g} seed {seed}: acc {rec['accuracy']:.4f} "
          f"ece {rec['ece']:.4f} nll {rec['nll']:.4f} ({time.perf_counter() - t0:.0f}s)",
          flush=True)
    return rec


def report(results: C.ResultFile, widths: list[float], sparsity: float) -> str:
    """Per width: the chosen p, then the paired CigL − RigL table (ECE with floor, NLL, acc)."""
    parts = []
    for w in widths:
        runs = C.select(results.runs, width=w)
        tuning = results.extra.get("tuning", {}).get(f"{w:g}")
        if not runs or tuning is None:
            continue
        table, _ = C.paired_sparsity_table(runs, [sparsity])
        parts.append(f"### width {w:g}: p = {tuning['best']['drop_rate']:g} (validation NLL)"
                     f"\n\n{tuning['table']}\n\n{table}\n")
    return "\n".join(parts)


def plot(results: C.ResultFile, widths: list[float], path: Path, arch: str) -> None:
    """ECE (mean ± std over seeds) against width for RigL, CigL and their floors."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4))
    for method, colour in (("RigL", "tab:blue"), ("CigL", "tab:orange")):
        for field, style in (("ece", "-o"), ("ece_floor", ":")):
            pts = [(w, [r[field] for r in C.select(results.runs, width=w, method=method)])
                   for w in widths]
            pts = [(w, v) for w, v in pts if v]
            if not pts:
                continue
            ax.errorbar([w for w, _ in pts], [statistics.fmean(v) for _, v in pts],
                        yerr=[C.mean_std(v)[1] for _, v in pts], fmt=style, color=colour,
                        capsize=3, label=method if field == "ece" else f"{method} floor")
    ax.set_xscale("log", base=2)
    ax.set_xticks(widths, [f"{w:g}" for w in widths])
    ax.set(xlabel="width multiplier", ylabel="test ECE (10 bins)")
    ax.set_title(f"MNIST-1D {arch.upper()}, 90 % sparse: ECE vs width, p tuned per width\n"
                 "dotted: ECE of a calibrated predictor with the same confidences",
                 fontsize="small")
    ax.legend(fontsize="x-small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="mlp", choices=["mlp", "cnn1d"])
    ap.add_argument("--widths", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--recipe", default="paper")
    ap.add_argument("--drop-rates", type=float, nargs="+", default=[0.0, 0.005, 0.01, 0.05, 0.1])
    ap.add_argument("--averaging-start", type=float, default=0.8)
    ap.add_argument("--tune-seeds", type=int, nargs="+", default=None,
                    help="default: 100 101 (100 with --quick)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--epochs", type=int, default=None, help="default: 50 (MLP), 100 (CNN)")
    ap.add_argument("--data", default="mnist1d-large")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None, help="result path stem")
    args = ap.parse_args()
    out = Path(args.out) if args.out else C.RESULTS / f"width_study_{args.arch}"
    if args.epochs is None:
        args.epochs = 50 if args.arch == "mlp" else 100
    if args.quick:
        args.epochs, args.widths, args.seeds = 1, [0.5, 1.0], [0, 1]
        args.drop_rates = [0.0, 0.05]
        out = Path(args.out) if args.out else Path("/tmp/hvgp_bench_quick/width_study")
    if args.tune_seeds is None:
        args.tune_seeds = [100] if args.quick else [100, 101]
    if set(args.tune_seeds) & set(args.seeds):
        raise SystemExit("tuning and reporting seeds must be disjoint")
    C.setup_threads(args.threads)
    base = RunConfig(data=args.data, arch=args.arch, sparsity=args.sparsity, recipe=args.recipe,
                     epochs=args.epochs, averaging_start=args.averaging_start, val_fraction=0.0,
                     device="cpu")
    results = C.ResultFile(out.with_suffix(".json"), vars(args).copy(), args.resume)
    for w in args.widths:
        p = tuned_p(results, base, w, args.drop_rates, args.tune_seeds)
        for seed in args.seeds:
            for method in ("RigL", "CigL"):
                train(results, base, w, method, 0.0 if method == "RigL" else p, seed)
    md = report(results, args.widths, args.sparsity)
    results.save()
    out.with_suffix(".md").write_text(md + "\n")
    plot(results, args.widths, out.with_suffix(".png"), args.arch)
    print(md)


if __name__ == "__main__":
    main()
