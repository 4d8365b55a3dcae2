"""The training recipe as three small objects: topology, optimisation, averaging.

Each is a frozen dataclass with a ``from_config(RunConfig)`` path for the CLI, and builds
the objects the trainer uses (an updater, an optimizer and a scheduler, the averaging
callbacks). Strings name the paper's choices; a callable is used as given, so
``OptimRecipe(optimizer=partial(torch.optim.AdamW, lr=1e-3), schedule=my_scheduler)``
works without a new string. :class:`hvgp.infer.CigL` accepts the recipes, or their fields
as flat keywords for the one-minute API (``CigL(net, lr=0.05)``).

A *named* recipe (:data:`RECIPES`, ``CigL(net, recipe="paper")``, ``hvgp train --recipe``)
bundles the three: ``"paper"`` is the released CigL code's training (StepLR x0.5 at the
WRN-22-2 milestones, no decay on 1-D parameters, snapshots ``U * Z / (1 - p)`` averaged);
``"legacy"`` is hvgp 0.x's (cosine to zero, every parameter decayed, ``U`` averaged).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, ClassVar, TypeVar

import torch

from hvgp.sparsity import SparseTopology, TopologyUpdater, make_updater

__all__ = [
    "DEFAULT_RECIPE",
    "PAPER_MILESTONES",
    "RECIPES",
    "AveragingRecipe",
    "OptimRecipe",
    "Recipe",
    "TopologyRecipe",
    "apply_options",
    "decay_groups",
    "get_recipe",
]

#: ``optimizer(param_groups) -> Optimizer``
OptimizerFactory = Callable[[list[dict[str, Any]]], torch.optim.Optimizer]
#: ``schedule(optimizer, total_steps) -> scheduler | None``, stepped every optimizer step
ScheduleFactory = Callable[[torch.optim.Optimizer, int], Any]
R = TypeVar("R", bound="_FromConfig")

#: the released code's StepLR for WRN-22-2 as fractions of training: x0.5 every 30 000 steps
#: (``decay_frequency``, ``conf/specific/cifar10_wrn_22_2_masking.yaml``) of 250 epochs x 352
#: steps (45 000 training images after its 10 % validation split, batch 128) = 88 000 steps,
#: so at 0.341 and 0.682 (its ``end_when`` 65 918 is likewise 0.75 of the 88 000)
PAPER_MILESTONES: tuple[float, ...] = (30_000 / 88_000, 60_000 / 88_000)


def milestone_step(fraction: float, total_steps: int) -> int:
    """The optimizer step at which a milestone ``fraction`` of ``total_steps`` falls
    (floor, robust to the float error of e.g. ``30000 / 88000 * 88000``)."""
    return int(math.floor(fraction * total_steps + 1e-9))


#: the recipe ``CigL(net)``, ``RunConfig()`` and the CLI use when none is named
DEFAULT_RECIPE = "paper"


def decay_groups(params: Iterable[torch.nn.Parameter], weight_decay: float,
                 decay_1d: bool = False) -> list[dict[str, Any]]:
    """Optimizer groups: ``weight_decay`` on tensors of 2+ dimensions, none on 1-D ones
    (biases, BatchNorm/LayerNorm scales and shifts), as the released CigL/RigL code does;
    ``decay_1d=True`` decays every parameter (hvgp's behaviour before the paper recipe).

    Why: decay on normalisation scales shrinks the logit scale, i.e. changes calibration.
    Empty groups are left out; parameters keep their order within a group.
    """
    params = list(params)
    decayed = [p for p in params if decay_1d or p.dim() > 1]
    exempt = [p for p in params if not (decay_1d or p.dim() > 1)]
    groups = [{"params": decayed, "weight_decay": float(weight_decay)},
              {"params": exempt, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


class _FromConfig:
    """``from_config(RunConfig)``: the named recipe's part, with the config fields it reads."""

    #: recipe field -> :class:`hvgp.config.RunConfig` field
    config_fields: ClassVar[dict[str, str]] = {}
    #: attribute of :class:`Recipe` holding this kind of recipe
    part: ClassVar[str] = ""

    @classmethod
    def from_config(cls: type[R], cfg: Any) -> R:
        """The recipe ``cfg.recipe`` names, with the settings of a :class:`RunConfig`."""
        base = getattr(get_recipe(getattr(cfg, "recipe", DEFAULT_RECIPE)), cls.part)
        return replace(base, **cls._config_values(cfg))

    @classmethod
    def _config_values(cls, cfg: Any) -> dict[str, Any]:
        """Recipe field -> value read from ``cfg``."""
        return {mine: getattr(cfg, theirs) for mine, theirs in cls.config_fields.items()}


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
    part: ClassVar[str] = "topology"


@dataclass(frozen=True)
class OptimRecipe(_FromConfig):
    """Optimizer, weight decay and learning-rate schedule.

    :param optimizer: ``"sgd"`` (Nesterov ``momentum``), ``"adam"``, or a factory called with
        the parameter groups (each group carries its own ``weight_decay``).
    :param weight_decay: lambda; masked weights get it through the Gaussian prior
        (std ``1/sqrt(lambda N)``), other parameters of 2+ dimensions in the optimizer.
    :param schedule: ``"multistep"`` (piecewise constant: x ``gamma`` at each of the
        ``milestones``, fractions of training: the released code's StepLR), ``"cosine"``
        (to zero), ``"constant"``, or ``f(optimizer, total_steps) -> scheduler``.
    :param decay_1d: also decay 1-D parameters (biases, BatchNorm scales and shifts); the
        released code never does (:func:`decay_groups`).
    :param warmup: fraction of training with a linear learning-rate warm-up (0: none).
    """

    optimizer: str | OptimizerFactory = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str | ScheduleFactory = "multistep"
    milestones: Sequence[float] = PAPER_MILESTONES
    gamma: float = 0.5
    decay_1d: bool = False
    warmup: float = 0.0

    def __post_init__(self) -> None:
        if not callable(self.optimizer) and self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd', 'adam' or a factory, got "
                             f"{self.optimizer!r}")
        if not callable(self.schedule) and self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)} or a callable, "
                             f"got {self.schedule!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        object.__setattr__(self, "milestones", tuple(float(m) for m in self.milestones))
        if any(not 0.0 < m < 1.0 for m in self.milestones):
            raise ValueError(f"milestones are fractions of training in (0, 1), got "
                             f"{self.milestones}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma!r}")
        if not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"warmup is a fraction of training in [0, 1), got {self.warmup!r}")

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
        if self.schedule == "cosine" and self.warmup == 0:  # hvgp 0.x's, bit for bit
            return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
        if self.schedule == "constant" and self.warmup == 0:
            return None
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: self.lr_factor(step, total_steps))

    def lr_factor(self, step: int, total_steps: int) -> float:
        """Learning rate at optimizer step ``step`` (0-based) over ``lr``: warm-up x shape.

        ``multistep``: ``gamma ** #{m : step >= milestone_step(m, total_steps)}`` (StepLR's);
        ``cosine``: ``(1 + cos(pi step / total)) / 2``; warm-up: ``min(1, (step + 1) / W)``
        with ``W = int(warmup * total_steps)``.
        """
        if self.schedule == "multistep":
            shape = self.gamma ** sum(step >= milestone_step(m, total_steps)
                                      for m in self.milestones)
        elif self.schedule == "cosine":
            shape = 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))
        else:
            shape = 1.0
        warm = int(self.warmup * total_steps)
        return shape * (min(1.0, (step + 1) / warm) if warm > 0 else 1.0)

    config_fields: ClassVar[dict[str, str]] = {
        "optimizer": "optimizer", "lr": "lr", "weight_decay": "weight_decay"}
    part: ClassVar[str] = "optim"

    @classmethod
    def _config_values(cls, cfg: Any) -> dict[str, Any]:
        """As the base, plus ``lr_schedule`` unless it is ``"recipe"`` (the recipe's)."""
        values = super()._config_values(cfg)
        if getattr(cfg, "lr_schedule", "recipe") != "recipe":
            values["schedule"] = cfg.lr_schedule
        return values


@dataclass(frozen=True)
class AveragingRecipe(_FromConfig):
    """Weight-and-mask averaging: from ``start`` of the epochs the mask is frozen and one
    snapshot of all parameters per epoch is folded into a running mean (BatchNorm
    statistics re-estimated at the end).

    :param start: fraction of the epochs after which snapshots are averaged, in [0, 1).
    :param masked: average the parameters as the epoch's last step used them,
        ``U * Z / (1 - p)`` (the released code), rather than ``U``.
    """

    start: float = 0.8
    masked: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.start < 1.0:
            raise ValueError(f"average_start must be a fraction in [0, 1), got {self.start!r}")

    def start_epoch(self, epochs: int) -> int:
        """The number of completed epochs after which snapshots are folded in."""
        return int(self.start * epochs)

    config_fields: ClassVar[dict[str, str]] = {"start": "averaging_start"}
    part: ClassVar[str] = "averaging"


#: ``OptimRecipe(schedule=...)`` names
SCHEDULES: tuple[str, ...] = ("multistep", "cosine", "constant")


@dataclass(frozen=True)
class Recipe:
    """A named training recipe: topology, optimisation and averaging together."""

    name: str
    description: str
    topology: TopologyRecipe
    optim: OptimRecipe
    averaging: AveragingRecipe


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("paper", "the released CigL code: StepLR x0.5 at 34 and 68 % of training, no decay "
           "on 1-D parameters, snapshots U*Z/(1-p) averaged",
           TopologyRecipe(), OptimRecipe(schedule="multistep", milestones=PAPER_MILESTONES,
                                         gamma=0.5, decay_1d=False),
           AveragingRecipe(masked=True)),
    Recipe("legacy", "hvgp 0.x: cosine to zero, every parameter decayed, U averaged",
           TopologyRecipe(), OptimRecipe(schedule="cosine", decay_1d=True),
           AveragingRecipe(masked=False)),
)}


def get_recipe(name: str | Recipe) -> Recipe:
    """The named recipe (a :class:`Recipe` is returned as given).

    :raises ValueError: an unknown name (the message lists the known ones).
    """
    if isinstance(name, Recipe):
        return name
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    return RECIPES[name]


#: flat keyword of the one-minute API -> (recipe, field)
_FLAT: dict[str, tuple[str, str]] = {
    **{f.name: ("topology", f.name) for f in fields(TopologyRecipe)},
    **{f.name: ("optim", f.name) for f in fields(OptimRecipe)},
    "average_start": ("averaging", "start"),
    "average_masked": ("averaging", "masked"),
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
