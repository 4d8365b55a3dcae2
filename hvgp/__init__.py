"""hvgp: calibrated sparse neural networks as probabilistic programs (CigL in Pyro).

Public names are imported lazily so that ``import hvgp`` stays fast and each sub-package
(``sparsity``, ``nn``, ``infer``, ``metrics``, ``data``, ``baselines``) can be used alone.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "PredictiveSamples": "hvgp.predict",
    "resolve_device": "hvgp.utils",
    "seed_everything": "hvgp.utils",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hvgp' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))
