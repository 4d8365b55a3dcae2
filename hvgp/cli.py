"""``hvgp`` command line: train, evaluate, compare and sweep calibrated sparse networks.

Every sub-command goes through :mod:`hvgp.experiment`, so a run started here is the same
as one started from Python. Errors print one line that says what to do and exit with 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from hvgp.config import RunConfig, load_config
from hvgp.registry import get_model, model_names

__all__ = ["main", "build_parser"]

_EPILOG = """examples:
  hvgp train --model cigl --data mnist1d --arch cnn1d --sparsity 0.9 --epochs 100 --out runs/cigl
  hvgp evaluate runs/cigl --shift
  hvgp compare --models cigl,rigl,dense --data mnist1d --seeds 0,1,2 --out runs/compare
  hvgp sweep --models cigl,rigl --sparsity 0.8,0.9,0.95,0.99 --seeds 0,1,2 --out runs/sweep
  hvgp tune --data mnist1d-large --arch mlp --epochs 50 --out runs/tune
  hvgp train --config runs/tune/chosen.toml --seed 0 --out runs/tuned
  hvgp list
"""

_HELP = {
    "model": "method to train (see `hvgp list`)",
    "data": "data set (see `hvgp list`)",
    "arch": "network: mlp, cnn1d, wrn-22-2, resnet18, resnet50",
    "width": "channel / hidden-width multiplier (over-parameterisation)",
    "sparsity": "global fraction of zero weights, in [0, 1)",
    "drop_rate": "random-mask rate p of CigL (0.01 in the paper; 0.1 for harder tasks)",
    "sparse_init": "mask allocation: erk, er or uniform",
    "epochs": "training epochs",
    "batch_size": "minibatch size",
    "lr": "learning rate",
    "weight_decay": "weight decay (= Gaussian prior precision / N)",
    "optimizer": "sgd (Nesterov momentum 0.9) or adam",
    "lr_schedule": "recipe (the recipe's), multistep (StepLR), cosine or constant",
    "recipe": "training recipe: paper (the released code's: StepLR x0.5, no decay on 1-D "
              "parameters, U*Z/(1-p) averaged) or legacy (hvgp 0.x: cosine to zero)",
    "delta_t": "RigL update interval in steps",
    "t_end": "fraction of training after which the mask stops changing",
    "drop_fraction": "initial RigL drop fraction (rewired share of active weights)",
    "averaging_start": "fraction of epochs after which weights are averaged (CigL)",
    "num_samples": "random-mask samples at prediction (1 = the deterministic averaged model)",
    "val_fraction": "fraction of the training split held out for validation",
    "seed": "random seed (data split, init, masks, minibatches)",
    "device": "auto, cpu or cuda",
}


_OPTION = "option:"  # argparse dest prefix of the models' own options


def model_options() -> dict[str, tuple[Any, list[str]]]:
    """Every registered model option: name -> (default, models that have it)."""
    table: dict[str, tuple[Any, list[str]]] = {}
    for name in model_names():
        for key, default in get_model(name).options.items():
            table.setdefault(key, (default, []))[1].append(name)
    return table


def _add_run_options(p: argparse.ArgumentParser, skip: Sequence[str] = ()) -> None:
    """One ``--flag`` per :class:`RunConfig` field and per model option (the registry's
    ``options``); defaults stay None so files can fill them."""
    p.add_argument("--config", type=Path, help="TOML or JSON file with run options")
    for key, (default, owners) in model_options().items():
        kind = _bool if isinstance(default, bool) else type(default)
        p.add_argument(f"--{key.replace('_', '-')}", dest=_OPTION + key, type=kind,
                       default=None, help=f"option of {', '.join(owners)} (default: {default})")
    for f in fields(RunConfig):
        if f.name in skip or f.name == "model_options":
            continue
        kind = {"int": int, "float": float, "str": str}[str(f.type)]
        p.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=kind, default=None,
                       help=f"{_HELP.get(f.name, f.name)} (default: {f.default})")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _bool(text: str) -> bool:
    """A yes/no flag value (``bool("false")`` would be True)."""
    value = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
    try:
        return value[text.strip().lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}") from None


def _csv(kind: type) -> Any:
    def parse(text: str) -> list[Any]:
        try:
            return [kind(t) for t in text.split(",") if t.strip()]
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list: {e}") from e

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hvgp", description="Calibrated sparse networks as probabilistic programs (CigL).",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one model, save checkpoint, metrics and plots")
    _add_run_options(p)
    p.add_argument("--out", type=Path, required=True, help="run folder (created)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.pt of an interrupted run (same settings)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a finished or unfinished run in OUT (refused without it)")

    p = sub.add_parser("evaluate", help="re-score a saved run (optionally on shifted data)")
    p.add_argument("run", type=Path, help="run folder written by `hvgp train`")
    p.add_argument("--data", help="another data set with the same input shape")
    p.add_argument("--shift", action="store_true", help="use the shifted variant of the data")
    p.add_argument("--num-samples", type=int, default=None, help="random-mask samples")

    p = sub.add_parser("compare", help="train several models on the same splits and seeds")
    _add_run_options(p, skip=("model", "seed"))
    p.add_argument("--models", type=_csv(str), default=["cigl", "rigl", "dense"],
                   help="comma-separated models (default: cigl,rigl,dense)")
    p.add_argument("--seeds", type=_csv(int), default=[0], help="comma-separated seeds")
    p.add_argument("--reference", default=None,
                   help="model the others are paired against (default: rigl when present)")
    p.add_argument("--out", type=Path, default=None, help="folder for runs, table and plots")
    p.add_argument("--overwrite", action="store_true",
                   help="replace finished runs in OUT's sub-folders (refused without it)")
    p.add_argument("--workers", type=int, default=1,
                   help="runs trained at once, one process and torch thread each (default: 1)")

    p = sub.add_parser("sweep", help="models x sparsities x seeds; ECE-vs-sparsity plot")
    _add_run_options(p, skip=("model", "seed", "sparsity"))
    p.add_argument("--models", type=_csv(str), default=["cigl", "rigl"],
                   help="comma-separated models (default: cigl,rigl)")
    p.add_argument("--sparsity", dest="sparsities", type=_csv(float),
                   default=[0.8, 0.9, 0.95, 0.99], help="comma-separated sparsities")
    p.add_argument("--seeds", type=_csv(int), default=[0, 1, 2],
                   help="comma-separated seeds, as in compare (default: 0,1,2)")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for one compare folder per sparsity, sweep.json and the plot")
    p.add_argument("--overwrite", action="store_true",
                   help="replace finished runs in OUT's sub-folders (refused without it)")

    p = sub.add_parser("tune", help="choose p and T* on the validation split (never test)")
    _add_run_options(p, skip=("seed",))
    p.add_argument("--grid", action="append", type=_grid_axis, default=None, metavar="KEY=V,V",
                   help="a tuning axis, repeatable: drop_rate=0,0.005,0.01,0.05,0.1 and "
                        "averaging_start=0.75,0.8,0.9 (the default grid)")
    p.add_argument("--seeds", type=_csv(int), default=[100, 101],
                   help="tuning seeds (default 100,101; report on other seeds)")
    p.add_argument("--select-by", default="val_nll", choices=("val_nll", "val_brier"),
                   help="validation proper score the choice minimises")
    p.add_argument("--out", type=Path, required=True,
                   help="folder for tune.json, table.md and chosen.toml (--config of train)")

    sub.add_parser("list", help="list models, data sets and architectures")
    return parser


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """The model options given as flags."""
    return {k.removeprefix(_OPTION): v for k, v in vars(args).items()
            if k.startswith(_OPTION) and v is not None}


def _config(args: argparse.Namespace, options: bool = True) -> RunConfig:
    """The run configuration of the flags over the file; ``options``: with the model
    options (for one model; ``compare`` hands them to each model that has them)."""
    names = {f.name for f in fields(RunConfig)}
    given = {k: v for k, v in vars(args).items() if k in names and v is not None}
    if options and _options(args):
        given["model_options"] = _options(args)
    return load_config(args.config, **given)


def _per_model(args: argparse.Namespace, models: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``compare`` overrides: each model gets the given options it has."""
    opts = _options(args)
    out = {}
    for m in models:
        mine = {k: v for k, v in opts.items() if k in get_model(m).options}
        if mine:
            out[m] = {"model_options": mine}
    return out


def _cmd_train(args: argparse.Namespace) -> int:
    from hvgp.experiment import run

    cfg = _config(args)
    res = run(cfg, out=args.out, progress=not args.quiet, resume=args.resume,
              overwrite=args.overwrite)
    _print_metrics(res.row())
    print(f"run saved in {args.out}/ (config.json, metrics.json, model.pt, reliability.png)")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from hvgp.experiment import evaluate_run

    _print_metrics(evaluate_run(args.run, args.data, args.shift, args.num_samples))
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from hvgp.experiment import compare, default_reference, format_table, paired_comparison

    base = _config(args, options=False)
    results = compare(args.models, base.data, args.seeds, base=base, out=args.out,
                      progress=not args.quiet and args.workers == 1,
                      overrides=_per_model(args, args.models), overwrite=args.overwrite,
                      workers=args.workers, reference=args.reference)
    print(format_table(results))
    paired = paired_comparison(results, args.reference)
    if paired:
        print(f"\nPaired against {args.reference or default_reference(results)} "
              f"(same seeds):\n\n{paired}")
    if args.out:
        print(f"\nwritten: {args.out}/results.json, table.md, reliability.png")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from hvgp.experiment import compare, plan_compare, summarize

    base = _config(args, options=False)
    seeds = list(args.seeds)
    if not seeds or not args.sparsities:
        raise ValueError("sweep needs at least one --seeds and one --sparsity")
    overrides = _per_model(args, args.models)
    grid = {s: (base.updated(sparsity=s), None if args.out is None else
                args.out / f"sparsity-{s}") for s in args.sparsities}
    for cfg, out in grid.values():  # the whole grid is validated before the first run
        plan_compare(args.models, base.data, seeds, cfg, out, overrides, args.overwrite)
    records = []
    for s, (cfg, out) in grid.items():
        res = compare(args.models, base.data, seeds, base=cfg, out=out,
                      progress=not args.quiet, overrides=overrides, overwrite=args.overwrite)
        for model, stats in summarize(res).items():
            records.append({**{k: v[0] for k, v in stats.items()},
                            **{f"{k}_std": v[1] for k, v in stats.items()},
                            "method": model, "sparsity": s})  # the target, for grouping
            print(f"sparsity {s:.3f}  {model:8s}  acc {stats['accuracy'][0]:.4f}  "
                  f"ece {stats['ece'][0]:.4f} ± {stats['ece'][1]:.4f}")
    if args.out is not None:
        import matplotlib.pyplot as plt

        from hvgp.plots import calibration_vs_sparsity

        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "sweep.json").write_text(json.dumps(records, indent=2) + "\n")
        plt.close(calibration_vs_sparsity(records, metric="ece",
                                          path=args.out / "ece_vs_sparsity.png"))
        print(f"written: {args.out}/sweep.json, ece_vs_sparsity.png")
    return 0


def _grid_axis(text: str) -> tuple[str, list[float]]:
    """``KEY=V,V,...`` -> (key, values) for ``hvgp tune --grid``."""
    key, sep, values = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=V,V,... (e.g. drop_rate=0,0.01), got "
                                         f"{text!r}")
    return key.strip().replace("-", "_"), _csv(float)(values)


def _cmd_tune(args: argparse.Namespace) -> int:
    from hvgp.tune import tune_config

    cfg = _config(args)
    grid = None if args.grid is None else dict(args.grid)
    if grid is not None and len(grid) != len(args.grid):
        raise ValueError("--grid names an axis twice")
    args.out.mkdir(parents=True, exist_ok=True)
    result, chosen = tune_config(cfg, grid, args.seeds, args.select_by,
                                 progress=not args.quiet)
    table = result.table()
    result.save(args.out / "tune.json")
    (args.out / "table.md").write_text(table + "\n")
    seeds = ", ".join(map(str, result.seeds))
    (args.out / "chosen.toml").write_text(chosen.to_toml(
        f"chosen by hvgp tune ({args.select_by}, tuning seeds {seeds}): "
        f"{result.best}\nreport on seeds other than {seeds}"))
    print(table)
    print(f"\nchosen: {result.best} (lowest mean {args.select_by} over seeds {seeds})")
    print(f"written: {args.out}/tune.json, table.md, chosen.toml "
          f"(hvgp train --config {args.out}/chosen.toml --seed 0 --out ...)")
    return 0


def _cmd_list(_: argparse.Namespace) -> int:
    from hvgp.data import list_datasets
    from hvgp.nn import ARCHITECTURES

    for kind in ("network", "wrapper", "gp"):
        print(f"models ({kind}):".ljust(18) + ", ".join(model_names(kind)))
    for key, (default, owners) in model_options().items():
        print(f"  --{key.replace('_', '-')} (default {default}): {', '.join(owners)}")
    print("data sets:     " + ", ".join(list_datasets()))
    print("architectures: " + ", ".join(sorted(ARCHITECTURES)))
    return 0


def _print_metrics(row: dict[str, Any]) -> None:
    width = max(len(k) for k in row)
    for k, v in row.items():
        text = f"{v:.4f}" if isinstance(v, float) else str(v)
        print(f"{k:<{width}}  {text}")


def _one_line(err: BaseException) -> str:
    """The error as one line: OS errors with their file, others' first line."""
    if isinstance(err, OSError) and err.strerror:
        where = f" ({err.filename})" if err.filename else ""
        return f"{err.strerror}{where}"
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


_COMMANDS = {"train": _cmd_train, "evaluate": _cmd_evaluate, "compare": _cmd_compare,
             "sweep": _cmd_sweep, "tune": _cmd_tune, "list": _cmd_list}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hvgp`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except (ValueError, OSError, RuntimeError, TypeError) as e:
        print(f"hvgp {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hvgp {args.command}: interrupted; the last checkpoint is intact "
              "(continue with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
