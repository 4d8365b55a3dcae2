"""Cost of one RigL topology update relative to one forward+backward step on WRN-22-2.

Why: RigL's update runs every ``delta_t`` steps; if it costs ``r`` training steps, the
amortised overhead is ``r / delta_t``. Input is CIFAR-shaped (3x32x32), batch 128; the net
is a WRN-22-2 (16-32-64-128 channels, 3 blocks per group) written as an ``nn.Sequential``.

Usage: ``python benchmarks/rigl_update_cost.py [--device auto|cpu|cuda] [--repeats 3]``.
Writes ``benchmarks/results/rigl_update_cost.json`` (or ``--out``) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

import _common as C
import torch
from torch import nn

from hvgp.sparsity import RigL, SparseTopology
from hvgp.utils import resolve_device


class WideBlock(nn.Module):
    """Pre-activation wide-ResNet block: BN-ReLU-conv3x3-BN-ReLU-conv3x3 + (1x1) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(c_in), nn.BatchNorm2d(c_out)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = (
            nn.Conv2d(c_in, c_out, 1, stride, bias=False) if stride != 1 or c_in != c_out else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = torch.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(o)
        return self.conv2(torch.relu(self.bn2(self.conv1(o)))) + skip


def wrn_22_2(num_classes: int = 10) -> nn.Sequential:
    """WRN-22-2: depth 22 -> 3 blocks per group, widen factor 2 -> widths 32, 64, 128."""
    layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, 1, 1, bias=False)]
    c_in = 16
    for width, stride in ((32, 1), (64, 2), (128, 2)):
        for b in range(3):
            layers.append(WideBlock(c_in, width, stride if b == 0 else 1))
            c_in = width
    layers += [nn.BatchNorm2d(c_in), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
               nn.Linear(c_in, num_classes)]
    return nn.Sequential(*layers)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--out", default="benchmarks/results/rigl_update_cost.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = resolve_device(args.device)

    net = wrn_22_2().to(device)
    topo = SparseTopology(net, args.sparsity, method="erk", types=(nn.Conv2d,))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    updater = RigL(topo, total_steps=10_000, delta_t=100)
    x = torch.randn(args.batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)

    def train_step() -> None:
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(net(x), y).backward()
        topo.mask_grads_()
        opt.step()
        topo.apply_()

    def forward_backward() -> None:
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(net(x), y).backward()

    train_step()  # populate momentum buffers, as in a real run
    fb = C.timed(forward_backward, device, args.repeats)  # leaves dense grads for RigL
    upd = C.timed(lambda: updater.update(100, opt), device, args.repeats)
    fb_s, upd_s = statistics.median(fb), statistics.median(upd)
    result = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else
        platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "batch": args.batch,
        "sparsity": args.sparsity,
        "conv_layers": len(topo.sites),
        "conv_weights": topo.numel(),
        "active_weights": sum(topo.nnz().values()),
        "drop_fraction_at_step_100": updater.drop_fraction(100),
        "forward_backward_s": fb,
        "rigl_update_s": upd,
        "forward_backward_median_s": fb_s,
        "rigl_update_median_s": upd_s,
        "ratio_update_over_step": upd_s / fb_s,
        "amortised_overhead_at_delta_t_100": upd_s / fb_s / 100,
    }
    rows = [("device", result["device"]), ("conv layers / weights",
            f"{result['conv_layers']} / {result['conv_weights']}"),
            ("sparsity", f"{args.sparsity}"), ("forward+backward (median s)", f"{fb_s:.4f}"),
            ("RigL update (median s)", f"{upd_s:.4f}"),
            ("ratio update / step", f"{upd_s / fb_s:.3f}"),
            ("overhead at delta_t=100", f"{100 * upd_s / fb_s / 100:.2f} %")]
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k.ljust(width)}  {v}" for k, v in rows))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
