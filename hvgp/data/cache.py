"""On-disk cache for generated data sets: where it lives and how it is written safely.

Generated data (MNIST-1D) is cheap but not free to rebuild, and several processes (test
workers, sweeps) may build it at once; writes therefore go to a temporary file in the same
folder followed by an atomic ``os.replace``, so a reader never sees a half-written file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["cache_dir", "cache_key", "load_arrays", "save_arrays"]


def cache_dir() -> Path:
    """The cache folder: ``$HVGP_CACHE``, else ``$XDG_CACHE_HOME/hvgp``, else ``~/.cache/hvgp``."""
    env = os.environ.get("HVGP_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "hvgp"


def cache_key(settings: Mapping[str, Any]) -> str:
    """A short stable hash of JSON-serialisable settings, used in cache file names."""
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def save_arrays(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` as ``.npz``, atomically (temp file + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def load_arrays(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """Read a cached ``.npz``; ``None`` when it is missing, unreadable or lacks ``keys``."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: np.array(data[k]) for k in keys}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
