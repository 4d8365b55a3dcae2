"""One registry of trainable models: ``@register_model(name, kind=..., aliases=...)``.

Everything that lists models derives from it: :data:`hvgp.config.MODELS`,
:data:`hvgp.experiment.GP_MODELS` / ``WRAPPER_MODELS``, ``hvgp list``, the CLI's ``--model``
help and per-model flags, and :func:`make_estimator`. Adding a model is one module with one
decorator (see the README's "Extending hvgp").

Kinds decide how a model is built and what a run keeps:

- ``"network"``: ``cls(net, **kw)`` on one network; trained with checkpoints.
- ``"wrapper"``: ``cls(net_factory, **kw)``: several networks or a post-hoc layer on another
  estimator (ensembles, temperature scaling); no training checkpoint.
- ``"gp"``: ``cls(**kw)`` (``num_classes=`` on classification data); a GPyTorch model on
  flattened inputs; no training checkpoint. ``task=`` registers a per-task class under one name.

Why lazy discovery: the built-in models live in :mod:`hvgp.infer` and the modules of
:mod:`hvgp.baselines` (GPyTorch among them); they are imported the first time the registry is
read, so ``import hvgp.config`` stays light and no module imports the registry's users.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["KINDS", "ModelSpec", "get_model", "make_estimator", "model_names",
           "register_model"]

KINDS: tuple[str, ...] = ("network", "wrapper", "gp")
T = TypeVar("T")

#: packages whose modules register the built-in models (imported on first use)
_PROVIDERS: tuple[str, ...] = ("hvgp.infer.estimator", "hvgp.baselines.nn", "hvgp.baselines.gp")


@dataclass
class ModelSpec:
    """What the registry knows about one model name.

    :param builders: task (``None``: any task) -> class or builder function.
    :param fixed: keyword arguments that define the model (``updater="set"``); a conflicting
        value is an error.
    :param options: per-model options (estimator keyword -> default), settable through
        ``RunConfig.model_options``, TOML and ``--<option>`` flags.
    :param reads: RunConfig fields this model takes beyond the shared recipe
        (field -> estimator keyword), e.g. CigL's ``drop_rate``.
    :param needs_val: ``fit`` gets the validation loader (e.g. a post-hoc temperature).
    """

    name: str
    kind: str
    builders: dict[str | None, Callable[..., Any]] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    fixed: Mapping[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    reads: Mapping[str, str] = field(default_factory=dict)
    needs_val: bool = False
    help: str = ""

    @property
    def checkpoints(self) -> bool:
        """Whether a run of this model writes a resumable training checkpoint."""
        return self.kind == "network"

    def builder(self, task: str | None = None) -> Callable[..., Any]:
        """The class registered for ``task`` (or for any task)."""
        if task in self.builders:
            return self.builders[task]
        if None in self.builders:
            return self.builders[None]
        raise ValueError(f"model {self.name!r} has no variant for {task} data "
                         f"(registered: {sorted(map(str, self.builders))})")


_REGISTRY: dict[str, ModelSpec] = {}
_ALIASES: dict[str, str] = {}
_loaded = False


def _key(name: str) -> str:
    return str(name).strip().lower().replace("_", "-")


def _option_defaults(obj: Callable[..., Any], names: Sequence[str]) -> dict[str, Any]:
    """Defaults of the keyword parameters ``names`` of ``obj``'s signature."""
    params = inspect.signature(obj).parameters
    missing = [n for n in names if n not in params or
               params[n].default is inspect.Parameter.empty]
    if missing:
        raise TypeError(f"{obj.__name__} has no keyword parameters with defaults {missing}")
    return {n: params[n].default for n in names}


def register_model(
    name: str,
    *,
    kind: str = "network",
    aliases: Sequence[str] = (),
    task: str | None = None,
    fixed: Mapping[str, Any] | None = None,
    options: Sequence[str] = (),
    reads: Mapping[str, str] | None = None,
    needs_val: bool = False,
    help: str = "",
) -> Callable[[T], T]:
    """Class decorator: make ``name`` trainable by ``hvgp train`` / ``run`` / ``compare``.

    :param options: names of the class's own keyword parameters a run may set (their
        defaults are read off the signature), e.g. ``("mixup_alpha",)``.
    :param task: ``"classification"`` / ``"regression"`` when ``name`` has one class per task.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    key = _key(name)

    def decorate(obj: T) -> T:
        spec = _REGISTRY.get(key)
        if spec is None:
            spec = _REGISTRY[key] = ModelSpec(key, kind, aliases=tuple(map(_key, aliases)),
                                              fixed=dict(fixed or {}), reads=dict(reads or {}),
                                              needs_val=needs_val, help=help)
        elif spec.kind != kind:
            raise ValueError(f"model {key!r} is already registered as kind {spec.kind!r}")
        spec.builders[task] = obj  # type: ignore[assignment]
        spec.options.update(_option_defaults(obj, options))  # type: ignore[arg-type]
        for alias in spec.aliases:
            _ALIASES[alias] = key
        return obj

    return decorate


def _load_builtin() -> None:
    """Import the modules that register the built-in models (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for provider in _PROVIDERS:
        module = importlib.import_module(provider)
        for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
            if not info.name.startswith("_"):
                importlib.import_module(f"{provider}.{info.name}")


def model_names(kind: str | None = None) -> tuple[str, ...]:
    """Registered model names (of one ``kind``), networks first, in registration order."""
    _load_builtin()
    kinds = KINDS if kind is None else (kind,)
    return tuple(n for k in kinds for n, s in _REGISTRY.items() if s.kind == k)


def get_model(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name`` or an alias (case and ``_``/``-`` insensitive).

    :raises ValueError: unknown name; the message lists the valid ones.
    """
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string, got {type(name).__name__}")
    _load_builtin()
    key = _ALIASES.get(_key(name), _key(name))
    if key not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(model_names())}")
    return _REGISTRY[key]


def make_estimator(name: str, net_or_factory: Any = None, *, task: str | None = None,
                   **kw: Any) -> Any:
    """Build the estimator ``name`` on a network, a network factory, or (GPs) nothing.

    ``network`` models called with a factory build the network after seeding with ``seed``
    (so the initialisation is reproducible); ``wrapper`` models get the factory itself.
    """
    from hvgp.utils import seed_everything

    spec = get_model(name)
    build = spec.builder(task)
    for key, value in spec.fixed.items():
        if key in kw and kw[key] != value:
            raise ValueError(f"{spec.name!r} fixes {key}={value!r}; got {key}={kw[key]!r}")
        kw[key] = value
    if spec.kind == "gp":
        return build(**kw)
    if spec.kind == "wrapper":
        return build(net_or_factory, **kw)
    from torch import nn

    net = net_or_factory
    if not isinstance(net, nn.Module):
        if not callable(net):
            raise TypeError("net_or_factory must be an nn.Module or a callable returning one, "
                            f"got {type(net).__name__}")
        seed_everything(int(kw.get("seed", 0)))
        net = net()
    return build(net, **kw)
