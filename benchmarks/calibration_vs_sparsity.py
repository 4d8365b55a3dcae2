"""CigL vs RigL (+ dense reference) across sparsity: ECE, accuracy, NLL, Brier over seeds.

Settings (each trained through :func:`hvgp.experiment.run`, same splits and seeds for every
method; CigL and RigL share every hyper-parameter except the random mask and averaging):

- ``cnn1d``: MNIST-1D, 1-D CNN at ``--width``, sparsity 80/90/95/99 %;
- ``mlp``: MNIST-1D, MLP, same sparsities;
- ``digits``: scikit-learn digits, MLP, same sparsities;
- ``width``: the CNN at each of ``--widths`` and 80/90 % (over-parameterisation vs gain).

Writes ``benchmarks/results/calibration_vs_sparsity.{json,md,png}``: every run, a paired
bootstrap CI of ECE(CigL) - ECE(RigL) per seed, the paper-shaped ECE-reduction tables and
the ECE-vs-sparsity plot. ``--resume`` skips runs already in the JSON.

    .venv/bin/python benchmarks/calibration_vs_sparsity.py            # ~25 min on 1 thread
    .venv/bin/python benchmarks/calibration_vs_sparsity.py --quick    # seconds (smoke test)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import _common as C

from hvgp.config import RunConfig

OUT = C.RESULTS / "calibration_vs_sparsity"


def probs_folder() -> Path:
    """Per-run test predictions (probabilities + labels), kept out of git and re-scored by the
    report; one folder for every ``--out`` of this script (file names carry the setting)."""
    return OUT.parent / "probs" / "calibration_vs_sparsity"


def settings(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The (data, arch, width, sparsities, epochs) combinations to sweep, in run order."""
    out = []
    for name in args.settings:
        if name == "cnn1d":
            out.append(dict(name=f"{args.data}/cnn1d w{args.width:g}", data=args.data,
                            arch="cnn1d", width=args.width, sparsities=args.sparsities,
                            epochs=args.epochs))
        elif name == "mlp":
            out.append(dict(name=f"{args.data}/mlp", data=args.data, arch="mlp", width=1.0,
                            sparsities=args.sparsities, epochs=args.mlp_epochs))
        elif name == "digits":
            out.append(dict(name="digits/mlp", data="digits", arch="mlp", width=1.0,
                            sparsities=args.sparsities, epochs=args.digits_epochs))
        elif name == "width":
            for w in args.widths:
                out.append(dict(name=f"{args.data}/cnn1d w{w:g}", data=args.data, arch="cnn1d",
                                width=w, sparsities=args.width_sparsities, epochs=args.epochs,
                                seeds=args.width_seeds))
        else:
            raise ValueError(f"unknown setting {name!r}; valid: cnn1d, mlp, digits, width")
    for st in out:  # legacy runs keep the names they were stored under
        st["name"] += "".join(f" {t}" for t in (_recipe_tag(args), args.label) if t)
    return out


def _recipe_tag(args: argparse.Namespace) -> str:
    """The recipe's part of setting names ('' for the legacy recipe)."""
    return "" if args.recipe == "legacy" else args.recipe


def setting_runs(results: C.ResultFile, args: argparse.Namespace,
                 st: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs of setting ``st``; a labelled setting (e.g. a tuned CigL) without RigL runs of
    its own is paired with the RigL runs of the unlabelled setting (RigL has no p or T*)."""
    runs = C.select(results.runs, setting=st["name"], epochs=st["epochs"])
    if args.label and not C.select(runs, method="RigL"):
        plain = st["name"].removesuffix(f" {args.label}")
        runs += C.select(results.runs, setting=plain, epochs=st["epochs"], method="RigL")
    return runs


def sweep(args: argparse.Namespace, results: C.ResultFile) -> None:
    """Train every (setting, sparsity, seed, method) once; RigL/CigL pairs get a paired CI."""
    from hvgp.metrics import bootstrap_ece_diff

    base = RunConfig(device=args.device, lr=args.lr, weight_decay=args.weight_decay,
                     averaging_start=args.averaging_start, val_fraction=args.val_fraction,
                     recipe=args.recipe)
    ci = results.extra.setdefault("ece_diff_ci", [])
    for st in settings(args):
        seeds = st.get("seeds") or args.seeds
        plan = [(s, seed, m) for s in st["sparsities"] for seed in seeds
                for m in args.methods]
        if args.dense and not st.get("seeds"):
            plan += [(0.0, seed, "dense") for seed in seeds]
        rigl_probs: dict[tuple[float, int], Any] = {}
        for sparsity, seed, method in plan:
            key = dict(setting=st["name"], method=method, sparsity_target=sparsity,
                       seed=seed, epochs=st["epochs"])
            if results.find(**key):
                continue
            cfg = C.method_config(base, method, args.drop_rate, data=st["data"],
                                  arch=st["arch"], width=st["width"], sparsity=sparsity,
                                  epochs=st["epochs"], seed=seed)
            t0 = time.perf_counter()
            rec, res = C.scored_run(cfg)
            rec.update(key)
            C.save_predictions(probs_folder(), key, res.samples.mean(), res.labels)
            results.add(rec)
            print(f"[{st['name']}] {method:5s} s={sparsity:.2f} seed {seed}: "
                  f"acc {rec['accuracy']:.4f} ece {rec['ece']:.4f} nll {rec['nll']:.4f} "
                  f"brier {rec['brier']:.4f} ({time.perf_counter() - t0:.0f}s)", flush=True)
            if method == "RigL":
                rigl_probs[sparsity, seed] = res.samples.mean()
            elif method == "CigL" and (sparsity, seed) in rigl_probs:
                d, lo, hi = bootstrap_ece_diff(res.samples.mean(), rigl_probs.pop((sparsity, seed)),
                                               res.labels, n_boot=args.n_boot, seed=seed)
                ci.append({**key, "method": "CigL-RigL", "ece_diff": d, "lo": lo, "hi": hi})
                results.save()


def report(args: argparse.Namespace, results: C.ResultFile) -> str:
    """Markdown tables (one per setting) and the plot; returns the markdown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hvgp.plots import calibration_vs_sparsity

    parts, summary, paired = [], {}, {}
    for st in settings(args):
        runs = setting_runs(results, args, st)
        table, nums = C.reduction_table(runs, st["sparsities"])
        if not nums:
            continue
        ptable, pnums = C.paired_sparsity_table(runs, st["sparsities"])
        if pnums:
            table = (f"{ptable}\n\n{acceptance_table(runs, st['sparsities'])}\n\n"
                     f"Means ± std over seeds:\n\n{table}")
            paired[st["name"]] = pnums
        dense = C.select(runs, method="dense")
        note = ""
        if dense:
            note = (f"\nDense reference ({len(dense)} seeds): ECE "
                    f"{C.fmt([r['ece'] for r in dense])}, accuracy "
                    f"{C.fmt([r['accuracy'] for r in dense], 2, 100)} %, NLL "
                    f"{C.fmt([r['nll'] for r in dense], 3)}.\n")
        cis = [c for c in results.extra.get("ece_diff_ci", []) if c["setting"] == st["name"]
               and c["epochs"] == st["epochs"]]
        sig = sum(c["hi"] < 0 for c in cis)
        ci_note = (f"Paired bootstrap (test set, 95 %): ECE(CigL) < ECE(RigL) significantly in "
                   f"{sig} of {len(cis)} (sparsity, seed) pairs.\n") if cis else ""
        parts.append(f"### {st['name']} ({st['epochs']} epochs)\n\n{table}\n{note}{ci_note}")
        summary[st["name"]] = nums
    if "width" in args.settings:
        parts.append(width_table(args, results))
    results.save(summary=summary, paired=paired)
    names = [st["name"] for st in settings(args) if "cnn1d" in st["name"] or "mlp" in st["name"]]
    main_runs = [r for r in results.runs if r["method"] in ("RigL", "CigL")
                 and r["setting"] in names]
    records = [{"method": f"{r['method']} ({'MLP' if r['arch'] == 'mlp' else 'CNN'})",
                "sparsity": r["sparsity_target"], "ece": r["ece"]} for r in main_runs]
    records += [{"method": f"calibrated floor ({'MLP' if r['arch'] == 'mlp' else 'CNN'})",
                 "sparsity": r["sparsity_target"], "ece": r["ece_floor"]}
                for r in main_runs if "ece_floor" in r]
    if records:
        fig = _plot(records, calibration_vs_sparsity)
        fig.savefig(OUT.with_suffix(".png"), dpi=120)
        plt.close(fig)
    md = "\n".join(parts)
    OUT.with_suffix(".md").write_text(md + "\n")
    return md


def acceptance_table(runs: list[dict[str, Any]], sparsities: list[float]) -> str:
    """#14's goal per sparsity: CigL's excess ECE (ECE − floor) at most half of RigL's, the
    paired ECE difference significant (p < 0.05), accuracy no lower than RigL − 0.3 points."""
    import statistics

    from hvgp.metrics import paired_difference

    lines = ["| sparsity | RigL excess ECE | CigL excess ECE | ratio | Δ ECE paired p "
             "| Δ accuracy (points) | goal met |", "|---|---|---|---|---|---|---|"]
    for s in sparsities:
        by = {m: {r["seed"]: r for r in C.select(runs, method=m, sparsity_target=s)
                  if "ece_floor" in r} for m in ("RigL", "CigL")}
        seeds = sorted(set(by["RigL"]) & set(by["CigL"]))
        if len(seeds) < 2:
            continue
        ex = {m: statistics.fmean(by[m][k]["ece"] - by[m][k]["ece_floor"] for k in seeds)
              for m in by}
        d = paired_difference([by["CigL"][k]["ece"] for k in seeds],
                              [by["RigL"][k]["ece"] for k in seeds], seeds=seeds)
        acc = statistics.fmean(100 * (by["CigL"][k]["accuracy"] - by["RigL"][k]["accuracy"])
                               for k in seeds)
        ratio = ex["CigL"] / ex["RigL"] if ex["RigL"] > 0 else float("inf")
        met = (ex["CigL"] <= 0.5 * ex["RigL"] and d.mean < 0 and d.t_p_value < 0.05
               and acc >= -0.3)
        lines.append(f"| {100 * s:g} % | {ex['RigL']:.4f} | {ex['CigL']:.4f} | {ratio:.2f} "
                     f"| {d.t_p_value:.2g} ({d.mean:+.4f}) | {acc:+.2f} | "
                     f"{'yes' if met else 'no'} | ")
    return "\n".join(lines)


def width_table(args: argparse.Namespace, results: C.ResultFile) -> str:
    """CigL's ECE gain per CNN width at the width sparsities (over-parameterisation)."""
    lines = ["### CNN width vs CigL's gain (MNIST-1D)", "",
             "| width | sparsity | RigL ECE | CigL ECE | ECE reduction | acc CigL - RigL "
             "(points) | seeds |", "|---|---|---|---|---|---|---|"]
    for w in sorted({*args.widths, args.width}):
        runs = C.select(results.runs, setting=f"{args.data}/cnn1d w{w:g}", epochs=args.epochs)
        _, nums = C.reduction_table(runs, args.width_sparsities)
        for n in nums:
            lines.append(f"| {w:g} | {100 * n['sparsity']:g} % | {n['rigl_ece']:.4f} "
                         f"| {n['cigl_ece']:.4f} | {100 * n['ece_reduction']:+.1f} % "
                         f"| {n['accuracy_diff_points']:+.2f} | {n['seeds']} |")
    return "\n".join(lines) + "\n"


def _plot(records: list[dict[str, Any]], plot: Any) -> Any:
    """ECE against sparsity per method (mean ± std over seeds), titled with the data set."""
    fig = plot(records, metric="ece")
    ax = fig.axes[0]
    ax.set_yscale("log")
    for container in ax.containers:
        if "floor" in str(container.get_label()):
            container.lines[0].set_linestyle("--")
    ax.set_title("MNIST-1D: ECE vs sparsity (mean ± std over seeds)\ndashed: ECE of a perfectly "
                 "calibrated predictor with the same confidences", fontsize="x-small")
    ax.legend(fontsize="x-small", ncol=2)
    return fig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", nargs="+", default=["cnn1d", "mlp", "digits", "width"])
    ap.add_argument("--data", default="mnist1d-large",
                    help="MNIST-1D variant of the cnn1d/mlp/width settings: mnist1d-large "
                         "(20 000 test signals, default) or mnist1d (the standard 1000)")
    ap.add_argument("--sparsities", type=float, nargs="+", default=[0.8, 0.9, 0.95, 0.99])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--epochs", type=int, default=100,
                    help="CNN epochs (100: the budget on which helper benchmark "
                         "cigl_vs_rigl_mnist1d found CigL's gain)")
    ap.add_argument("--mlp-epochs", type=int, default=50)
    ap.add_argument("--digits-epochs", type=int, default=40)
    ap.add_argument("--width", type=float, default=1.0, help="width of the main CNN sweep")
    ap.add_argument("--widths", type=float, nargs="+", default=[0.5, 2.0])
    ap.add_argument("--width-sparsities", type=float, nargs="+", default=[0.8, 0.9])
    ap.add_argument("--width-seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--recipe", default="legacy", choices=("paper", "legacy"),
                    help="training recipe (hvgp.infer.recipes.RECIPES); names of non-legacy "
                         "settings carry it, e.g. 'mnist1d-large/mlp paper'")
    ap.add_argument("--label", default="", help="suffix of the setting names (e.g. 'tuned')")
    ap.add_argument("--methods", nargs="+", default=["RigL", "CigL"],
                    help="methods per (sparsity, seed): RigL and/or CigL (RigL does not depend "
                         "on p or T*, so a tuned CigL needs only CigL runs)")
    ap.add_argument("--drop-rate", type=float, default=0.01, help="CigL's random-mask rate p")
    ap.add_argument("--averaging-start", type=float, default=0.8)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--val-fraction", type=float, default=0.0,
                    help="nothing is tuned here, so all training data are used (as helper "
                         "benchmark cigl_vs_rigl_mnist1d does)")
    ap.add_argument("--no-dense", dest="dense", action="store_false")
    ap.add_argument("--n-boot", type=int, default=500)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--resume", action="store_true", help="skip runs already in the JSON")
    ap.add_argument("--report-only", action="store_true", help="rebuild tables/plot from JSON")
    ap.add_argument("--merge", nargs="*", default=[],
                    help="result JSONs of other invocations (e.g. a parallel width sweep) to "
                         "fold into this one before reporting")
    ap.add_argument("--quick", action="store_true", help="tiny run for smoke tests (seconds)")
    ap.add_argument("--out", default=None, help="result path stem (default results/...)")
    args = ap.parse_args()
    global OUT
    if args.quick:
        args.epochs, args.mlp_epochs, args.digits_epochs, args.seeds = 2, 2, 2, [0]
        args.sparsities, args.width_sparsities, args.widths = [0.9], [0.9], [0.5]
        args.width_seeds = [0]
        args.n_boot = 50
        OUT = Path("/tmp/hvgp_bench_quick/calibration_vs_sparsity")
    if args.out:
        OUT = Path(args.out)
    C.setup_threads(args.threads)
    results = C.ResultFile(OUT.with_suffix(".json"), vars(args).copy(),
                           resume=args.resume or args.report_only)
    for path in args.merge:
        other = json.loads(Path(path).read_text())
        keys = ("setting", "method", "sparsity_target", "seed", "epochs")
        results.runs += [r for r in other["runs"]
                         if not results.find(**{k: r[k] for k in keys})]
        ci = results.extra.setdefault("ece_diff_ci", [])
        ci += [c for c in other["extra"].get("ece_diff_ci", [])
               if not any(all(c[k] == o[k] for k in keys) for o in ci)]
        results.extra["commands"] += other["extra"].get("commands", [])
    if not args.report_only:
        sweep(args, results)
    n = C.rescore(results.runs, probs_folder(),
                  ("setting", "method", "sparsity_target", "seed", "epochs"))
    print(f"calibration evidence (floor, debiased CE) from kept predictions: {n} runs")
    print(report(args, results))


if __name__ == "__main__":
    main()
