"""Which parameters of a module carry a topology mask.

A registry maps module *types* to the names of their maskable parameters, so the same
sparsity engine serves plain torch layers and Pyro layers (``PyroModule[nn.Linear]`` is an
``nn.Linear``). Name-based ``include``/``exclude`` patterns refine the choice. Biases and
normalisation parameters are never masked, whatever the patterns say.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import torch
from torch import nn

__all__ = [
    "MaskSite",
    "default_maskable_types",
    "mask_buffer_name",
    "mask_sites",
    "maskable_parameters",
    "register_maskable_type",
]

# type -> names of its maskable parameters (attribute names on the owning module)
_REGISTRY: dict[type, tuple[str, ...]] = {
    nn.Linear: ("weight",),
    nn.Conv1d: ("weight",),
    nn.Conv2d: ("weight",),
}

_NORM_TYPES: tuple[type, ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
)

# PyroParam with a constraint stores its value as ``<name>_unconstrained``.
_PYRO_SUFFIX = "_unconstrained"

Patterns = str | Iterable[str] | None


def register_maskable_type(cls: type, params: Sequence[str] = ("weight",)) -> None:
    """Add a module type (and its maskable parameter names) to the default registry.

    Why: architectures with custom layers become sparse without passing ``types`` everywhere.
    """
    if not isinstance(cls, type) or not issubclass(cls, nn.Module):
        raise TypeError(f"register_maskable_type needs an nn.Module subclass, got {cls!r}")
    if isinstance(params, str):
        params = (params,)
    _REGISTRY[cls] = tuple(params)


def default_maskable_types() -> tuple[type, ...]:
    """The module types masked when ``types`` is not given (Linear, Conv1d, Conv2d + registered)."""
    return tuple(_REGISTRY)


def mask_buffer_name(param_attr: str) -> str:
    """Buffer holding the mask of attribute ``param_attr`` (``weight`` -> ``weight_mask``)."""
    base = param_attr[: -len(_PYRO_SUFFIX)] if param_attr.endswith(_PYRO_SUFFIX) else param_attr
    return f"{base}_mask"


class MaskSite:
    """Where one masked parameter lives: owning module + attribute names (looked up live).

    Looking the tensors up on each access keeps the topology valid after ``module.to(...)``,
    which replaces buffer objects.
    """

    __slots__ = ("module", "param_attr", "mask_attr")

    def __init__(self, module: nn.Module, param_attr: str) -> None:
        self.module = module
        self.param_attr = param_attr
        self.mask_attr = mask_buffer_name(param_attr)

    @property
    def param(self) -> nn.Parameter:
        return self.module._parameters[self.param_attr]

    @property
    def mask(self) -> torch.Tensor:
        return self.module._buffers[self.mask_attr]


def _compile(patterns: Patterns, what: str) -> list[str] | None:
    if patterns is None:
        return None
    if isinstance(patterns, str):
        patterns = [patterns]
    out = list(patterns)
    for p in out:
        if not isinstance(p, str):
            raise TypeError(f"{what} entries must be strings (names or regexes), got {p!r}")
        try:
            re.compile(p)
        except re.error as err:
            raise ValueError(f"{what} pattern {p!r} is not a valid regex: {err}") from err
    return out


def _matches(name: str, patterns: list[str]) -> bool:
    return any(p == name or re.fullmatch(p, name) for p in patterns)


def _never_masked(owner: nn.Module, attr: str, param: torch.Tensor) -> bool:
    """Biases, normalisation parameters and vectors/scalars are never masked."""
    base = attr[: -len(_PYRO_SUFFIX)] if attr.endswith(_PYRO_SUFFIX) else attr
    return isinstance(owner, _NORM_TYPES) or base == "bias" or param.dim() < 2


def mask_sites(
    module: nn.Module,
    types: Sequence[type] | None = None,
    include: Patterns = None,
    exclude: Patterns = None,
) -> dict[str, MaskSite]:
    """Qualified parameter name -> :class:`MaskSite`, in module registration order.

    A parameter is selected if its owner is an instance of one of ``types`` and the
    parameter is one of that type's registered names, or if its qualified name matches
    ``include``; then anything matching ``exclude`` is removed. Patterns are exact names or
    regexes matched against the whole qualified name (``re.fullmatch``).
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"expected an nn.Module, got {type(module).__name__}")
    types = default_maskable_types() if types is None else tuple(types)
    for t in types:
        if not isinstance(t, type):
            raise TypeError(f"types must contain classes, got {t!r}")
    inc = _compile(include, "include")
    exc = _compile(exclude, "exclude")
    sites: dict[str, MaskSite] = {}
    for mod_name, owner in module.named_modules():
        allowed: set[str] = set()
        for t in types:
            if isinstance(owner, t):
                names = _REGISTRY.get(t, ("weight",))
                allowed.update(names)
                allowed.update(n + _PYRO_SUFFIX for n in names)
        for attr, param in owner._parameters.items():
            if param is None:
                continue
            qual = f"{mod_name}.{attr}" if mod_name else attr
            picked = attr in allowed or (inc is not None and _matches(qual, inc))
            if exc is not None and _matches(qual, exc):
                picked = False
            if picked and not _never_masked(owner, attr, param):
                sites[qual] = MaskSite(owner, attr)
    return sites


def maskable_parameters(
    module: nn.Module,
    types: Sequence[type] | None = None,
    include: Patterns = None,
    exclude: Patterns = None,
) -> dict[str, nn.Parameter]:
    """Qualified name (``"layers.0.weight"``) -> weight Parameter that carries a mask.

    ``types=None`` means the registry's default types (Linear, Conv1d, Conv2d unless more
    were registered with :func:`register_maskable_type`). Raises ``ValueError`` when nothing is
    maskable, since a sparse model without sparse layers is almost certainly a mistake.
    """
    sites = mask_sites(module, types, include, exclude)
    if not sites:
        raise ValueError(
            f"no maskable parameters found in {type(module).__name__}: no weight of a module of "
            f"type {[t.__name__ for t in (types or default_maskable_types())]} or matching "
            f"include={include!r} (after exclude={exclude!r}); biases and norm parameters are "
            "never masked"
        )
    return {name: s.param for name, s in sites.items()}
