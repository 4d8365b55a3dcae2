"""Data-parallel CigL / RigL training with ``torch.distributed`` (launched by ``torchrun``).

Why a callback and not ``DistributedDataParallel``: the Pyro loss calls the network through
``torch.func.functional_call`` with sampled weights, so a DDP wrapper's ``forward`` is never
run. The same contract is kept by hand, in three places of the training step:

1. **Dense gradients are averaged across ranks inside ``backward``** (one flat all-reduce,
   queued at the end of the autograd pass, as DDP does), so the RigL grow step, which runs
   right after ``backward``, ranks the *global-batch* gradient on every rank. Weights,
   the updater's seeded tie-break generator and the gradients being equal, every rank makes
   the same drop/grow choice: the **masks stay identical**, and the callback checks this
   after every step (an int64 digest of every mask, min/max all-reduced; a mismatch raises
   on all ranks at once).
2. **Random masks Z are independent per rank**: each rank's torch/Pyro RNG is re-seeded from
   ``(seed, rank, epoch)`` at the start of every epoch (so a resume from an epoch-end
   checkpoint draws the same Z). A weight held fixed by the trainer (M = 1, Z = 0) must be
   held on *every* rank, or weights would drift apart: after ``backward`` the Z of all
   ranks are combined by a max all-reduce, so a weight moves if at least one rank kept it
   (it then gets the rank-averaged gradient, which is 0 from ranks that dropped it).
3. **Buffers** (BatchNorm statistics) are broadcast from rank 0 at each epoch end (DDP's
   default); the averaged model's re-estimated BatchNorm statistics are averaged over ranks.

The global batch is ``world_size x`` the per-rank batch; with ``drop_rate=0`` a 2-rank run
reproduces a 1-process run with the same global batch up to float rounding. Rank 0 alone
writes checkpoints and the exported model. Run on many GPUs with the same command on each
node (``torchrun --nnodes N --nproc_per_node G --rdzv_backend c10d --rdzv_endpoint
HOST:PORT -m hvgp.distributed ...``): nccl is used when CUDA is present, gloo otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from hvgp.infer import Callback, CigL, WeightAveraging
from hvgp.infer.trainer import SiteRecorder
from hvgp.utils import resolve_device, seed_everything

__all__ = [
    "DataParallel",
    "DistInfo",
    "fit_distributed",
    "init_distributed",
    "main",
    "mask_digest",
    "rank_seed",
    "shard_loader",
]


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: rank, world size, local rank, its device and the backend."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(backend: str = "auto", device: str = "auto") -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment.

    Without ``RANK``/``WORLD_SIZE`` (a plain ``python`` run) this is a world of one and no
    group is created. ``backend="auto"`` is nccl on CUDA, gloo on CPU.

    :raises RuntimeError: CUDA / nccl asked for where CUDA is absent.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local % torch.cuda.device_count())
        torch.cuda.set_device(dev)
    if backend == "auto":
        backend = "nccl" if dev.type == "cuda" else "gloo"
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"backend must be 'auto', 'gloo' or 'nccl', got {backend!r}")
    if backend == "nccl" and dev.type != "cuda":
        raise RuntimeError("backend='nccl' needs CUDA devices; use backend='gloo' on CPU")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world)
    return DistInfo(rank, world, local, dev, backend if world > 1 else None)


def rank_seed(seed: int, rank: int, epoch: int) -> int:
    """The RNG seed of ``rank`` in ``epoch``: distinct per rank and epoch, fixed per run."""
    return (int(seed) * 1_000_003 + int(rank) * 10_007 + int(epoch)) % (2**63 - 1)


def shard_loader(
    dataset: Dataset, batch_size: int, shuffle: bool = True, seed: int = 0,
    drop_last: bool = False,
) -> DataLoader:
    """This rank's loader: a ``DistributedSampler`` shard, ``batch_size`` points per rank.

    Every rank gets the same number of batches (the sampler pads by repeating points), as
    the per-step collectives need. ``len(loader.dataset)`` stays the full N, so the ELBO
    is scaled to the whole data set.
    """
    world = dist.get_world_size() if dist.is_initialized() else 1
    rank = dist.get_rank() if dist.is_initialized() else 0
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=shuffle,
                                 seed=seed, drop_last=drop_last)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler)


def mask_digest(net: nn.Module) -> torch.Tensor:
    """One int64 per bool mask buffer: a position hash of its active entries (cheap check)."""
    out = []
    for name, buf in sorted(net.named_buffers()):
        if buf.dtype == torch.bool and name.endswith("_mask"):
            idx = buf.reshape(-1).nonzero().squeeze(1).to(torch.int64)
            out.append(((idx * 2654435761 + 97) % 2147483647).sum())
    if not out:
        return torch.zeros(0, dtype=torch.int64)
    return torch.stack(out)


class DataParallel(Callback):
    """Makes an estimator's training data-parallel over the default process group.

    Use through :func:`fit_distributed` (which also shards the data and enters
    :meth:`active` around ``fit``). Without a process group (one process) it does nothing
    but record mask digests.

    :param estimator: the :class:`~hvgp.infer.CigL` / ``RigL`` to train.
    :param check_masks: all-reduce a digest of every mask after every step and raise if the
        ranks disagree.
    """

    def __init__(self, estimator: CigL, check_masks: bool = True) -> None:
        self.est = estimator
        self.check_masks = check_masks
        self.world = dist.get_world_size() if dist.is_initialized() else 1
        self.rank = dist.get_rank() if dist.is_initialized() else 0
        self.params = [p for p in estimator.bnn.parameters() if p.requires_grad]
        self.recorder = SiteRecorder(estimator.bnn.mask_sites)
        self.digests: list[tuple[int, list[int]]] = []  # (step, digest) after each change
        self._queued = False
        self._hooks = [p.register_post_accumulate_grad_hook(self._on_grad)
                       for p in self.params] if self.world > 1 else []

    # ---- inside backward ---------------------------------------------------------------
    def _on_grad(self, _param: torch.Tensor) -> None:
        if not self._queued:
            self._queued = True
            torch.autograd.Variable._execution_engine.queue_callback(self._after_backward)

    @torch.no_grad()
    def _after_backward(self) -> None:
        """Average dense gradients; combine random masks (kept anywhere = kept)."""
        self._queued = False
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for p in self.params:
            n = p.numel()
            chunk = flat[offset:offset + n].view_as(p)
            if p.grad is None:
                p.grad = chunk.clone()
            else:
                p.grad.copy_(chunk)
            offset += n
        names = sorted(self.recorder.values)
        if names:
            zs = [self.recorder.values[n] for n in names]
            flat_z = torch.cat([z.reshape(-1) for z in zs])
            dist.all_reduce(flat_z, op=dist.ReduceOp.MAX)
            offset = 0
            for z in zs:
                z.copy_(flat_z[offset:offset + z.numel()].view_as(z))
                offset += z.numel()
        self.recorder.values.clear()

    @contextmanager
    def active(self) -> Iterator[DataParallel]:
        """Record random masks while training (enter around ``estimator.fit``)."""
        with self.recorder:
            yield self

    def close(self) -> None:
        """Remove the gradient hooks."""
        for h in self._hooks:
            h.remove()
        self._hooks = []

    # ---- callback hooks ------------------------------------------------------------------
    def _reseed(self, trainer: Any) -> None:
        seed_everything(rank_seed(self.est.seed, self.rank, trainer.epoch))
        sampler = getattr(trainer.loader, "sampler", None)
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(trainer.epoch)

    @torch.no_grad()
    def on_fit_start(self, trainer: Any) -> None:
        if self.world > 1 and trainer.step == 0:  # identical start, whatever each rank drew
            for t in list(trainer.bnn.parameters()) + list(trainer.bnn.buffers()):
                if t.dtype == torch.bool:  # not every backend reduces bools
                    as_int = t.data.to(torch.uint8)
                    dist.broadcast(as_int, src=0)
                    t.data.copy_(as_int.bool())
                else:
                    dist.broadcast(t.data, src=0)
        self._reseed(trainer)
        self._record(trainer)

    def on_step_end(self, trainer: Any, loss: float) -> None:
        self._record(trainer)

    @torch.no_grad()
    def on_epoch_end(self, trainer: Any) -> None:
        if self.world > 1:
            for buf in trainer.bnn.buffers():
                if buf.is_floating_point():
                    dist.broadcast(buf, src=0)
        self._reseed(trainer)

    @torch.no_grad()
    def on_fit_end(self, trainer: Any) -> None:
        if self.world == 1:
            return
        for cb in trainer.callbacks:
            if isinstance(cb, WeightAveraging) and cb.averaged is not None:
                for buf in cb.averaged.buffers():
                    if buf.is_floating_point():
                        dist.all_reduce(buf)
                        buf /= self.world

    def _record(self, trainer: Any) -> None:
        digest = mask_digest(trainer.bnn.net)
        if self.check_masks and self.world > 1:
            both = torch.cat([digest, -digest])
            dist.all_reduce(both, op=dist.ReduceOp.MAX)
            hi, lo = both[: digest.numel()], -both[digest.numel():]
            if not torch.equal(hi, lo):
                raise RuntimeError(
                    f"masks differ across ranks after step {trainer.step} (rank {self.rank}); "
                    "gradients or weights were not synchronised"
                )
        values = digest.cpu().tolist()
        if not self.digests or self.digests[-1][1] != values:
            self.digests.append((trainer.step, values))


def fit_distributed(
    estimator: CigL,
    dataset: Dataset,
    epochs: int,
    batch_size: int,
    *,
    shuffle: bool = True,
    resume: str | os.PathLike | None = None,
) -> tuple[CigL, DataParallel]:
    """Train ``estimator`` data-parallel over the current process group (or alone).

    :param batch_size: per-rank batch; the global batch is ``world_size * batch_size``.
    :param resume: checkpoint written by rank 0 (every rank reads it).
    :returns: the fitted estimator and its :class:`DataParallel` callback (mask digests).
    """
    sync = DataParallel(estimator)
    if sync.rank != 0:
        estimator.checkpoint_path = None  # rank 0 alone writes
    estimator.user_callbacks.append(sync)
    loader = shard_loader(dataset, batch_size, shuffle=shuffle, seed=estimator.seed)
    try:
        with sync.active():
            estimator.fit(loader, epochs, resume=resume)
    finally:
        estimator.user_callbacks.remove(sync)
        sync.close()
    return estimator, sync


# ---- command line (``torchrun ... -m hvgp.distributed``) ------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m hvgp.distributed",
        description="Data-parallel CigL/RigL training; launch with torchrun --nproc_per_node K.",
    )
    p.add_argument("--data", default="mnist1d")
    p.add_argument("--arch", default="mlp")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--sparsity", type=float, default=0.9)
    p.add_argument("--drop-rate", type=float, default=0.01)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128, help="global batch (all ranks)")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--delta-t", type=int, default=100)
    p.add_argument("--no-averaging", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--backend", default="auto")
    p.add_argument("--out", default="runs/distributed")
    p.add_argument("--resume", default=None)
    p.add_argument("--data-n", type=int, default=None, help="data-set size option (n=)")
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Train on a registry data set; rank 0 writes ``metrics.json``, ``model.pt`` (sparse
    export), ``checkpoint.pt``; every rank writes ``rank<r>.pt`` (masks, digests)."""
    from hvgp.data import get_dataset
    from hvgp.export import ArchSpec, save_model

    args = _parser().parse_args(argv)
    info = init_distributed(args.backend, args.device)
    if args.batch_size % info.world_size:
        raise ValueError(f"--batch-size {args.batch_size} is not divisible by the "
                         f"{info.world_size} ranks")
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, info.world_size)))
    kw = {} if args.data_n is None else {"n": args.data_n}
    train = get_dataset(args.data, "train", seed=args.seed, **kw)
    test = get_dataset(args.data, "test", seed=args.seed, **kw)
    spec = ArchSpec(args.arch, train.info.input_shape, train.info.num_classes or 1, args.width)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    est = CigL(spec.build(), args.sparsity, args.drop_rate, device=str(info.device),
               lr=args.lr, delta_t=args.delta_t, averaging=not args.no_averaging,
               seed=args.seed, checkpoint=os.path.join(args.out, "checkpoint.pt"),
               likelihood="categorical" if train.info.task == "classification" else "normal")
    est, sync = fit_distributed(est, train, args.epochs, args.batch_size // info.world_size,
                                resume=args.resume)
    torch.save({"masks": {k: v.cpu() for k, v in est.model_.state_dict().items()
                          if k.endswith("_mask")},
                "params": {k: v.detach().cpu() for k, v in est.model_.state_dict().items()},
                "digests": [[s, d] for s, d in sync.digests]},
               os.path.join(args.out, f"rank{info.rank}.pt"))
    result: dict[str, Any] = {"world_size": info.world_size, "sparsity": est.sparsity()}
    if info.is_main:
        result.update(est.evaluate(DataLoader(test, batch_size=512)))
        save_model(os.path.join(args.out, "model.pt"), est, spec)
        with open(os.path.join(args.out, "metrics.json"), "w") as f:
            json.dump(result, f, indent=2)
        print(json.dumps(result, indent=2))
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return result


if __name__ == "__main__":
    main()
