"""Helper for subprocess / multi-process tests: tiny CigL runs through the public API.

Run as a script (fault tests): ``python tests/_train_script.py --ckpt C --out O [--resume]
[--sleep S] [--epochs E]`` trains a tiny CigL on synthetic data, checkpointing every epoch,
and writes the final weights to ``O``. ``--sleep`` slows every step so a test can kill the
process mid-epoch. ``--ready FILE`` is written once the first checkpoint exists.

Imported (distributed tests): :func:`spawn_worker` is the ``torch.multiprocessing.spawn``
target of one rank.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

N, D, K = 64, 40, 3


def tiny_data(seed: int = 0) -> TensorDataset:
    """64 points of a 3-class problem on 40 features (deterministic)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, D, generator=g)
    y = (x[:, :10].sum(1) > 0).long() + (x[:, 10:20].sum(1) > 0).long()
    return TensorDataset(x, y)


def tiny_estimator(arch: str = "mlp", drop_rate: float = 0.0, checkpoint: str | None = None,
                   **kw: Any):
    """A CigL on a small ``arch`` (same initial weights for the same arguments)."""
    from hvgp.infer import CigL
    from hvgp.nn import build_model

    torch.manual_seed(0)
    net = build_model(arch, (D,), K, width=0.125)
    kw.setdefault("average_start", 0.67)
    kw.setdefault("device", "cpu")
    return CigL(net, sparsity=0.8, drop_rate=drop_rate, delta_t=2, lr=0.05,
                checkpoint=checkpoint, **kw)


def spawn_worker(rank: int, world: int, port: int, out: str, arch: str, drop_rate: float,
                 batch: int, epochs: int) -> None:
    """One rank of a gloo run on localhost: train, then save weights and mask digests."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from hvgp.distributed import fit_distributed, init_distributed

    init_distributed("gloo", "cpu")
    torch.manual_seed(1000 + rank)  # different local init: the broadcast must fix it
    est = tiny_estimator(arch, drop_rate)
    if rank:
        with torch.no_grad():
            for p in est.net.parameters():
                p.add_(1.0)
    est, sync = fit_distributed(est, tiny_data(), epochs, batch, shuffle=drop_rate > 0)
    torch.save(result(est, sync.digests), os.path.join(out, f"rank{rank}.pt"))
    import torch.distributed as dist

    dist.barrier()
    dist.destroy_process_group()


def result(est: Any, digests: Any = ()) -> dict[str, Any]:
    """Plain-tensor summary of a fitted estimator (weights of the prediction network)."""
    return {"state": {k: v.detach().clone() for k, v in est.model_.state_dict().items()},
            "current": {k: v.detach().clone() for k, v in est.net.state_dict().items()},
            "digests": [[s, list(d)] for s, d in digests]}


def _main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--ckpt", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--sleep", type=float, default=0.0)
    p.add_argument("--ready", default=None)
    p.add_argument("--resume", action="store_true")
    args = p.parse_args()
    # a parent started in the background (nohup, CI runners) may hand SIGINT down as ignored;
    # this script stands for a user's foreground run, where Ctrl-C raises KeyboardInterrupt
    signal.signal(signal.SIGINT, signal.default_int_handler)
    torch.set_num_threads(1)
    from hvgp.infer import Callback

    class Slow(Callback):
        steps_run = 0

        def on_step_end(self, trainer: Any, loss: float) -> None:
            Slow.steps_run += 1
            if args.ready and os.path.exists(args.ckpt) and not os.path.exists(args.ready):
                open(args.ready, "w").close()
            time.sleep(args.sleep)

    est = tiny_estimator("cnn1d", drop_rate=0.1, checkpoint=args.ckpt, callbacks=[Slow()])
    loader = DataLoader(tiny_data(), batch_size=8, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    est.fit(loader, args.epochs, resume=args.ckpt if args.resume else None)
    torch.save({**result(est), "steps_run": Slow.steps_run}, args.out)


if __name__ == "__main__":
    _main()
