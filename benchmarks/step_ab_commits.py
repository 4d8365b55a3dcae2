"""Training-step time of the working tree against an earlier commit, in one process.

Why: on a shared machine two runs minutes apart differ by ±10 %, more than most changes to
the step; timing both versions interleaved in *one* process (:func:`step_overhead.
interleaved_times`) cancels that. The commit's ``hvgp/`` is exported with ``git archive``
into a temporary folder as the package ``hvgp_base`` (every ``hvgp`` import in it renamed),
so the two versions import side by side. For each network: hvgp's CigL (p = 0.01, fast
step) and RigL steps of both versions on the same seeded network and batch (MNIST-1D
shapes, batch 128; WRN-22-2: 3x32x32, batch 32); ratios are medians of per-repetition
ratios with quartiles (CPU time).

    .venv/bin/python benchmarks/step_ab_commits.py --base HEAD~1 [--reps 25]
        [--archs mlp cnn1d wrn-22-2]
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common as C
import torch
from step_overhead import fmt_ratio, hvgp_step_fn, interleaved_times, summary, timing_args

OUT = C.RESULTS / "step_ab_commits.json"
REPO = Path(__file__).resolve().parents[1]
_IMPORT = re.compile(r"\bhvgp(?=[.\s]|$)", re.MULTILINE)


def export_base(rev: str, folder: Path) -> str:
    """Unpack commit ``rev``'s ``hvgp/`` into ``folder/hvgp_base``; return the full hash."""
    full = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", f"{rev}^{{commit}}"],
                          capture_output=True, text=True)
    if full.returncode:
        raise SystemExit(f"not a commit of this repository: {rev!r} ({full.stderr.strip()})")
    archive = folder / "base.tar"
    subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(archive), full.stdout.strip(),
                    "hvgp"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    (folder / "hvgp").rename(folder / "hvgp_base")
    for path in (folder / "hvgp_base").rglob("*.py"):
        path.write_text(_IMPORT.sub("hvgp_base", path.read_text()))
    return full.stdout.strip()


def step_fn(pkg: str, arch: str, p: float, x: torch.Tensor, y: torch.Tensor) -> Callable[[], Any]:
    """Package ``pkg``'s SVI step (CigL at ``p`` > 0, else RigL) on a seeded network."""
    torch.manual_seed(0)
    net = importlib.import_module(f"{pkg}.nn").build_model(arch, tuple(x.shape[1:]), 10)
    return hvgp_step_fn(net, x, y, p, 5e-4, torch.device("cpu"),
                        importlib.import_module(f"{pkg}.infer"))


#: input shape and batch per network (default: MNIST-1D, batch 128); as overhead.py's
SHAPES = {"wrn-22-2": ((3, 32, 32), 32)}

PAIRS = {"CigL new/base": ("new CigL", "base CigL"), "RigL new/base": ("new RigL", "base RigL"),
         "CigL/RigL new": ("new CigL", "new RigL"), "CigL/RigL base": ("base CigL", "base RigL")}


def measure(arch: str, reps: int, block: int) -> dict[str, Any]:
    """Interleaved CPU step times of both versions' CigL and RigL on ``arch``."""
    shape, batch = SHAPES.get(arch, ((40,), 128))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(batch, *shape, generator=g), torch.randint(0, 10, (batch,), generator=g)
    fns = {f"{tag} {name}": step_fn(pkg, arch, p, x, y)
           for tag, pkg in (("new", "hvgp"), ("base", "hvgp_base"))
           for name, p in (("CigL", 0.01), ("RigL", 0.0))}
    return summary(interleaved_times(fns, torch.device("cpu"), reps, block), PAIRS)["cpu"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="HEAD~1", help="the commit to compare against")
    ap.add_argument("--archs", nargs="+", default=["mlp", "cnn1d"])
    args, out = timing_args(ap, OUT, reps=25, block=10)
    C.setup_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        base = export_base(args.base, Path(tmp))
        sys.path.insert(0, tmp)
        results = {arch: measure(arch, args.reps, args.block) for arch in args.archs}
    print(f"| arch | {' | '.join(PAIRS)} | ms new CigL / base CigL / new RigL / base RigL |")
    print("|---" * (len(PAIRS) + 2) + "|")
    for arch, r in results.items():
        ms = " / ".join(f"{r['seconds'][k] * 1e3:.2f}" for k in
                        ("new CigL", "base CigL", "new RigL", "base RigL"))
        print(f"| {arch} | " + " | ".join(fmt_ratio(r["ratios"][k]) for k in PAIRS)
              + f" | {ms} |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"base": base, "base_rev": args.base, "reps": args.reps,
                               "block": args.block, "machine": C.machine(),
                               "command": C.command(), "results": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
