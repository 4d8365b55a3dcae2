"""Re-run stored ``calibration_vs_sparsity`` runs and check their test predictions bit for bit.

The sweep keeps every run's test probabilities (``results/probs/calibration_vs_sparsity/``,
not in git); this script rebuilds chosen runs from their JSON records with the current code
and compares the new probabilities with the kept ones (``torch.equal``), so a refactor can
show that it changed nothing. It exits 1 when a run differs.

    .venv/bin/python benchmarks/reproduce_stored.py --setting mnist1d-large/mlp --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import _common as C
import torch

from hvgp.config import RunConfig

RESULT = C.RESULTS / "calibration_vs_sparsity.json"
KEY = ("setting", "method", "sparsity_target", "seed", "epochs")


def config_of(rec: dict[str, Any], settings: dict[str, Any]) -> RunConfig:
    """The RunConfig a stored record was trained with (the sweep's shared settings + its own)."""
    base = RunConfig(device="cpu", lr=settings["lr"], weight_decay=settings["weight_decay"],
                     averaging_start=settings["averaging_start"],
                     val_fraction=settings["val_fraction"],
                     recipe=settings.get("recipe", "legacy"))  # runs before recipes: legacy
    data = rec["setting"].split("/")[0]
    return C.method_config(base, rec["method"], rec["drop_rate"], data=data, arch=rec["arch"],
                           width=rec["width"], sparsity=rec["sparsity_target"],
                           epochs=rec["epochs"], seed=rec["seed"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--setting", default="mnist1d-large/mlp")
    ap.add_argument("--sparsity", type=float, default=0.8)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--methods", nargs="+", default=["RigL", "CigL"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    stored = json.loads(RESULT.read_text())
    folder = C.RESULTS / "probs" / "calibration_vs_sparsity"
    failed = 0
    for rec in stored["runs"]:
        if (rec["setting"], rec["sparsity_target"]) != (args.setting, args.sparsity) \
                or rec["seed"] not in args.seeds or rec["method"] not in args.methods:
            continue
        key = {k: rec[k] for k in KEY}
        kept = C.load_predictions(folder, key)
        if kept is None:
            print(f"{key}: no kept predictions (run the sweep first)")
            failed += 1
            continue
        _, res = C.scored_run(config_of(rec, stored["settings"]))
        now = res.samples.mean().detach().cpu().float().double()
        same = torch.equal(now, kept[0]) and torch.equal(res.labels.cpu(), kept[1])
        failed += not same
        print(f"{rec['method']} {rec['setting']} s={rec['sparsity_target']} seed {rec['seed']}: "
              f"{'bit-identical' if same else 'DIFFERS'} (max |Δp| "
              f"{float((now - kept[0]).abs().max()):.3g})", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
