"""The training recipe as three small objects: topology, optimisation, averaging.

Each is a frozen dataclass with a ``from_config(RunConfig)`` path for the CLI, and builds
the objects the trainer uses (an updater, an optimizer and a scheduler, the averaging
callbacks). Strings name the paper's choices; a callable is used as given, so
``OptimRecipe(optimizer=partial(torch.optim.AdamW, lr=1e-3), schedule=my_scheduler)``
works without a new string. :class:`hvgp.infer.CigL` accepts the recipes, or their fields
as flat keywords for the one-minute API (``CigL(net, lr=0.05)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, ClassVar, TypeVar

import torch

from hvgp.sparsity import SparseTopology, TopologyUpdater, make_updater

__all__ = ["AveragingRecipe", "OptimRecipe", "TopologyRecipe", "apply_options"]

#: ``optimizer(param_groups) -> Optimizer``
OptimizerFactory = Callable[[list[dict[str, Any]]], torch.optim.Optimizer]
#: ``schedule(optimizer, total_steps) -> scheduler | None``, stepped every optimizer step
ScheduleFactory = Callable[[torch.optim.Optimizer, int], Any]
R = TypeVar("R", bound="_FromConfig")


class _FromConfig:
    """``from_config(RunConfig)``: each recipe names the config fields it reads."""

    #: recipe field -> :class:`hvgp.config.RunConfig` field
    config_fields: ClassVar[dict[str, str]] = {}

    @classmethod
    def from_config(cls: type[R], cfg: Any) -> R:
        """The recipe's settings of a :class:`hvgp.config.RunConfig`."""
        return cls(**{mine: getattr(cfg, theirs) for mine, theirs in cls.config_fields.items()})


@dataclass(frozen=True)
class TopologyRecipe(_FromConfig):
    """Which weights exist and how they are rewired (RigL / SET / Static).

    :param method: mask allocation, ``"erk"`` / ``"er"`` / ``"uniform"``.
    :param dense_first_last: keep the first/last layer dense (see :class:`SparseTopology`).
    :param updater: ``"rigl"``, ``"set"``, ``"static"`` or ``f(topology, **schedule)``.
    :param delta_t: steps between updates.
    :param t_end: fraction of training after which the mask stops changing.
    :param drop_fraction: initial fraction of active weights rewired (cosine-decayed).
    """

    method: str = "erk"
    dense_first_last: bool | str = False
    updater: str | Callable[..., TopologyUpdater] = "rigl"
    delta_t: int = 100
    t_end: float = 0.75
    drop_fraction: float = 0.3

    def topology(self, net: torch.nn.Module, sparsity: float, seed: int) -> SparseTopology:
        """The deterministic mask M of ``net`` at ``sparsity``."""
        return SparseTopology(net, sparsity, self.method, self.dense_first_last, seed=seed)

    def make_updater(self, topology: SparseTopology, total_steps: int,
                     seed: int) -> TopologyUpdater:
        """The updater that rewires ``topology`` over ``total_steps`` optimizer steps."""
        kw = dict(total_steps=total_steps, delta_t=self.delta_t, t_end=self.t_end,
                  alpha=self.drop_fraction, seed=seed)
        if callable(self.updater):
            return self.updater(topology, **kw)
        return make_updater(self.updater, topology, **kw)

    config_fields: ClassVar[dict[str, str]] = {
        "method": "sparse_init", "delta_t": "delta_t", "t_end": "t_end",
        "drop_fraction": "drop_fraction"}


@dataclass(frozen=True)
class OptimRecipe(_FromConfig):
    """Optimizer, weight decay and learning-rate schedule.

    :param optimizer: ``"sgd"`` (Nesterov ``momentum``), ``"adam"``, or a factory called with
        the parameter groups (each group carries its own ``weight_decay``).
    :param weight_decay: lambda; masked weights get it through the Gaussian prior
        (std ``1/sqrt(lambda N)``), biases and BatchNorm parameters in the optimizer.
    :param schedule: ``"cosine"``, ``"multistep"`` (``milestones`` fractions, ``gamma``),
        ``"constant"``, or ``f(optimizer, total_steps) -> scheduler``.
    """

    optimizer: str | OptimizerFactory = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str | ScheduleFactory = "cosine"
    milestones: Sequence[float] = (0.5, 0.75)
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if not callable(self.optimizer) and self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd', 'adam' or a factory, got "
                             f"{self.optimizer!r}")
        if not callable(self.schedule) and self.schedule not in ("cosine", "multistep",
                                                                 "constant"):
            raise ValueError(f"schedule must be cosine/multistep/constant or a callable, got "
                             f"{self.schedule!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        object.__setattr__(self, "milestones", tuple(self.milestones))

    def build_optimizer(self, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
        """The optimizer over ``groups`` (named, or the factory's)."""
        if callable(self.optimizer):
            return self.optimizer(groups)
        if self.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=self.lr, momentum=self.momentum,
                                   nesterov=self.nesterov and self.momentum > 0)
        return torch.optim.Adam(groups, lr=self.lr)

    def build_scheduler(self, opt: torch.optim.Optimizer, total_steps: int) -> Any:
        """The scheduler stepped every optimizer step (None: constant learning rate)."""
        if callable(self.schedule):
            return self.schedule(opt, total_steps)
        if self.schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
        if self.schedule == "multistep":
            steps = sorted(int(m * total_steps) for m in self.milestones)
            return torch.optim.lr_scheduler.MultiStepLR(opt, steps, gamma=self.gamma)
        return None

    config_fields: ClassVar[dict[str, str]] = {
        "optimizer": "optimizer", "lr": "lr", "weight_decay": "weight_decay",
        "schedule": "lr_schedule"}


@dataclass(frozen=True)
class AveragingRecipe(_FromConfig):
    """Weight-and-mask averaging: from ``start`` of the epochs the mask is frozen and one
    snapshot of all parameters per epoch is folded into a running mean (BatchNorm
    statistics re-estimated at the end).

    :param start: fraction of the epochs after which snapshots are averaged, in [0, 1).
    """

    start: float = 0.8

    def __post_init__(self) -> None:
        if not 0.0 <= self.start < 1.0:
            raise ValueError(f"average_start must be a fraction in [0, 1), got {self.start!r}")

    def start_epoch(self, epochs: int) -> int:
        """The number of completed epochs after which snapshots are folded in."""
        return int(self.start * epochs)

    config_fields: ClassVar[dict[str, str]] = {"start": "averaging_start"}


#: flat keyword of the one-minute API -> (recipe, field)
_FLAT: dict[str, tuple[str, str]] = {
    **{f.name: ("topology", f.name) for f in fields(TopologyRecipe)},
    **{f.name: ("optim", f.name) for f in fields(OptimRecipe)},
    "average_start": ("averaging", "start"),
}
_RENAMED = {"alpha": "drop_fraction (the RigL drop fraction; Mixup's is mixup_alpha)"}


def apply_options(recipes: Mapping[str, Any], options: Mapping[str, Any],
                  owner: str) -> dict[str, Any]:
    """``recipes`` (name -> recipe) with the flat keywords ``options`` written into them.

    :raises TypeError: a keyword that belongs to no recipe (the message lists the valid ones).
    """
    out = dict(recipes)
    changes: dict[str, dict[str, Any]] = {}
    for key, value in options.items():
        if key in _RENAMED:
            raise TypeError(f"{owner}: {key!r} was renamed; use {_RENAMED[key]}")
        if key not in _FLAT:
            raise TypeError(f"{owner} got an unexpected keyword {key!r}; recipe keywords: "
                            f"{', '.join(_FLAT)}")
        recipe, name = _FLAT[key]
        changes.setdefault(recipe, {})[name] = value
    for recipe, values in changes.items():
        out[recipe] = replace(out[recipe], **values)
    return out


def plain(recipe: Any) -> dict[str, Any]:
    """A recipe as plain data (callables by name), for checkpoints and ``repr``."""
    def simple(v: Any) -> Any:
        if callable(v):
            return getattr(v, "__qualname__", None) or repr(v)
        return list(v) if isinstance(v, tuple) else v

    return {k: simple(v) for k, v in asdict(recipe).items()}
