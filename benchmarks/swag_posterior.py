"""CigL point vs CigL-SWAG on the sparse support: paired NLL / ECE over seeds (issue 18).

One training run per (setting, seed) with ``posterior="swag"`` (the averaging keeps the
moments; training and the mean network are those of point CigL bit for bit), then every
prediction variant from that same run, so a paired difference is the posterior's effect only:

- ``point S=1``: the averaged network, deterministic;
- ``point S=32``: CigL's MC prediction (32 draws of the random mask Z) - the reference
  of every paired difference;
- ``swag S=32``: 32 SWAG weight samples (K = ``--rank`` deviation columns, scale 1/2) + Z;
- ``swag-diag S=32``: the diagonal part only (N(θ̄, Σ_diag)), from the same moments;
- ``swag no-BN S=32`` (networks with BatchNorm): samples keep the mean's BN statistics.

Settings: scikit-learn digits (MLP, 90 % sparse) and MNIST-1D large (MLP; 20 000 test
signals, plus OOD AUROC against ``mnist1d-large-shift``), optionally the 1-D CNN on MNIST-1D
(``--settings ... cnn``, BatchNorm refit vs not). Writes
``benchmarks/results/swag_posterior.{json,md}``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/swag_posterior.py          # ~5 min, 1 thread
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/swag_posterior.py --quick  # seconds
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import _common as C
import torch
from torch.utils.data import DataLoader

from hvgp.config import RunConfig
from hvgp.data import get_loaders
from hvgp.experiment import build_estimator
from hvgp.metrics import classification_report, ood_auroc, paired_difference
from hvgp.predict import PredictiveSamples
from hvgp.utils import seed_everything

OUT = C.RESULTS / "swag_posterior"
KEEP = ("accuracy", "nll", "ece", "ece_floor", "ece_debiased", "brier", "mutual_information")


def settings(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The (name, data, arch, width, epochs) of each ``--settings`` entry."""
    table = {
        "digits": dict(name="digits/mlp", data="digits", arch="mlp", width=1.0,
                       epochs=args.digits_epochs),
        "mnist1d": dict(name="mnist1d-large/mlp", data="mnist1d-large", arch="mlp", width=1.0,
                        epochs=args.mnist1d_epochs),
        "cnn": dict(name="mnist1d/cnn1d w0.5", data="mnist1d", arch="cnn1d", width=0.5,
                    epochs=args.mnist1d_epochs),
    }
    unknown = set(args.settings) - set(table)
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}; valid: {', '.join(table)}")
    return [table[s] for s in args.settings]


def _big_batches(loader: Any) -> DataLoader:
    """The test split in batches of 4096 (prediction is per batch and sample: fewer calls)."""
    return DataLoader(loader.dataset, batch_size=4096, shuffle=False)


def _predict(est: Any, loader: Any, **kw: Any) -> tuple[PredictiveSamples, torch.Tensor]:
    """Predictions on ``loader`` with the Z draws seeded alike for every variant."""
    torch.manual_seed(12345)
    return est.predict_loader(loader, **kw)


def relative_std(post: Any) -> float:
    """RMS posterior std of the active masked weights over their RMS mean: how far the SWAG
    samples can move from the averaged network (the diagonal part)."""
    var = torch.cat([post.var[n] for n, s in post.support.items() if s is not None])
    mean = torch.cat([post.mean[n][s] for n, s in post.support.items() if s is not None])
    return float(var.mean().sqrt() / mean.pow(2).mean().sqrt())


def one_run(setting: dict[str, Any], seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Train one SWAG-CigL and score every prediction variant on the test split."""
    cfg = RunConfig(model="cigl", data=setting["data"], arch=setting["arch"],
                    width=setting["width"], sparsity=args.sparsity, epochs=setting["epochs"],
                    seed=seed, device="cpu",
                    model_options={"posterior": "swag", "swag_rank": args.rank})
    seed_everything(seed)
    train, _, test, info = get_loaders(cfg.data, batch_size=cfg.batch_size, seed=seed)
    test = _big_batches(test)
    est = build_estimator(cfg, info)
    t0 = time.perf_counter()
    est.fit(train, epochs=cfg.epochs)
    train_s = time.perf_counter() - t0
    shift = None
    if cfg.data.startswith("mnist1d"):
        shift = _big_batches(get_loaders(f"{cfg.data}-shift", batch_size=512, seed=seed)[2])
    s = args.num_samples
    full = est.swag_
    variants: dict[str, tuple[dict[str, Any], Any]] = {
        "point S=1": ({"num_samples": None}, full),
        f"point S={s}": ({"num_samples": s, "posterior": "point"}, full),
        f"swag S={s}": ({"num_samples": s}, full),
        f"swag-diag S={s}": ({"num_samples": s}, dataclasses.replace(full, dev={})),
    }
    bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in est.net.modules())
    if bn:
        variants[f"swag no-BN S={s}"] = ({"num_samples": s, "bn_batches": 0}, full)
    out: dict[str, Any] = {"setting": setting["name"], "seed": seed, "train_s": train_s,
                           "snapshots": full.count, "posterior_numel": full.numel(),
                           "relative_std": relative_std(full),
                           "nonzero": est.nonzero(), "variants": {}}
    for name, (kw, post) in variants.items():
        bn_batches = kw.pop("bn_batches", args.bn_batches)
        est.swag_, est._swag_nets, est.swag_bn_batches = post, [], bn_batches
        t0 = time.perf_counter()
        samples, y = _predict(est, test, **kw)
        row = {k: v for k, v in classification_report(samples, y).items() if k in KEEP}
        row["predict_s"] = time.perf_counter() - t0
        if shift is not None:
            row["ood_auroc"] = ood_auroc(samples, _predict(est, shift, **kw)[0])
        out["variants"][name] = row
        print(f"  {setting['name']} seed {seed} {name:18s} nll {row['nll']:.4f} "
              f"ece {row['ece']:.4f} acc {row['accuracy']:.4f} ({row['predict_s']:.1f}s)",
              flush=True)
    return out


def reference(run: dict[str, Any]) -> str:
    """The variant every other one is paired against: point CigL's MC prediction."""
    return list(run["variants"])[1]


def paired(runs: list[dict[str, Any]], setting: str) -> dict[str, dict[str, Any]]:
    """Per variant: paired difference (variant - reference) of NLL, ECE, debiased ECE."""
    mine = sorted((r for r in runs if r["setting"] == setting), key=lambda r: r["seed"])
    seeds, ref = [r["seed"] for r in mine], reference(mine[0])
    out: dict[str, dict[str, Any]] = {}
    for name in mine[0]["variants"]:
        if name == ref:
            continue
        out[name] = {}
        for metric in ("nll", "ece", "ece_debiased") + (
                ("ood_auroc",) if "ood_auroc" in mine[0]["variants"][name] else ()):
            d = paired_difference([r["variants"][name][metric] for r in mine],
                                  [r["variants"][ref][metric] for r in mine],
                                  seeds=seeds, metric=metric, names=(name, ref),
                                  lower_is_better=metric != "ood_auroc")
            out[name][metric] = dataclasses.asdict(d) | {"seeds": seeds}
    return out


def report(result: dict[str, Any]) -> str:
    """The Markdown tables: mean ± sd per variant, then the paired differences."""
    lines = ["# CigL point vs CigL-SWAG on the sparse support", "",
             f"Sparsity {result['args']['sparsity']:.0%}, S = {result['args']['num_samples']}, "
             f"K = {result['args']['rank']}, BatchNorm refit on {result['args']['bn_batches']} "
             f"training batches per sample; seeds {result['args']['seeds']}; one training run "
             "per seed (posterior='swag'), every variant predicted from it.", ""]
    for setting, pairs in result["paired"].items():
        runs = [r for r in result["runs"] if r["setting"] == setting]
        lines += [f"## {setting}", "",
                  f"{runs[0]['snapshots']} snapshots; posterior stores "
                  f"{runs[0]['posterior_numel']} numbers of the masked weights (nnz "
                  f"{runs[0]['posterior_numel']['nnz']}); RMS posterior std / RMS weight "
                  f"{C.fmt([r['relative_std'] for r in runs])}; train "
                  f"{C.fmt([r['train_s'] for r in runs], 1)} s",
                  ""]
        cols = [k for k in KEEP + ("ood_auroc", "predict_s") if k in
                runs[0]["variants"][reference(runs[0])]]
        lines += ["| variant | " + " | ".join(cols) + " |",
                  "|---|" + "---|" * len(cols)]
        for name in runs[0]["variants"]:
            cells = [C.fmt([r["variants"][name][c] for r in runs]) for c in cols]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines += ["", f"Paired difference vs `{reference(runs[0])}` (variant − reference; "
                  "mean, 95 % t interval, t-test p, wins of the variant / n):", "",
                  "| variant | metric | mean | 95 % CI | p | wins |", "|---|---|---|---|---|---|"]
        for name, metrics in pairs.items():
            for metric, d in metrics.items():
                lines.append(f"| {name} | {metric} | {d['mean']:+.4f} | [{d['ci_low']:+.4f}, "
                             f"{d['ci_high']:+.4f}] | {d['t_p_value']:.3f} | "
                             f"{d['a_wins']}/{d['n']} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--settings", nargs="+", default=["digits", "mnist1d"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--sparsity", type=float, default=0.9)
    p.add_argument("--digits-epochs", type=int, default=60)
    p.add_argument("--mnist1d-epochs", type=int, default=60)
    p.add_argument("--num-samples", type=int, default=32)
    p.add_argument("--rank", type=int, default=10)
    p.add_argument("--bn-batches", type=int, default=10)
    p.add_argument("--quick", action="store_true", help="tiny budgets (smoke test)")
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    C.setup_threads(1)
    if args.quick:
        args.digits_epochs = args.mnist1d_epochs = 5
        args.num_samples, args.seeds = 4, [0, 1]
    t0 = time.perf_counter()
    runs = [one_run(s, seed, args) for s in settings(args) for seed in args.seeds]
    result = {"args": vars(args), "command": C.command(), "machine": C.machine(), "runs": runs,
              "paired": {s["name"]: paired(runs, s["name"]) for s in settings(args)},
              "total_s": time.perf_counter() - t0}
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1, default=str))
    out.with_suffix(".md").write_text(report(result) + f"\nTotal {result['total_s']:.0f} s.\n")
    print(report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
