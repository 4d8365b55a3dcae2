"""``CigL`` / ``RigL``: the one-minute API (build, ``fit``, ``predict``, ``evaluate``).

>>> import torch
>>> from torch.utils.data import DataLoader, TensorDataset
>>> from hvgp.nn import build_model
>>> x, y = torch.randn(64, 40), torch.randint(0, 3, (64,))
>>> est = CigL(build_model("mlp", (40,), 3, width=0.1), sparsity=0.8, device="cpu")
>>> est = est.fit(DataLoader(TensorDataset(x, y), batch_size=16), epochs=2)
>>> est.predict(x[:5]).probs.shape
torch.Size([1, 5, 3])
>>> round(est.sparsity(), 2)
0.8
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from hvgp.infer.callbacks import (
    Callback,
    Checkpoint,
    MetricsLogger,
    ProgressBar,
    TopologyUpdate,
    WeightAveraging,
    loader_generators,
)
from hvgp.infer.checkpoint import load_checkpoint, set_rng_state
from hvgp.infer.model import SparseBNN, prior_scale_from_weight_decay
from hvgp.infer.predictive import predictive_samples
from hvgp.infer.trainer import Trainer
from hvgp.nn.layers import masked_layers, to_masked
from hvgp.predict import PredictiveSamples
from hvgp.sparsity import SparseTopology, check_sparsity, make_updater
from hvgp.utils import resolve_device, seed_everything

__all__ = ["CigL", "RigL"]


class CigL:
    """Sparse training with a random mask and weight averaging, as SVI on a Pyro program.

    The network's weights are a point-mass guide at the RigL weights U (mask M from the
    topology updater); each step draws the random mask Z ~ Bernoulli(1 - p) and maximises
    the ELBO (= NLL + weight decay, see :mod:`hvgp.infer.model`). From ``average_start``
    of the epochs on the mask is frozen and one snapshot per epoch is folded into a
    running mean; the averaged sparse model (BatchNorm re-estimated) is what ``predict``
    uses. ``drop_rate=0, averaging=False`` is RigL; ``sparsity=0`` is a dense network.

    :param net: a network of :mod:`hvgp.nn` masked layers (plain ``Linear``/``Conv`` layers
        are converted in place).
    :param sparsity: global fraction of zero weights, in [0, 1).
    :param drop_rate: random-mask rate p (float, or dict layer name -> p).
    :param likelihood: ``"categorical"`` or ``"normal"`` (``noise`` fixes its std).
    :param method: mask allocation, ``"erk"`` / ``"er"`` / ``"uniform"``.
    :param updater: ``"rigl"``, ``"set"`` or ``"static"``; ``delta_t``, ``t_end``, ``alpha``
        its schedule.
    :param optimizer: ``"sgd"`` (Nesterov ``momentum``) or ``"adam"``.
    :param weight_decay: lambda; the weight prior std is ``1/sqrt(lambda N)``. Biases and
        BatchNorm parameters (point estimates) get the same decay in the optimizer.
    :param schedule: ``"cosine"``, ``"multistep"`` (``milestones`` fractions, ``gamma``)
        or ``"constant"``; stepped every optimizer step.
    :param averaging: fold epoch snapshots after ``average_start`` of the epochs.
    :param device: ``"auto"``, ``"cpu"`` or ``"cuda[:i]"``.
    :param checkpoint: file path to save the training state every ``checkpoint_every``
        epochs (atomic); ``fit(..., resume=path)`` continues from it.
    """

    def __init__(
        self,
        net: nn.Module,
        sparsity: float = 0.9,
        drop_rate: float | Mapping[str, float] = 0.01,
        *,
        likelihood: str = "categorical",
        noise: float | None = None,
        method: str = "erk",
        dense_first_last: bool | str = False,
        updater: str = "rigl",
        delta_t: int = 100,
        t_end: float = 0.75,
        alpha: float = 0.3,
        optimizer: str = "sgd",
        lr: float = 0.1,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 5e-4,
        schedule: str = "cosine",
        milestones: Sequence[float] = (0.5, 0.75),
        gamma: float = 0.1,
        averaging: bool = True,
        average_start: float = 0.8,
        device: str | torch.device = "auto",
        seed: int = 0,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int = 1,
        progress: bool = False,
        callbacks: Iterable[Callback] = (),
    ) -> None:
        if not isinstance(net, nn.Module):
            raise TypeError(f"net must be a torch.nn.Module, got {type(net).__name__}")
        self.sparsity_target = check_sparsity(sparsity)
        if optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
        if schedule not in ("cosine", "multistep", "constant"):
            raise ValueError(f"schedule must be cosine/multistep/constant, got {schedule!r}")
        if not 0.0 <= average_start < 1.0:
            raise ValueError(f"average_start must be a fraction in [0, 1), got {average_start!r}")
        if not (lr > 0 and math.isfinite(lr)):
            raise ValueError(f"lr must be positive, got {lr!r}")
        self.device = resolve_device(device)
        if not masked_layers(net):
            net = to_masked(net)
        self.net = net.to(self.device)
        self.seed = int(seed)
        self.topology = (
            SparseTopology(self.net, self.sparsity_target, method, dense_first_last, seed=seed)
            if self.sparsity_target > 0 else None
        )
        self.bnn = SparseBNN(self.net, likelihood, drop_rate, noise=noise).to(self.device)
        self.config = dict(
            updater=updater, delta_t=delta_t, t_end=t_end, alpha=alpha, optimizer=optimizer,
            lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
            schedule=schedule, milestones=tuple(milestones), gamma=gamma, averaging=averaging,
            average_start=average_start,
        )
        self.checkpoint_path, self.checkpoint_every = checkpoint, checkpoint_every
        self.progress = progress
        self.user_callbacks = list(callbacks)
        self.averaged_: nn.Module | None = None
        self.history_: list[dict[str, Any]] = []
        self.trainer: Trainer | None = None

    # ---- training ------------------------------------------------------------------------
    def _optimizer(self) -> torch.optim.Optimizer:
        c = self.config
        masked = {id(layer.weight) for layer in self.bnn.guide.layers.values()}
        noise = {id(p) for p in self.bnn.likelihood.parameters()}
        groups = [
            {"params": [p for p in self.bnn.parameters() if id(p) in masked], "weight_decay": 0.0},
            {"params": [p for p in self.bnn.parameters() if id(p) not in masked | noise],
             "weight_decay": c["weight_decay"]},
            {"params": [p for p in self.bnn.parameters() if id(p) in noise], "weight_decay": 0.0},
        ]
        groups = [g for g in groups if g["params"]]
        if c["optimizer"] == "sgd":
            return torch.optim.SGD(groups, lr=c["lr"], momentum=c["momentum"],
                                   nesterov=c["nesterov"] and c["momentum"] > 0)
        return torch.optim.Adam(groups, lr=c["lr"])

    def _scheduler(self, opt: torch.optim.Optimizer, total: int) -> Any:
        c = self.config
        if c["schedule"] == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
        if c["schedule"] == "multistep":
            steps = sorted(int(m * total) for m in c["milestones"])
            return torch.optim.lr_scheduler.MultiStepLR(opt, steps, gamma=c["gamma"])
        return None

    def fit(
        self,
        train_loader: Any,
        epochs: int,
        resume: str | os.PathLike | None = None,
        val_loader: Any = None,
    ) -> CigL:
        """Train for ``epochs`` epochs (or continue a checkpoint with ``resume=path``).

        :param train_loader: yields ``(x, y)`` batches; ``len(train_loader.dataset)`` is N.
        :param val_loader: if given, ``evaluate`` on it after every epoch (in ``history_``).
        """
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
        c = self.config
        n = len(train_loader.dataset)
        if n == 0:
            raise ValueError("the training data set is empty: nothing to fit")
        steps_per_epoch = len(train_loader)
        total = epochs * steps_per_epoch
        self.bnn.data_size = n
        self.bnn.prior_scale = prior_scale_from_weight_decay(c["weight_decay"], n)
        opt = self._optimizer()
        start_epoch = int(c["average_start"] * epochs)
        callbacks: list[Callback] = []
        if self.topology is not None:
            upd = make_updater(c["updater"], self.topology, total_steps=total,
                               delta_t=c["delta_t"], t_end=c["t_end"], alpha=c["alpha"],
                               seed=self.seed)
            freeze = start_epoch * steps_per_epoch if c["averaging"] else None
            callbacks.append(TopologyUpdate(upd, freeze_step=freeze))
        averager = WeightAveraging(start_epoch) if c["averaging"] else None
        if averager is not None:
            callbacks.append(averager)
        evaluate = None if val_loader is None else (
            lambda: {f"val_{k}": v for k, v in self.evaluate(val_loader, current=True).items()})
        logger = MetricsLogger(evaluate)
        callbacks.append(logger)
        if self.checkpoint_path is not None:
            callbacks.append(Checkpoint(self.checkpoint_path, self.checkpoint_every,
                                        extra={"config": _plain(self.config)}))
        if self.progress:
            callbacks.append(ProgressBar(total))
        callbacks += self.user_callbacks
        self.trainer = Trainer(self.bnn, opt, self.topology, self._scheduler(opt, total), callbacks)
        if resume is not None:
            state = load_checkpoint(resume, map_location=self.device)
            self.trainer.load_state_dict(state)
            set_rng_state(state["rng"], loader_generators(train_loader))
        else:
            seed_everything(self.seed)
        self.trainer.fit(train_loader, epochs)
        self.history_ = logger.history
        self.averaged_ = None if averager is None else averager.averaged
        return self

    # ---- prediction ----------------------------------------------------------------------
    @property
    def model_(self) -> nn.Module:
        """The network used for prediction: the averaged one if averaging ran, else current."""
        return self.averaged_ if self.averaged_ is not None else self.net

    def _bnn_for(self, current: bool) -> SparseBNN:
        if current or self.averaged_ is None:
            return self.bnn
        b = self.bnn
        return SparseBNN(self.averaged_, b.likelihood, b.drop_rates, b.prior_scale, b.data_size)

    def predict(
        self,
        x: torch.Tensor,
        num_samples: int | None = None,
        vectorize: bool | None = None,
        current: bool = False,
    ) -> PredictiveSamples:
        """Predictive samples at ``x``: deterministic (``num_samples=None``, S = 1) or
        ``num_samples`` draws of the random mask Z (vectorised).

        :param current: use the current (not averaged) weights.
        """
        return predictive_samples(self._bnn_for(current), x, num_samples, vectorize)

    def predict_loader(
        self, loader: Iterable, num_samples: int | None = None, current: bool = False
    ) -> tuple[PredictiveSamples, torch.Tensor]:
        """Predictions for every batch of ``loader`` joined along N, with the targets."""
        parts, ys = [], []
        for x, y in loader:
            parts.append(self.predict(x, num_samples, current=current).to("cpu"))
            ys.append(y.cpu())
        return PredictiveSamples.concat(parts), torch.cat(ys)

    def evaluate(
        self, loader: Iterable, num_samples: int | None = None, current: bool = False
    ) -> dict[str, float]:
        """Accuracy/ECE/NLL/Brier... (classification) or RMSE/NLL/CRPS (regression)."""
        from hvgp.metrics import classification_report, regression_report

        samples, y = self.predict_loader(loader, num_samples, current)
        if samples.is_classification:
            return classification_report(samples, y)
        return regression_report(samples, y)

    # ---- introspection ---------------------------------------------------------------------
    def sparsity(self, averaged: bool = True) -> float:
        """Structural sparsity of the prediction network: the fraction of maskable weights
        outside the deterministic mask M (all exactly zero). An active weight that happens to
        be zero (e.g. grown and never updated) still counts as active: it is stored and
        computed with, so it is part of the model's size.
        """
        net = self.model_ if averaged else self.net
        layers = masked_layers(net).values()
        inactive = sum(int((~layer.weight_mask).sum()) for layer in layers)
        return inactive / sum(layer.weight_mask.numel() for layer in layers)

    def __repr__(self) -> str:
        rates = set(self.bnn.drop_rates.values())
        p = rates.pop() if len(rates) == 1 else "per-layer"
        return (f"{type(self).__name__}(sparsity={self.sparsity_target}, drop_rate={p}, "
                f"averaging={self.config['averaging']}, device={self.device})")


class RigL(CigL):
    """RigL: :class:`CigL` without the random mask (``drop_rate=0``) and without averaging."""

    def __init__(self, net: nn.Module, sparsity: float = 0.9, **kw: Any) -> None:
        kw.setdefault("drop_rate", 0.0)
        kw.setdefault("averaging", False)
        super().__init__(net, sparsity, **kw)


def _plain(obj: Any) -> Any:
    """Tuples -> lists, recursively (plain containers for ``weights_only`` checkpoints)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
