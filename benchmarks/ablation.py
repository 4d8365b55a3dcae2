"""The paper's ablation: random mask and weight averaging, each alone and together, and p.

MNIST-1D, 1-D CNN, one sparsity (90 % by default), 2 seeds by default, 100 epochs, 10 % of the
training data held out as the validation split. Steps:

1. drop rate p in ``--drop-rates`` (CigL = random mask + averaging): pick p by the mean
   *validation* ECE (NLL as the other view); then the averaging start T* in
   ``--averaging-starts`` at that p, the same way; the test split is only reported;
2. with the chosen p and T*: RigL (neither), random mask only (drop_rate=p, no averaging),
   averaging only (drop_rate=0, averaging from T*), both (CigL).

With ``--chosen P T`` step 1 is skipped: p and T* come from ``benchmarks/tune_cigl.py``
(validation NLL, tuning seeds disjoint from the reported ones). ``--extra-drop-rates`` adds
CigL and random-mask-only rows at further p (the 99 % study). ``--recipe`` trains with a named
recipe (``hvgp.infer.recipes``; stored runs without one are the legacy recipe's).

Writes ``benchmarks/results/ablation_s<sparsity %>[_<recipe>][_<arch>].{json,md}``.
``--resume`` skips runs already stored.

    .venv/bin/python benchmarks/ablation.py --data mnist1d-large --val-fraction 0 \
        --recipe paper --sparsity 0.99 --arch mlp --epochs 50 --chosen 0.05 0.8 \
        --extra-drop-rates 0.001 0.005 0.01 --seeds 0 1 2 3 4      # the 99 % study

    G="--seeds 0 1 2 3 4 --drop-rates 0.005 0.01 0.05 0.1 0.2 --averaging-starts 0.6 0.8 0.9"
    .venv/bin/python benchmarks/ablation.py --sparsity 0.8 $G --resume  # ~30 min, 1 thread
    .venv/bin/python benchmarks/ablation.py --sparsity 0.9 $G --resume  # (what the README quotes)
    .venv/bin/python benchmarks/ablation.py --quick    # seconds (smoke test)
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import _common as C

from hvgp.config import RunConfig

OUT = C.RESULTS / "ablation"  # + "_s<sparsity %>", e.g. ablation_s90


def train(results: C.ResultFile, base: RunConfig, method: str, p: float, seed: int,
          t_star: float | None = None) -> dict[str, Any]:
    """One run (or the stored one), scored on validation and test.

    ``t_star``: averaging start as a fraction of the epochs (default: ``base``'s).
    """
    t_star = base.averaging_start if t_star is None else t_star
    key = dict(method=method, drop_rate_p=p, seed=seed, epochs=base.epochs,
               sparsity_target=base.sparsity, averaging_start=t_star, recipe=base.recipe)
    old = results.find(**key)
    if old is not None:
        return old
    cfg = C.method_config(base, method, p, seed=seed, averaging_start=t_star)
    t0 = time.perf_counter()
    rec, _ = C.scored_run(cfg, validation=True)
    rec.update(key)
    results.add(rec)
    print(f"{method:16s} p={p:<6g} T*={t_star:<4g} seed {seed}: val ece {rec['val_ece']:.4f} nll "
          f"{rec['val_nll']:.4f} | test acc {rec['accuracy']:.4f} ece {rec['ece']:.4f} "
          f"({time.perf_counter() - t0:.0f}s)", flush=True)
    return rec


def mean(runs: list[dict[str, Any]], k: str) -> float:
    return statistics.fmean(r[k] for r in runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--drop-rates", type=float, nargs="+", default=[0.005, 0.01, 0.05, 0.1])
    ap.add_argument("--averaging-starts", type=float, nargs="+", default=[0.8],
                    help="T* values tried at the chosen p (fraction of the epochs)")
    ap.add_argument("--select-by", choices=["val_ece", "val_nll"], default="val_nll")
    ap.add_argument("--chosen", type=float, nargs=2, metavar=("P", "T"), default=None,
                    help="p and T* chosen elsewhere (tune_cigl.py): skip step 1")
    ap.add_argument("--extra-drop-rates", type=float, nargs="*", default=[],
                    help="further p for CigL and random-mask-only rows (e.g. 0.001 0.005)")
    ap.add_argument("--recipe", default="legacy", choices=("paper", "legacy"))
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--arch", default="cnn1d")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--data", default="mnist1d")
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--quick", action="store_true", help="tiny run for smoke tests (seconds)")
    ap.add_argument("--out", type=Path, default=None,
                    help="result path stem (default results/ablation_s<sparsity %%>)")
    args = ap.parse_args()
    tags = [f"s{round(100 * args.sparsity)}"] + [t for t in (
        args.recipe if args.recipe != "legacy" else "", args.arch if args.arch != "cnn1d" else "")
        if t]
    out = args.out or OUT.with_name(f"{OUT.name}_{'_'.join(tags)}")
    if args.quick:
        args.epochs, args.seeds, args.drop_rates = 2, [0], [0.01, 0.1]
        out = Path("/tmp/hvgp_bench_quick/ablation")
    C.setup_threads(args.threads)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    results = C.ResultFile(out.with_suffix(".json"), settings, resume=args.resume)
    for r in results.runs:  # runs stored before T* was recorded used RunConfig's default
        r.setdefault("averaging_start", RunConfig.averaging_start)
        r.setdefault("recipe", "legacy")
    base = RunConfig(data=args.data, arch=args.arch, width=args.width, sparsity=args.sparsity,
                     epochs=args.epochs, val_fraction=args.val_fraction, device=args.device,
                     recipe=args.recipe)
    if args.chosen is not None:
        fixed_study(args, results, base, out)
        return

    # 1. p on the validation split (at the default T*), then T* at that p
    crit = args.select_by
    other = "val_nll" if crit == "val_ece" else "val_ece"
    t0 = base.averaging_start
    by_p = {p: [train(results, base, "CigL", p, s) for s in args.seeds] for p in args.drop_rates}
    p_star = min(by_p, key=lambda p: mean(by_p[p], crit))
    by_t = {t: by_p[p_star] if t == t0 else
            [train(results, base, "CigL", p_star, s, t) for s in args.seeds]
            for t in args.averaging_starts}
    t_star = min(by_t, key=lambda t: mean(by_t[t], crit))
    lines = [f"### CigL's p, then T*, on the validation split ({100 * args.sparsity:g} % "
             f"sparsity, selected by mean {crit.replace('_', ' ')})", "",
             "| p | T* | val ECE | val NLL | test ECE | test acc (%) | test NLL | test Brier | |",
             "|---|---|---|---|---|---|---|---|---|"]
    grid = {**{(p, t0): r for p, r in by_p.items()}, **{(p_star, t): r for t, r in by_t.items()}}
    for (p, t), runs in grid.items():
        mark = "**chosen**" if (p, t) == (p_star, t_star) else ""
        lines.append(f"| {p:g} | {t:g} | {C.fmt([r['val_ece'] for r in runs])} "
                     f"| {C.fmt([r['val_nll'] for r in runs], 3)} | {test_cells(runs)} | {mark} |")
    alt = min(grid, key=lambda k: mean(grid[k], other))
    lines.append(f"\n(p, T*) chosen by {crit}: ({p_star:g}, {t_star:g}); lowest mean {other} "
                 f"in this table: ({alt[0]:g}, {alt[1]:g}) (acceptance.py follows {other}'s "
                 f"own path through the grid).\n")

    # 2. the four variants at the chosen p and T*
    var = {"RigL": [train(results, base, "RigL", 0.0, s) for s in args.seeds],
           "random mask only": [train(results, base, "random mask only", p_star, s)
                                for s in args.seeds],
           "averaging only": [train(results, base, "averaging only", 0.0, s, t_star)
                              for s in args.seeds],
           "CigL": by_t[t_star]}
    rig = mean(var["RigL"], "ece")
    lines += [f"### Ablation at p = {p_star:g}, T* = {t_star:g} ({len(args.seeds)} seeds, "
              f"{args.epochs} epochs)", "",
              "| variant | random mask | averaging | val ECE | ECE vs RigL | test ECE "
              "| test acc (%) | test NLL | test Brier |", "|---|---|---|---|---|---|---|---|---|"]
    flags = {"RigL": ("no", "no"), "random mask only": ("yes", "no"),
             "averaging only": ("no", "yes"), "CigL": ("yes", "yes")}
    for m, runs in var.items():
        red = 1 - mean(runs, "ece") / rig
        lines.append(f"| {m} | {flags[m][0]} | {flags[m][1]} | "
                     f"{C.fmt([r['val_ece'] for r in runs])} | {-100 * red:+.1f} % "
                     f"| {test_cells(runs)} |")
    md = "\n".join(lines)
    results.save(chosen_p=p_star, chosen_averaging_start=t_star, selected_by=crit,
                 alternative=list(alt),
                 summary={m: {k: mean(runs, k) for k in ("val_ece", "ece", "accuracy", "nll",
                                                        "brier")} for m, runs in var.items()})
    out.with_suffix(".md").write_text(md + "\n")
    print(md)


def fixed_study(args: argparse.Namespace, results: C.ResultFile, base: RunConfig,
                out: Path) -> None:
    """The four variants at the given (p, T*), then CigL / random mask only at further p;
    every row paired against RigL by seed (ECE, NLL, accuracy)."""
    from hvgp.metrics import paired_difference

    p_star, t_star = args.chosen
    rows: dict[str, list[dict[str, Any]]] = {
        "RigL": [train(results, base, "RigL", 0.0, s) for s in args.seeds],
        "averaging only": [train(results, base, "averaging only", 0.0, s, t_star)
                           for s in args.seeds]}
    for p in [p_star, *args.extra_drop_rates]:
        rows[f"random mask only (p={p:g})"] = [train(results, base, "random mask only", p, s)
                                              for s in args.seeds]
        rows[f"CigL (p={p:g})"] = [train(results, base, "CigL", p, s, t_star)
                                   for s in args.seeds]
    lines = [f"### Ablation at {100 * args.sparsity:g} % sparsity, {args.arch}, recipe "
             f"{args.recipe}, T* = {t_star:g} ({len(args.seeds)} seeds, {args.epochs} epochs; "
             f"chosen p = {p_star:g})", "",
             "| variant | test ECE (floor) | Δ ECE vs RigL | test acc (%) | Δ acc (points) "
             "| test NLL | Δ NLL | val NLL |", "|---|---|---|---|---|---|---|---|"]
    rig = rows["RigL"]
    for name, runs in rows.items():
        cells = []
        for metric, scale, lower in (("ece", 1, True), ("accuracy", 100, False),
                                     ("nll", 1, True)):
            if name == "RigL" or len(args.seeds) < 2:
                cells.append("–")
                continue
            d = paired_difference([r[metric] * scale for r in runs],
                                  [r[metric] * scale for r in rig], seeds=args.seeds,
                                  lower_is_better=lower, metric=metric, names=(name, "RigL"))
            cells.append(d.cell())
        floor = statistics.fmean(r.get("ece_floor", float("nan")) for r in runs)
        lines.append(f"| {name} | {C.fmt([r['ece'] for r in runs])} ({floor:.4f}) | {cells[0]} "
                     f"| {C.fmt([r['accuracy'] for r in runs], 2, 100)} | {cells[1]} "
                     f"| {C.fmt([r['nll'] for r in runs], 3)} | {cells[2]} "
                     f"| {C.fmt([r['val_nll'] for r in runs], 3)} |")
    md = "\n".join(lines)
    results.save(chosen_p=p_star, chosen_averaging_start=t_star,
                 summary={m: {k: mean(runs, k) for k in ("ece", "accuracy", "nll", "val_nll")}
                          for m, runs in rows.items()})
    out.with_suffix(".md").write_text(md + "\n")
    print(md)


def test_cells(runs: list[dict[str, Any]]) -> str:
    """Test ECE, accuracy, NLL and Brier cells (mean ± std over seeds)."""
    return (f"{C.fmt([r['ece'] for r in runs])} | {C.fmt([r['accuracy'] for r in runs], 2, 100)} "
            f"| {C.fmt([r['nll'] for r in runs], 3)} | {C.fmt([r['brier'] for r in runs], 3)}")


if __name__ == "__main__":
    main()
