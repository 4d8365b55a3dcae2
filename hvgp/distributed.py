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

Failures are one line each, not one traceback per rank: every argument is checked on every
rank before the process group is joined (rank 0 alone prints the errors, exit 2), and a
collective that does not complete within ``--timeout`` seconds (a stalled or killed rank)
stops the others with a message naming the rank and the intact checkpoint (exit 1).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
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
    "DEFAULT_TIMEOUT",
    "CollectiveTimeoutError",
    "DataParallel",
    "DistInfo",
    "fit_distributed",
    "init_distributed",
    "main",
    "mask_digest",
    "rank_seed",
    "shard_loader",
    "validate_args",
]

#: seconds a collective may wait for the other ranks before it fails (``--timeout``)
DEFAULT_TIMEOUT = 600.0


class CollectiveTimeoutError(RuntimeError):
    """A collective did not complete: another rank stalled (timeout) or died."""


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


def init_distributed(backend: str = "auto", device: str = "auto",
                     timeout: float | None = None) -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment.

    Without ``RANK``/``WORLD_SIZE`` (a plain ``python`` run) this is a world of one and no
    group is created. ``backend="auto"`` is nccl on CUDA, gloo on CPU.

    :param timeout: seconds a collective (and the rendezvous) waits for the other ranks
        before it raises (``None``: torch's default, 30 min for gloo, 10 min for nccl).
    :raises RuntimeError: CUDA / nccl asked for where CUDA is absent.
    :raises ValueError: a timeout that is not a positive finite number of seconds.
    """
    if timeout is not None and not (isinstance(timeout, (int, float)) and 0 < timeout < math.inf):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
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
        kw = {} if timeout is None else {"timeout": datetime.timedelta(seconds=timeout)}
        dist.init_process_group(backend, rank=rank, world_size=world, **kw)
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
def _env_rank() -> int:
    """This process's rank as ``torchrun`` sets it (0 for a plain ``python`` run)."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


class _RankParser(argparse.ArgumentParser):
    """An argument parser whose usage errors only rank 0 prints (not one copy per rank)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print usage and the error on rank 0; every rank exits 2."""
        if _env_rank() == 0:
            self.print_usage(sys.stderr)
            print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    """The flags of ``python -m hvgp.distributed``, each with its help and default."""
    p = _RankParser(
        prog="python -m hvgp.distributed",
        description="Data-parallel CigL/RigL training; launch with "
                    "torchrun --nproc_per_node K -m hvgp.distributed ...",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", default="mnist1d", help="data set (see `hvgp list`)")
    p.add_argument("--arch", default="mlp", help="network: mlp, cnn1d, wrn-22-2, resnet18, "
                                                 "resnet50 (must fit the data's input shape)")
    p.add_argument("--width", type=float, default=1.0, help="channel / hidden-width multiplier")
    p.add_argument("--sparsity", type=float, default=0.9, help="fraction of zero weights, [0, 1)")
    p.add_argument("--drop-rate", type=float, default=0.01,
                   help="random-mask rate p of CigL, [0, 1) (0: RigL)")
    p.add_argument("--epochs", type=int, default=10, help="training epochs")
    p.add_argument("--batch-size", type=int, default=128,
                   help="global batch (all ranks; divisible by the number of ranks)")
    p.add_argument("--lr", type=float, default=0.1, help="learning rate")
    p.add_argument("--delta-t", type=int, default=100, help="RigL update interval in steps")
    p.add_argument("--no-averaging", action="store_true",
                   help="no weight averaging (predict with the last weights)")
    p.add_argument("--seed", type=int, default=0, help="seed of data split, init and masks")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (one GPU per rank)")
    p.add_argument("--backend", default="auto", help="auto (nccl on CUDA, gloo on CPU), "
                                                     "gloo or nccl")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                   help="seconds a collective waits for the other ranks before every rank "
                        "stops with an error (a stalled or killed rank)")
    p.add_argument("--out", default="runs/distributed",
                   help="run folder: rank 0 writes metrics.json, model.pt (sparse export) and "
                        "checkpoint.pt (every epoch), every rank writes rank<r>.pt (masks, "
                        "mask digests)")
    p.add_argument("--resume", default=None,
                   help="checkpoint to continue from (e.g. OUT/checkpoint.pt; same settings)")
    p.add_argument("--data-n", type=int, default=None, help="data-set size option (n=)")
    p.add_argument("--nproc-per-node", type=int, default=None,
                   help="start this many ranks on this machine (torchrun's launcher, "
                        "--standalone) after checking every flag here once; a failed rank "
                        "is then summarised in one line. Omit it under torchrun")
    return p


def validate_args(args: argparse.Namespace, world_size: int = 1) -> list[str]:
    """Every problem with the flags that can be seen without loading data, one line each.

    Why before the process group: a bad flag then stops every rank at once with one message,
    instead of one traceback per rank (or ranks waiting for one that already failed).
    """
    errors: list[str] = []

    def need(ok: bool, message: str) -> None:
        if not ok:
            errors.append(message)

    from hvgp.data import list_datasets
    from hvgp.nn import ARCHITECTURES

    names = {n.lower().replace("_", "-") for n in list_datasets()}
    need(args.data.lower().replace("_", "-") in names,
         f"unknown data set {args.data!r}; choose from {', '.join(list_datasets())}")
    need(args.arch.lower().replace("_", "-") in ARCHITECTURES,
         f"unknown architecture {args.arch!r}; choose from {', '.join(sorted(ARCHITECTURES))}")
    need(0.0 <= args.sparsity < 1.0, f"--sparsity must be in [0, 1), got {args.sparsity}")
    need(0.0 <= args.drop_rate < 1.0, f"--drop-rate must be in [0, 1), got {args.drop_rate}")
    need(args.width > 0 and math.isfinite(args.width), f"--width must be > 0, got {args.width}")
    need(args.epochs >= 1, f"--epochs must be >= 1, got {args.epochs}")
    need(args.lr > 0 and math.isfinite(args.lr), f"--lr must be > 0, got {args.lr}")
    need(args.delta_t >= 1, f"--delta-t must be >= 1, got {args.delta_t}")
    need(0 < args.timeout < math.inf, f"--timeout must be a positive number of seconds, "
                                      f"got {args.timeout}")
    need(args.data_n is None or args.data_n >= 1, f"--data-n must be >= 1, got {args.data_n}")
    need(args.backend in ("auto", "gloo", "nccl"),
         f"--backend must be auto, gloo or nccl, got {args.backend!r}")
    if args.batch_size < 1:
        errors.append(f"--batch-size must be >= 1, got {args.batch_size}")
    elif args.batch_size % world_size:
        errors.append(f"--batch-size {args.batch_size} is not divisible by the {world_size} "
                      "ranks (it is the global batch)")
    need(args.resume is None or os.path.isfile(args.resume),
         f"--resume: no checkpoint at {args.resume}")
    errors += _unwritable(args.out)
    return errors


def _unwritable(out: str) -> list[str]:
    """Why ``out`` cannot be created or written (nothing is created to find out)."""
    path = os.path.abspath(out)
    if os.path.exists(path) and not os.path.isdir(path):
        return [f"cannot write --out {out}: it is a file, not a folder"]
    probe = path
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK | os.X_OK):
        return [f"cannot write --out {out}: {probe} is not writable"]
    return []


def _load_data(args: argparse.Namespace) -> tuple[Any, Any]:
    """Train and test split of ``--data``, after checking the architecture fits them."""
    from hvgp.data import get_dataset
    from hvgp.experiment import check_architecture

    kw = {} if args.data_n is None else {"n": args.data_n}
    train = get_dataset(args.data, "train", seed=args.seed, **kw)
    test = get_dataset(args.data, "test", seed=args.seed, **kw)
    check_architecture(args.arch, train.info)
    return train, test


def _refuse(errors: Sequence[str], rank: int) -> None:
    """Rank 0 prints each error on one line; every rank exits 2 (usage error)."""
    if rank == 0:
        for e in errors:
            print(f"hvgp.distributed: error: {e}", file=sys.stderr)
    raise SystemExit(2)


def _collective_failure(err: BaseException, rank: int, timeout: float,
                        checkpoint: str) -> CollectiveTimeoutError | None:
    """The one-line error for a collective that timed out or lost a peer, else None."""
    text = str(err)
    if "Timed out" in text or "timed out" in text or "Timeout" in text:
        why = (f"a collective did not complete within {timeout:g} s (--timeout): another "
               "rank is stalled or slower than that")
    elif "Connection closed by peer" in text or "Connection reset" in text:
        why = "another rank died (connection closed)"
    else:
        return None
    kept = (f"; the last epoch-end checkpoint {checkpoint} is intact (continue with --resume "
            f"{checkpoint})" if os.path.isfile(checkpoint) else "")
    return CollectiveTimeoutError(f"rank {rank}: {why}{kept}")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Train on a registry data set; rank 0 writes ``metrics.json``, ``model.pt`` (sparse
    export), ``checkpoint.pt``; every rank writes ``rank<r>.pt`` (masks, digests).

    :raises SystemExit: 2 after printing every argument error (rank 0 prints, once).
    :raises CollectiveTimeoutError: a collective timed out or a peer rank died.
    """
    from hvgp.export import ArchSpec, save_model

    args = _parser().parse_args(argv)
    rank = _env_rank()
    errors = validate_args(args, max(1, int(os.environ.get("WORLD_SIZE", "1") or 1)))
    train = test = None
    if not errors:
        try:
            train, test = _load_data(args)
        except (ValueError, TypeError, KeyError, OSError) as err:
            errors.append(str(err))
    if not errors:
        try:
            info = init_distributed(args.backend, args.device, args.timeout)
        except (RuntimeError, ValueError) as err:
            errors.append(str(err))
    if errors:
        _refuse(errors, rank)
    assert train is not None and test is not None
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, info.world_size)))
    spec = ArchSpec(args.arch, train.info.input_shape, train.info.num_classes or 1, args.width)
    torch.manual_seed(args.seed)
    ckpt = os.path.join(args.out, "checkpoint.pt")
    est = CigL(spec.build(), args.sparsity, args.drop_rate, device=str(info.device),
               lr=args.lr, delta_t=args.delta_t, averaging=not args.no_averaging,
               seed=args.seed, checkpoint=ckpt,
               likelihood="categorical" if train.info.task == "classification" else "normal")
    try:
        est, sync = fit_distributed(est, train, args.epochs, args.batch_size // info.world_size,
                                    resume=args.resume)
    except RuntimeError as err:
        failure = _collective_failure(err, info.rank, args.timeout, ckpt)
        if failure is None:
            raise
        raise failure from None
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


def _without_nproc(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--nproc-per-node K`` / ``--nproc-per-node=K`` (the ranks' flags)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc-per-node":
            skip = True
        elif not a.startswith("--nproc-per-node="):
            out.append(a)
    return out


def _launch(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Check the flags once here, then run ``args.nproc_per_node`` ranks via torchrun's
    launcher; returns the exit code (a failed rank: one summary line, not torchrun's report).
    """
    import logging

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    n = args.nproc_per_node
    errors = [f"--nproc-per-node must be >= 1, got {n}"] if n < 1 else []
    errors += validate_args(args, max(1, n))
    if not errors:
        try:
            _load_data(args)
        except (ValueError, TypeError, KeyError, OSError) as err:
            errors.append(str(err))
    if errors:
        for e in errors:
            print(f"hvgp.distributed: error: {e}", file=sys.stderr)
        return 2
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    try:
        run(parse_args(["--standalone", "--nproc_per_node", str(n), "-m", "hvgp.distributed",
                        *_without_nproc(argv)]))
    except ChildFailedError as err:
        codes = {rank: f.exitcode for rank, f in sorted(err.failures.items())}
        what = ", ".join(f"rank {r} (exit code {c})" for r, c in codes.items())
        print(f"hvgp.distributed: failed: {what}; the error is above", file=sys.stderr)
        return 2 if set(codes.values()) == {2} else 1
    return 0


def _cli(argv: Sequence[str] | None = None) -> int:
    """``python -m hvgp.distributed``: a failed collective or a refused input is one line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.nproc_per_node is not None and "RANK" not in os.environ:
        return _launch(args, argv)
    try:
        main(argv)
    except CollectiveTimeoutError as err:
        print(f"hvgp.distributed: error: {err}", file=sys.stderr, flush=True)
        os._exit(1)  # a stalled peer would block the process group's teardown
    except (ValueError, OSError) as err:
        print(f"hvgp.distributed: error (rank {_env_rank()}): {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(_cli())
