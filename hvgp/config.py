"""Run configuration: one dataclass, resolved from defaults < TOML file < command-line flags.

The resolved configuration is saved beside every run (``config.json``) so a result can
always be traced back to exactly the settings that made it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib

__all__ = ["RunConfig", "load_config", "MODELS"]

#: model names the package can train (``hvgp train --model``)
MODELS: tuple[str, ...] = (
    "cigl", "rigl", "set", "static", "dense", "mc-dropout", "wdp",
    "label-smoothing", "mixup", "temperature", "ensemble", "svgp", "nngp", "deepgp",
)


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one training run (model, data, budget, seed, device)."""

    model: str = "cigl"
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
    lr_schedule: str = "cosine"
    delta_t: int = 100
    t_end: float = 0.75
    alpha: float = 0.3
    averaging_start: float = 0.8
    num_samples: int = 1
    val_fraction: float = 0.1
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {self.sparsity}")
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate}")
        for name in ("epochs", "batch_size", "delta_t", "num_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("t_end", "averaging_start", "val_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.lr <= 0 or self.width <= 0:
            raise ValueError("lr and width must be positive")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        """Write the resolved configuration as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        """Build from a mapping, refusing keys that are not configuration fields."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; valid keys: {sorted(known)}")
        return cls(**values)

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
    values.update({k: v for k, v in overrides.items() if v is not None})
    return RunConfig.from_dict(values)
