"""Checkpoint files: atomic writes, ``weights_only`` loads, and RNG state capture.

Why: a resumed run must reproduce the uninterrupted one exactly, and a crash (or a NaN stop)
must never leave a half-written or overwritten file. Only tensors and plain Python
containers / numbers / strings are stored, so ``torch.load(..., weights_only=True)`` reads
them without unpickling arbitrary objects.
"""

from __future__ import annotations

import errno
import os
import pickle
import random
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hvgp.utils import resolve_device

__all__ = [
    "CorruptCheckpointError",
    "UnsafeCheckpointError",
    "get_rng_state",
    "load_checkpoint",
    "read_weights_only",
    "save_checkpoint",
    "set_rng_state",
]


class CorruptCheckpointError(ValueError):
    """The file is truncated, corrupt or not a torch file at all."""


class UnsafeCheckpointError(ValueError):
    """The file would need to unpickle arbitrary objects (run code) to load: refused."""


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temp file in the same folder + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except (OSError, RuntimeError) as err:
            raise _write_error(path, err) from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _write_error(path: Path, err: BaseException) -> BaseException:
    """A failed write as an ``OSError`` that says what happened and that nothing was lost.

    Why: torch reports a full disk as ``[enforce fail at inline_container.cc:…] unexpected
    pos …``; with free space known to be gone that is ``ENOSPC``.
    """
    kept = "the previous checkpoint is intact" if path.exists() else "no file was written"
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    full = isinstance(err, OSError) and err.errno == errno.ENOSPC
    if isinstance(err, RuntimeError):
        if not any(s in text for s in ("unexpected pos", "PytorchStreamWriter", "write")):
            return err
        try:
            full = shutil.disk_usage(path.parent)[2] < 1 << 20
        except OSError:
            full = False
    if full:
        return OSError(errno.ENOSPC, f"no space left on device while writing {path}; {kept}")
    if isinstance(err, OSError):
        return OSError(err.errno, f"could not write {path}: {err.strerror or text}; {kept}")
    return OSError(errno.EIO, f"could not write {path} ({text}); {kept}")


def read_weights_only(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with errors that say what is wrong with the file.

    :raises FileNotFoundError: no such file.
    :raises UnsafeCheckpointError: the file references Python objects beyond tensors and
        plain containers (e.g. a crafted ``__reduce__`` payload); nothing from it was run.
    :raises CorruptCheckpointError: truncated, empty, corrupt (a record's CRC32 does not
        match: torch itself does not check them) or not a torch file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}")
    if isinstance(map_location, str) and map_location != "cpu":
        map_location = resolve_device(map_location)  # clear error for CUDA without CUDA
    if zipfile.is_zipfile(path):  # torch's format: verify every record's CRC32 first
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            bad = f"unreadable archive ({err})"
        if bad is not None:
            raise CorruptCheckpointError(
                f"{str(path)!r} is corrupt: record {bad!r} fails its CRC check"
            )
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        msg = str(err)
        if "unsupported global" in msg.lower():  # torch words it two ways
            what = next((ln.strip() for ln in msg.splitlines()
                         if "unsupported global" in ln.lower()), "")
            what = what.split(" was not")[0].split(" whose module")[0]
            raise UnsafeCheckpointError(
                f"refusing to load {str(path)!r}: it is not a weights-only file and loading it "
                f"would run code from it ({what}). Nothing was executed."
            ) from None
        raise CorruptCheckpointError(
            f"{str(path)!r} is not a valid torch checkpoint (corrupt, truncated or another "
            f"format): {msg.splitlines()[-1] if msg else 'unpickling failed'}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise CorruptCheckpointError(
            f"{str(path)!r} is corrupt or truncated and cannot be read "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'empty file'})"
        ) from None


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a training checkpoint safely: :func:`read_weights_only` (CRC-checked, tensors and
    plain containers only; clear errors for missing, corrupt or unsafe files)."""
    return read_weights_only(path, map_location)


def get_rng_state(generators: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    """torch (CPU and every CUDA device), Python ``random`` (Pyro's too) and NumPy states."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "generators": {k: g.get_state() for k, g in (generators or {}).items()},
    }
    return state


def set_rng_state(state: dict[str, Any], generators: dict[str, torch.Generator] | None = None):
    """Restore what :func:`get_rng_state` captured (CUDA states only where devices exist)."""
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    py_version, py_state, py_gauss = state["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    for k, g in (generators or {}).items():
        if k in state.get("generators", {}):
            g.set_state(state["generators"][k])
