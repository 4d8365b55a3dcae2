"""Step-time ratios: CigL / RigL (both hvgp SVI) and hvgp SVI / an equivalent plain-torch loop.

The plain-torch loops do the same arithmetic by hand: RigL = masked forward, cross-entropy,
SGD weight decay, mask grads, step, re-apply mask; CigL adds a Bernoulli mask with inverted
scaling, decay only on kept weights and a held step for dropped weights. Timings are medians
of blocks of steps on one batch (topology updates excluded), on the device given.

    .venv/bin/python benchmarks/step_overhead.py [--device cpu] [--steps 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import _common as C
import torch
import torch.nn.functional as F
from torch.func import functional_call
from torch.utils.data import DataLoader, TensorDataset

from hvgp.infer import CigL, RigL, hold_dropped_step
from hvgp.nn import build_model, masked_layers
from hvgp.sparsity import SparseTopology
from hvgp.utils import resolve_device

OUT = Path(__file__).parent / "results" / "step_overhead.json"


def _median_step(step, device: torch.device, steps: int, blocks: int = 5) -> float:
    for _ in range(10):
        step()
    times = []
    for _ in range(blocks):
        C.sync(device)
        t0 = time.perf_counter()
        for _ in range(steps // blocks):
            step()
        C.sync(device)
        times.append((time.perf_counter() - t0) / (steps // blocks))
    return statistics.median(times)


def plain_step_fn(net, x, y, p: float, wd: float, device):
    """A hand-written torch step equivalent to hvgp's (RigL if p == 0, else CigL)."""
    topo = SparseTopology(net, 0.9, seed=0)
    layers = masked_layers(net)
    masked = {id(layer.weight) for layer in layers.values()}
    weights = [q for q in net.parameters() if id(q) in masked]
    others = [q for q in net.parameters() if id(q) not in masked]
    opt = torch.optim.SGD([{"params": weights, "weight_decay": 0 if p else wd},
                           {"params": others, "weight_decay": wd}],
                          lr=0.01, momentum=0.9, nesterov=True)

    def step() -> None:
        opt.zero_grad(set_to_none=False)
        if p == 0:
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            topo.mask_grads_()
            opt.step()
        else:
            used, penalty, held = {}, 0.0, []
            for name, layer in layers.items():
                m = layer.weight_mask
                z = torch.bernoulli(torch.full(m.shape, 1 - p, device=device))
                keep = m & z.bool()
                used[f"{name}.weight"] = layer.weight * torch.where(m, z / (1 - p), 1.0)
                penalty = penalty + (layer.weight * keep).pow(2).sum()
                held.append((layer.weight, m & ~keep))
            loss = F.cross_entropy(functional_call(net, used, (x,)), y) + wd / 2 * penalty
            loss.backward()
            topo.mask_grads_()
            hold_dropped_step(opt, held)
        topo.apply_()

    return step


def hvgp_step_fn(net, x, y, p: float, wd: float, device):
    """hvgp's SVI step (Trainer.train_step) for CigL (p > 0) or RigL (p == 0)."""
    loader = DataLoader(TensorDataset(x.cpu(), y.cpu()), batch_size=len(x))
    kw = dict(sparsity=0.9, lr=0.01, weight_decay=wd, device=device, schedule="constant",
              delta_t=10**9)
    est = CigL(net, drop_rate=p, averaging=False, **kw) if p else RigL(net, **kw)
    est.fit(loader, epochs=1)
    return lambda: est.trainer.train_step(x, y)


def measure(arch: str, shape, batch: int, device: torch.device, steps: int, width: float) -> dict:
    x = torch.randn(batch, *shape, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    res = {}
    for label, fn, p in [("plain_rigl", plain_step_fn, 0.0), ("plain_cigl", plain_step_fn, 0.01),
                         ("hvgp_rigl", hvgp_step_fn, 0.0), ("hvgp_cigl", hvgp_step_fn, 0.01)]:
        torch.manual_seed(0)
        net = build_model(arch, shape, 10, width=width).to(device)
        res[label] = _median_step(fn(net, x, y, p, 5e-4, device), device, steps)
    res["cigl_over_rigl"] = res["hvgp_cigl"] / res["hvgp_rigl"]
    res["hvgp_rigl_over_plain_rigl"] = res["hvgp_rigl"] / res["plain_rigl"]
    res["hvgp_cigl_over_plain_cigl"] = res["hvgp_cigl"] / res["plain_cigl"]
    res["hvgp_cigl_over_plain_rigl"] = res["hvgp_cigl"] / res["plain_rigl"]
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--big", action="store_true", help="also WRN-22-2 on 3x32x32 (GPU)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cases = [("cnn1d", (40,), 128, 1.0), ("mlp", (40,), 128, 1.0)]
    if args.big:
        cases += [("wrn-22-2", (3, 32, 32), 128, 1.0), ("resnet18", (3, 32, 32), 128, 1.0)]
    results = {}
    for arch, shape, batch, width in cases:
        r = measure(arch, shape, batch, device, args.steps, width)
        results[arch] = r
        print(f"{arch:9s} step ms: plain RigL {1e3 * r['plain_rigl']:.2f}, plain CigL "
              f"{1e3 * r['plain_cigl']:.2f}, hvgp RigL {1e3 * r['hvgp_rigl']:.2f}, hvgp CigL "
              f"{1e3 * r['hvgp_cigl']:.2f} | CigL/RigL {r['cigl_over_rigl']:.3f}, "
              f"hvgp/plain RigL {r['hvgp_rigl_over_plain_rigl']:.3f}, "
              f"hvgp/plain CigL {r['hvgp_cigl_over_plain_cigl']:.3f}", flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    out = OUT if device.type == "cpu" else OUT.with_name(f"step_overhead_{device.type}.json")
    out.write_text(json.dumps({"device": str(device), "threads": args.threads,
                               "results": results}, indent=2))


if __name__ == "__main__":
    main()
