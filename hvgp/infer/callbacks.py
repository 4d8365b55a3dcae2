"""Training callbacks: topology updates, weight averaging, checkpoints, logging, progress.

Each callback does one job at fixed points of :class:`~hvgp.infer.trainer.Trainer` and
keeps its own state for checkpoints (tensors and plain containers only).
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from hvgp.infer.checkpoint import get_rng_state, save_checkpoint
from hvgp.infer.guide import weight_site
from hvgp.infer.model import mask_site
from hvgp.sparsity import TopologyUpdater

__all__ = [
    "Callback",
    "Checkpoint",
    "MetricsLogger",
    "ProgressBar",
    "TopologyUpdate",
    "WeightAveraging",
]


class Callback:
    """Base class: every hook is a no-op; state is empty."""

    def on_fit_start(self, trainer: Any) -> None: ...

    def on_after_backward(self, trainer: Any) -> None: ...

    def on_step_end(self, trainer: Any, loss: float) -> None: ...

    def on_epoch_end(self, trainer: Any) -> None: ...

    def on_fit_end(self, trainer: Any) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


class TopologyUpdate(Callback):
    """RigL/SET drop-and-grow between ``backward`` and ``step`` (dense gradients available).

    :param updater: a :class:`~hvgp.sparsity.TopologyUpdater`.
    :param freeze_step: no updates from this step on (the mask is frozen for averaging).
    """

    def __init__(self, updater: TopologyUpdater, freeze_step: int | None = None) -> None:
        self.updater, self.freeze_step = updater, freeze_step
        self.num_updates = 0

    def on_after_backward(self, trainer: Any) -> None:
        step = trainer.step
        if self.freeze_step is not None and step >= self.freeze_step:
            return
        if self.updater.should_update(step):
            self.updater.update(step, trainer.optimizer)
            self.num_updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"updater": self.updater.state_dict(), "num_updates": self.num_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updater.load_state_dict(state["updater"])
        self.num_updates = int(state["num_updates"])


class WeightAveraging(Callback):
    """Running mean of the parameters at the end of each epoch after ``start_epoch``.

    The mask must be frozen from ``start_epoch`` (see :class:`TopologyUpdate`), so every
    snapshot - and hence the mean - is zero outside M: the averaged model has exactly the
    target sparsity. At the end BatchNorm statistics are recomputed for the averaged
    weights over the training loader (deterministic forward, no random mask).

    :param start_epoch: number of completed epochs after which snapshots are folded in.
    :param masked: fold in the parameters as the last step of the epoch used them,
        ``U * Z / (1 - p)`` on the active weights (the released code's snapshot), instead of
        ``U``: same expectation over Z, a different noise on the mean.
    """

    def __init__(self, start_epoch: int, masked: bool = False) -> None:
        if start_epoch < 0:
            raise ValueError(f"start_epoch must be >= 0, got {start_epoch}")
        self.start_epoch = int(start_epoch)
        self.masked = bool(masked)
        self.count = 0
        self.mean: dict[str, torch.Tensor] = {}
        self.averaged: nn.Module | None = None

    @torch.no_grad()
    def snapshot(self, trainer: Any) -> dict[str, torch.Tensor]:
        """The parameters folded in this epoch (``U``, or ``U * Z / (1 - p)`` if masked)."""
        snap = {name: p.detach() for name, p in trainer.bnn.net.named_parameters()}
        if not self.masked:
            return snap
        for name, layer in trainer.bnn.layers.items():
            z = trainer.last_masks.get(mask_site(name))
            if z is not None:
                keep = 1.0 - trainer.bnn.drop_rates[name]
                factor = torch.where(layer.weight_mask, z / keep, torch.ones_like(z))
                snap[weight_site(name)] = layer.weight.detach() * factor
        return snap

    @torch.no_grad()
    def on_epoch_end(self, trainer: Any) -> None:
        if trainer.epoch <= self.start_epoch:
            return
        self.count += 1
        for name, p in self.snapshot(trainer).items():
            if name not in self.mean:
                self.mean[name] = p.clone()
            else:
                self.mean[name] += (p - self.mean[name]) / self.count

    @torch.no_grad()
    def on_fit_end(self, trainer: Any) -> None:
        if self.count == 0:
            return
        self.averaged = self.build(trainer.bnn.net, trainer.loader)

    @torch.no_grad()
    def build(self, net: nn.Module, loader: Any) -> nn.Module:
        """A copy of ``net`` holding the averaged parameters, BatchNorm stats recomputed."""
        avg = copy.deepcopy(net)
        for name, p in avg.named_parameters():
            p.copy_(self.mean[name])
        if loader is not None and any(isinstance(m, nn.modules.batchnorm._BatchNorm)
                                      for m in avg.modules()):
            update_bn(((x, y) for x, y in loader), avg, device=next(avg.parameters()).device)
        return avg.eval()

    def state_dict(self) -> dict[str, Any]:
        return {"start_epoch": self.start_epoch, "count": self.count, "mean": dict(self.mean),
                "masked": self.masked}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.start_epoch, self.count = int(state["start_epoch"]), int(state["count"])
        self.masked = bool(state.get("masked", False))
        self.mean = {k: v.clone() for k, v in state["mean"].items()}


class Checkpoint(Callback):
    """Atomically saves the full training state every ``every`` epochs to ``path``.

    :param path: checkpoint file (overwritten atomically; never half-written).
    :param every: epochs between saves.
    :param extra: plain-data dict stored alongside (e.g. the estimator's configuration).
    """

    def __init__(self, path: str | os.PathLike, every: int = 1, extra: dict | None = None):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.path, self.every, self.extra = path, int(every), dict(extra or {})

    def on_epoch_end(self, trainer: Any) -> None:
        if trainer.epoch % self.every == 0:
            self.save(trainer)

    def save(self, trainer: Any) -> None:
        state = trainer.state_dict()
        state["rng"] = get_rng_state(loader_generators(trainer.loader))
        state["extra"] = self.extra
        save_checkpoint(self.path, state)


def loader_generators(loader: Any) -> dict[str, torch.Generator]:
    """The torch generators a DataLoader shuffles with (saved so a resume reshuffles alike)."""
    gens = {}
    for key, obj in (("loader", loader), ("sampler", getattr(loader, "sampler", None))):
        g = getattr(obj, "generator", None)
        if isinstance(g, torch.Generator):
            gens[key] = g
    return gens


class MetricsLogger(Callback):
    """Per-epoch history: mean loss, learning rate, wall time, density and optional metrics.

    :param evaluate: called every ``every`` epochs; its dict is merged into the record.
    """

    def __init__(self, evaluate: Callable[[], dict[str, float]] | None = None, every: int = 1):
        self.evaluate, self.every = evaluate, int(every)
        self.history: list[dict[str, Any]] = []
        self._losses: list[float] = []
        self._t0 = time.perf_counter()

    def on_step_end(self, trainer: Any, loss: float) -> None:
        self._losses.append(loss)

    def on_epoch_end(self, trainer: Any) -> None:
        rec: dict[str, Any] = {
            "epoch": trainer.epoch,
            "step": trainer.step,
            "loss": sum(self._losses) / max(1, len(self._losses)),
            "lr": trainer.optimizer.param_groups[0]["lr"],
            "time_s": time.perf_counter() - self._t0,
        }
        if trainer.topology is not None:
            rec["density"] = trainer.topology.density()
        if self.evaluate is not None and trainer.epoch % self.every == 0:
            rec.update(self.evaluate())
        self.history.append(rec)
        self._losses = []

    def state_dict(self) -> dict[str, Any]:
        return {"history": [dict(r) for r in self.history]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = [dict(r) for r in state["history"]]


class ProgressBar(Callback):
    """tqdm bar over optimizer steps showing the running loss (``total_steps``: default
    the trainer's epochs x steps per epoch).

    The loss is the negative ELBO per training point: NLL + weight decay + the Gaussian prior's
    normalising constant (about ``n_kept * log(s * sqrt(2 pi)) / N``, ~1.9 for the MNIST-1D
    CNN at 90 %), so it levels off well above the NLL; only its changes are informative.
    """

    def __init__(self, total_steps: int | None = None, desc: str = "train") -> None:
        self.total, self.desc, self.bar = total_steps, desc, None

    def on_fit_start(self, trainer: Any) -> None:
        from tqdm.auto import tqdm

        total = self.total or trainer.epochs * trainer.steps_per_epoch
        self.bar = tqdm(total=total, initial=trainer.step, desc=self.desc, leave=False)

    def on_step_end(self, trainer: Any, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if trainer.step % 10 == 0:
                self.bar.set_postfix({"-elbo/N": f"{loss:.4f}", "epoch": trainer.epoch})

    def on_fit_end(self, trainer: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
