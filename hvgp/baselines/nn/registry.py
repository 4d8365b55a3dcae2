"""``make_estimator``: one name -> one estimator, for the CLI and ``hvgp.compare``.

Every estimator has CigL's surface: ``fit(train_loader, epochs, val_loader=None)``,
``predict(x, num_samples=None) -> PredictiveSamples``, ``predict_loader(loader,
num_samples)``, ``evaluate(loader, num_samples=None)`` and ``sparsity()``.

>>> from hvgp.nn import build_model
>>> est = make_estimator("mc-dropout", build_model("mlp", (4,), 2, width=0.1), device="cpu")
>>> type(est).__name__, est.num_samples
('MCDropout', 32)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from hvgp.baselines.nn._common import fix_kwargs
from hvgp.baselines.nn.dense import WDP, Dense
from hvgp.baselines.nn.dropout import MCDropout
from hvgp.baselines.nn.ensemble import DeepEnsemble
from hvgp.baselines.nn.mixup import Mixup
from hvgp.baselines.nn.smoothing import LabelSmoothing
from hvgp.baselines.nn.temperature import TemperatureScaled
from hvgp.infer import CigL, RigL
from hvgp.utils import seed_everything

__all__ = ["ESTIMATORS", "make_estimator"]


def _sparse(updater: str) -> Callable[..., Any]:
    def build(net: nn.Module, **kw: Any) -> RigL:
        return RigL(net, **fix_kwargs(kw, f"{updater!r}", updater=updater))

    return build


def _temperature(net_or_factory: Any, base: str = "rigl", sparsity: float = 0.0,
                 **kw: Any) -> TemperatureScaled:
    """Any other estimator (``base``, RigL by default: dense at sparsity 0) plus one T."""
    if _canonical(base) == "temperature":
        raise ValueError("base='temperature' would temper twice; pick another base estimator")
    return TemperatureScaled(make_estimator(base, net_or_factory, sparsity=sparsity, **kw))


# name -> builder(net, **kw); "ensemble" and "temperature" get net_or_factory as given
_BUILDERS: dict[str, Callable[..., Any]] = {
    "cigl": CigL,
    "rigl": _sparse("rigl"),
    "set": _sparse("set"),
    "static": _sparse("static"),
    "dense": Dense,
    "mc-dropout": MCDropout,
    "wdp": WDP,
    "label-smoothing": LabelSmoothing,
    "mixup": Mixup,
    "temperature": _temperature,
    "ensemble": DeepEnsemble,
}
ESTIMATORS: tuple[str, ...] = tuple(_BUILDERS)
_ALIASES = {"w-dp": "wdp", "mcdropout": "mc-dropout", "ls": "label-smoothing",
            "ts": "temperature", "deep-ensemble": "ensemble"}


def _canonical(name: str) -> str:
    key = str(name).strip().lower().replace("_", "-")
    return _ALIASES.get(key, key)


def make_estimator(
    name: str, net_or_factory: nn.Module | Callable[[], nn.Module], **kw: Any
) -> Any:
    """Build the estimator called ``name`` on a network (or a factory of networks).

    :param name: one of :data:`ESTIMATORS` (case, ``_``/``-`` insensitive):
        ``cigl``, ``rigl``, ``set``, ``static`` (:class:`hvgp.infer.CigL` / ``RigL`` with that
        topology updater), ``dense``, ``mc-dropout``, ``wdp``, ``label-smoothing``, ``mixup``,
        ``temperature``, ``ensemble``.
    :param net_or_factory: a network, or a no-argument callable returning one. ``ensemble``
        needs the factory (one network per member); other names call it once, after
        seeding with ``seed`` (so the initialisation is reproducible).
    :param kw: the estimator's keywords: CigL's (``sparsity``, ``lr``, ``weight_decay``,
        ``schedule``, ``device``, ``seed``...) and the baseline's own (``dropout``,
        ``num_samples``, ``smoothing``, ``alpha``, ``num_members``, ``member``, and
        ``base``: the estimator ``temperature`` recalibrates, ``ensemble`` included).
        The baselines default to ``sparsity=0`` (dense); CigL/RigL to CigL's 0.9.
    :raises ValueError: for an unknown name (the message lists the valid ones).
    """
    if not isinstance(name, str):
        raise TypeError(f"estimator name must be a string, got {type(name).__name__}")
    key = _canonical(name)
    if key not in _BUILDERS:
        raise ValueError(f"unknown estimator {name!r}; valid names: {', '.join(ESTIMATORS)}")
    if key in ("ensemble", "temperature"):
        return _BUILDERS[key](net_or_factory, **kw)
    net = net_or_factory
    if not isinstance(net, nn.Module):
        if not callable(net):
            raise TypeError("net_or_factory must be an nn.Module or a callable returning one, "
                            f"got {type(net).__name__}")
        seed_everything(int(kw.get("seed", 0)))
        net = net()
    return _BUILDERS[key](net, **kw)
