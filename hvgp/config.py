"""Run configuration: one dataclass, resolved from defaults < TOML file < command-line flags.

The resolved configuration is saved beside every run (``config.json``) so a result can
always be traced back to exactly the settings that made it.
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib

__all__ = ["RunConfig", "load_config"]  # and MODELS, read from hvgp.registry

#: keys of old ``config.json`` files -> their current names (read with a DeprecationWarning)
RENAMED: dict[str, str] = {"alpha": "drop_fraction"}


def __getattr__(name: str) -> Any:
    if name == "MODELS":  # model names the package can train, from :mod:`hvgp.registry`
        from hvgp.registry import model_names

        return model_names()
    raise AttributeError(f"module 'hvgp.config' has no attribute {name!r}")


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one training run (model, data, budget, seed, device)."""

    model: str = "cigl"
    #: named training recipe (:data:`hvgp.infer.recipes.RECIPES`): "paper" or "legacy"
    recipe: str = "paper"
    data: str = "mnist1d"
    arch: str = "cnn1d"
    width: float = 1.0
    sparsity: float = 0.9
    drop_rate: float = 0.01
    sparse_init: str = "erk"
    epochs: int = 100
    batch_size: int = 128
    lr: float = 0.1
    weight_decay: float = 5e-4
    optimizer: str = "sgd"
    #: "recipe" (the recipe's), "multistep", "cosine" or "constant"
    lr_schedule: str = "recipe"
    delta_t: int = 100
    t_end: float = 0.75
    drop_fraction: float = 0.3
    averaging_start: float = 0.8
    num_samples: int = 1
    val_fraction: float = 0.1
    seed: int = 0
    device: str = "auto"
    #: the model's own options (``hvgp list`` names them), e.g. ``{"mixup_alpha": 0.4}``
    model_options: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        self._check_types()
        from hvgp.registry import get_model

        try:
            spec = get_model(self.model)
        except ValueError as e:
            raise ValueError(str(e).replace("valid names", "choose one of")) from None
        object.__setattr__(self, "model", spec.name)  # aliases resolve to one name
        from hvgp.infer.recipes import RECIPES, SCHEDULES

        if self.recipe not in RECIPES:
            raise ValueError(f"unknown recipe {self.recipe!r}; choose one of "
                             f"{', '.join(RECIPES)}")
        if self.lr_schedule not in ("recipe", *SCHEDULES):
            raise ValueError(f"lr_schedule must be one of recipe, {', '.join(SCHEDULES)}; got "
                             f"{self.lr_schedule!r}")
        if not isinstance(self.model_options, dict):
            raise ValueError(f"config field 'model_options' must be a table (dict), got "
                             f"{self.model_options!r}")
        object.__setattr__(self, "model_options", dict(self.model_options))
        unknown = sorted(set(self.model_options) - set(spec.options))
        if unknown:
            valid = ", ".join(spec.options) or "none"
            raise ValueError(f"model {self.model!r} has no options {unknown}; its options: "
                             f"{valid}")
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {self.sparsity}")
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate}")
        if not 0.0 <= self.drop_fraction <= 1.0:
            raise ValueError(f"drop_fraction must be in [0, 1], got {self.drop_fraction}")
        for name in ("epochs", "batch_size", "delta_t", "num_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("t_end", "averaging_start", "val_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.lr <= 0 or self.width <= 0:
            raise ValueError("lr and width must be positive")
        if not 0.0 <= self.weight_decay < float("inf"):
            raise ValueError(f"weight_decay must be >= 0 and finite (0: no decay), got "
                             f"{self.weight_decay}")

    def _check_types(self) -> None:
        """Refuse a value of the wrong type (``epochs = "two"``) naming field and type;
        integers are accepted (and stored as floats) where a float is expected."""
        for f in fields(self):
            kind, value = str(f.type), getattr(self, f.name)
            if kind == "int":
                ok = isinstance(value, int) and not isinstance(value, bool)
                want = "an integer (int)"
            elif kind == "float":
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
                want = "a number (float)"
                if ok:
                    object.__setattr__(self, f.name, float(value))
            elif kind == "str":
                ok, want = isinstance(value, str), "a string (str)"
            else:
                continue
            if not ok:
                raise ValueError(f"config field {f.name!r} must be {want}, got {value!r} "
                                 f"({type(value).__name__})")

    def to_dict(self) -> dict[str, Any]:
        """Plain fields (``model_options`` as a plain dict)."""
        return asdict(self)

    def options(self) -> dict[str, Any]:
        """The model's options: its registered defaults updated by ``model_options``."""
        from hvgp.registry import get_model

        return {**get_model(self.model).options, **self.model_options}

    def save(self, path: str | Path) -> None:
        """Write the resolved configuration as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        """Build from a mapping, refusing keys that are not configuration fields.

        Keys of older files (``alpha``, now ``drop_fraction``) are renamed with a
        DeprecationWarning, so stored runs stay readable.
        """
        values = dict(values)
        for old, new in RENAMED.items():
            if old in values:
                if new in values:
                    raise ValueError(f"config has both {old!r} and its new name {new!r}")
                warnings.warn(f"config key {old!r} is now {new!r}", DeprecationWarning,
                              stacklevel=2)
                values[new] = values.pop(old)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; valid keys: {sorted(known)}")
        return cls(**values)

    def to_toml(self, comment: str = "") -> str:
        """The configuration as a TOML ``[run]`` table (``hvgp train --config`` reads it)."""
        def value(v: Any) -> str:
            if isinstance(v, bool):
                return "true" if v else "false"
            if isinstance(v, str):
                return json.dumps(v)
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"cannot write {v!r} to TOML")
            return repr(v)

        lines = [f"# {line}" for line in comment.splitlines()] + ["[run]"]
        data = self.to_dict()
        options = data.pop("model_options")
        lines += [f"{k} = {value(v)}" for k, v in data.items()]
        if options:
            lines += ["", "[run.model_options]"] + [f"{k} = {value(v)}"
                                                    for k, v in options.items()]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_saved(cls, values: dict[str, Any]) -> RunConfig:
        """Build from a run's saved ``config.json``: a file from before named recipes
        (no ``recipe`` key) was trained with the ``"legacy"`` recipe, so it reads as that."""
        values = dict(values)
        values.setdefault("recipe", "legacy")
        return cls.from_dict(values)

    def updated(self, **changes: Any) -> RunConfig:
        """A copy with ``changes`` applied (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def load_config(path: str | Path | None = None, **overrides: Any) -> RunConfig:
    """Resolve defaults < TOML (or JSON) file < ``overrides`` into a :class:`RunConfig`.

    A TOML file may hold the keys at top level or under a ``[run]`` table.
    """
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        if path.suffix == ".json":
            values = json.loads(path.read_text())
        else:
            values = tomllib.loads(path.read_text())
            values = values.get("run", values)
    given = {k: v for k, v in overrides.items() if v is not None}
    if "model_options" in given:  # flags add to the file's options, key by key
        given["model_options"] = {**values.get("model_options", {}), **given["model_options"]}
    values.update(given)
    return RunConfig.from_dict(values)
