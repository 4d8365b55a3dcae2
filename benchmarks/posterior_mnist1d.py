"""Sampled posteriors of CigL vs point CigL and peers on MNIST-1D large (issue 18).

Per seed, at 90 % sparsity, on the 20 000 test signals (OOD AUROC: clean vs
``mnist1d-large-shift``, by predictive entropy), every variant with S = 32 samples:

- ``point S=1`` / ``point S=32``: CigL's averaged network, deterministic / 32 draws of Z
  (the reference of every paired difference); ``swag S=32``: SWAG on the sparse support
  (Z and weights). Point and SWAG come from *one* training run (``posterior="swag"``: the
  mean network is point CigL's bit for bit), so their difference is the posterior's only;
- ``variational S=32``: learned σ (``posterior="variational"``), its own training run
  (same seed, data order and initial weights);
- peers (``--peers``): MC dropout, ``ensemble-equal`` (a deep ensemble at CigL's non-zero
  count), last-layer ``laplace``, each its own run.

Every run goes through :func:`hvgp.experiment.run` (``RunConfig``), then is re-scored here with
the Z / weight draws seeded alike for every variant. Writes
``benchmarks/results/posterior_mnist1d_<arch>.{json,md,png}``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/posterior_mnist1d.py --arch mlp
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/posterior_mnist1d.py --arch cnn1d
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/posterior_mnist1d.py --quick   # smoke test
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import _common as C
from swag_posterior import KEEP, _big_batches, _predict, paired

from hvgp.config import RunConfig
from hvgp.data import get_loaders
from hvgp.experiment import run
from hvgp.metrics import classification_report, ood_auroc

DATA = "mnist1d-large"
POSTERIORS = ("point", "variational", "swag")
PEERS = ("mc-dropout", "ensemble-equal", "laplace")


def _csv(text: str, valid: tuple[str, ...], what: str) -> list[str]:
    """A comma-separated subset of ``valid`` (ValueError naming the bad entries)."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = sorted(set(items) - set(valid))
    if bad:
        raise ValueError(f"unknown {what} {bad}; valid: {', '.join(valid)}")
    return items


def _config(args: argparse.Namespace, model: str, seed: int, **options: Any) -> RunConfig:
    """The run of ``model`` at the benchmark's data, architecture, sparsity and budget."""
    return RunConfig(model=model, data=DATA, arch=args.arch, width=args.width,
                     sparsity=args.sparsity, epochs=args.epochs, seed=seed, device="cpu",
                     model_options=options)


def _score(est: Any, test: Any, shift: Any, nonzero: int, **kw: Any) -> dict[str, Any]:
    """The metrics of one prediction variant (seeded draws), with OOD AUROC and size."""
    t0 = time.perf_counter()
    samples, y = _predict(est, test, **kw)
    row = {k: v for k, v in classification_report(samples, y).items() if k in KEEP}
    row["ood_auroc"] = ood_auroc(samples, _predict(est, shift, **kw)[0])
    row["predict_s"], row["nonzero"] = time.perf_counter() - t0, nonzero
    return row


def one_seed(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """Every variant of one seed: trained through ``hvgp.experiment.run``, scored here."""
    s = args.num_samples
    _, _, test, _ = get_loaders(DATA, batch_size=512, seed=seed)
    test = _big_batches(test)
    shift = _big_batches(get_loaders(f"{DATA}-shift", batch_size=512, seed=seed)[2])
    plan: list[tuple[RunConfig, list[tuple[str, dict[str, Any]]]]] = []
    if {"point", "swag"} & set(args.posteriors):  # one run gives both
        plan.append((_config(args, "cigl", seed, posterior="swag"),
                     [(f"point S={n}", {"num_samples": None if n == 1 else n,
                                        "posterior": "point"}) for n in (1, s)]
                     + ([(f"swag S={s}", {"num_samples": s})]
                        if "swag" in args.posteriors else [])))
    if "variational" in args.posteriors:
        plan.append((_config(args, "cigl", seed, posterior="variational"),
                     [(f"variational S={s}", {"num_samples": s})]))
    for peer in args.peers:
        plan.append((_config(args, peer, seed), [(f"{peer} S={s}", {"num_samples": s})]))
    out: dict[str, Any] = {"setting": args.arch, "seed": seed, "train_s": {}, "variants": {}}
    for cfg, variants in plan:
        result = run(cfg, shift=False)  # scored deterministically there; re-scored below
        est = result.estimator
        out["train_s"][cfg.model + ":" + str(cfg.model_options.get("posterior", ""))] = \
            result.train_seconds
        for name, kw in variants:
            kw = dict(kw, num_samples=est.run_samples(kw["num_samples"] or 1))
            out["variants"][name] = row = _score(est, test, shift, result.nonzero_params, **kw)
            print(f"  {args.arch} seed {seed} {name:24s} nll {row['nll']:.4f} "
                  f"ece {row['ece']:.4f} acc {row['accuracy']:.4f} "
                  f"auroc {row['ood_auroc']:.3f} ({row['predict_s']:.0f}s)", flush=True)
    return out


def report(result: dict[str, Any]) -> str:
    """Markdown: mean ± sd per variant, then paired differences vs point CigL (S = 32)."""
    a, runs = result["args"], result["runs"]
    cols = [*KEEP, "ood_auroc", "nonzero"]
    lines = [f"# Sampled posteriors vs point CigL: {DATA}, {a['arch']}", "",
             f"Sparsity {a['sparsity']:.0%}, {a['epochs']} epochs, S = {a['num_samples']}, "
             f"seeds {a['seeds']}; 20 000 test signals; OOD AUROC clean vs `{DATA}-shift` "
             "(predictive entropy). Point and SWAG share one training run per seed.", "",
             "| variant | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for name in runs[0]["variants"]:
        cells = [C.fmt([r["variants"][name][c] for r in runs], 0 if c == "nonzero" else 4)
                 for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    ref = list(runs[0]["variants"])[1]
    lines += ["", f"Paired difference vs `{ref}` (variant − reference; mean, 95 % t interval, "
              "t-test p, wins of the variant / n):", "",
              "| variant | metric | mean | 95 % CI | p | wins |", "|---|---|---|---|---|---|"]
    for name, metrics in result["paired"].items():
        for metric, d in metrics.items():
            lines.append(f"| {name} | {metric} | {d['mean']:+.4f} | [{d['ci_low']:+.4f}, "
                         f"{d['ci_high']:+.4f}] | {d['t_p_value']:.3f} | {d['a_wins']}/{d['n']} |")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    """NLL, debiased ECE and OOD AUROC per variant (mean ± sd over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    runs = result["runs"]
    names = list(runs[0]["variants"])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5), constrained_layout=True)
    for ax, metric in zip(axes, ("nll", "ece_debiased", "ood_auroc"), strict=True):
        vals = np.array([[r["variants"][n][metric] for r in runs] for n in names])
        ax.barh(names, vals.mean(1), xerr=vals.std(1), color="tab:blue", alpha=0.7)
        ax.set_xlabel(metric)
        ax.invert_yaxis()
    fig.suptitle(f"{DATA} {result['args']['arch']}, {result['args']['sparsity']:.0%} sparse")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", choices=("mlp", "cnn1d"), default="mlp")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--sparsity", type=float, default=0.9)
    p.add_argument("--num-samples", type=int, default=32)
    p.add_argument("--posteriors", default=",".join(POSTERIORS),
                   help=f"comma-separated subset of {', '.join(POSTERIORS)}")
    p.add_argument("--peers", default=",".join(PEERS),
                   help=f"comma-separated subset of {', '.join(PEERS)} ('' for none)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 1 epoch, 2 seeds (a paired test needs 2), S = 4, "
                   "width 0.25, no peers")
    p.add_argument("--out", default=None, help="output stem (default: benchmarks/results/"
                   "posterior_mnist1d_<arch>)")
    args = p.parse_args(argv)
    args.posteriors = _csv(args.posteriors, POSTERIORS, "posteriors")
    args.peers = _csv(args.peers, PEERS, "peers")
    if "point" not in args.posteriors:
        raise ValueError("--posteriors must include point: it is the paired reference")
    C.setup_threads(1)
    if args.quick:
        args.epochs, args.seeds, args.num_samples, args.width = 1, [0, 1], 4, 0.25
        args.peers = []
    t0 = time.perf_counter()
    runs = [one_seed(args, seed) for seed in args.seeds]
    result = {"args": vars(args), "command": C.command(), "machine": C.machine(), "runs": runs,
              "paired": paired(runs, args.arch), "total_s": time.perf_counter() - t0}
    out = Path(args.out or C.RESULTS / f"posterior_mnist1d_{args.arch}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1, default=str))
    text = report(result)
    out.with_suffix(".md").write_text(text + f"\n\nTotal {result['total_s']:.0f} s.\n")
    plot(result, out.with_suffix(".png"))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
