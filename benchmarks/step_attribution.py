"""Where CigL's extra training-step time goes: the step with one part switched off at a time.

Cost probes, not training variants (each switched-off step is *not* CigL's step): the hvgp
CigL step (p = 0.01, the fast path) timed interleaved with the RigL step and with

- ``no_hold``: ``optimizer.step()`` instead of the held-weight step (dropped weights and
  their momentum move);
- ``dense_factor``: the random mask applied as a dense factor tensor (``weight * f``, plain
  autograd) instead of the fused ``_DropConnect`` layer (the pre-#17-memory path: faster
  on small networks, but the factor and the product live through the step);
- ``no_mask_in_layers``: the layers run on the plain weight (Z is still drawn, held and in
  the prior; only its application in the layers is gone).

Each ratio is the median over repetitions of the per-repetition ratio to RigL
(:func:`step_overhead.interleaved_times`), CPU time, with quartiles. The difference of two
medians attributes the extra time roughly (the parts interact a little).

    .venv/bin/python benchmarks/step_attribution.py [--reps 40] [--archs mlp cnn1d]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import _common as C
import torch
from step_overhead import fmt_ratio, interleaved_times, mnist1d_steps, summary, timing_args

import hvgp.infer.trainer as trainer_module
from hvgp.nn.layers import MaskedLayer

OUT = C.RESULTS / "step_attribution.json"


@contextmanager
def switched_off(part: str) -> Iterator[None]:
    """Within the block, the CigL step runs without ``part`` (see the module docstring)."""
    saved: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, new: Any) -> None:
        saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, new)

    if part == "no_hold":
        patch(trainer_module, "hold_dropped_step_indexed", lambda opt, *a, **k: opt.step())
    elif part == "dense_factor":
        patch(MaskedLayer, "_drop_connect", lambda self, x: None)
    elif part == "no_mask_in_layers":
        patch(MaskedLayer, "_drop_connect",
              lambda self, x: self._plain_forward(x, self.weight, self.bias))
    else:
        raise ValueError(f"unknown part {part!r}")
    try:
        yield
    finally:
        for owner, name, old in reversed(saved):
            setattr(owner, name, old)


PARTS = ("no_hold", "dense_factor", "no_mask_in_layers")


def measure(arch: str, reps: int, block: int) -> dict[str, Any]:
    """Interleaved CPU/wall times of RigL, CigL and CigL with each part switched off."""
    device = torch.device("cpu")
    steps = mnist1d_steps(arch, device)

    def probe(part: str) -> Callable[[], Any]:
        def step() -> None:
            with switched_off(part):
                steps["cigl"]()
        return step

    fns = {**steps, **{part: probe(part) for part in PARTS}}
    times = interleaved_times(fns, device, reps, block)
    return summary(times, {k: (k, "rigl") for k in fns if k != "rigl"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=["mlp", "cnn1d"])
    args, out = timing_args(ap, OUT, reps=40, block=20)
    C.setup_threads(1)
    results = {arch: measure(arch, args.reps, args.block) for arch in args.archs}
    print("| arch | RigL ms | CigL ms | CigL/RigL | " + " | ".join(PARTS) + " |")
    print("|" + "---|" * (4 + len(PARTS)))
    for arch, r in results.items():
        cpu = r["cpu"]
        print(f"| {arch} | {1e3 * cpu['seconds']['rigl']:.2f} | {1e3 * cpu['seconds']['cigl']:.2f} "
              f"| {fmt_ratio(cpu['ratios']['cigl'])} | "
              + " | ".join(fmt_ratio(cpu["ratios"][p]) for p in PARTS) + " |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": C.command(), "machine": C.machine(),
                               "settings": vars(args), "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
