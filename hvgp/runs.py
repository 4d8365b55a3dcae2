"""Run folders: one writer at a time, no silent overwrite, and a marker when a run failed.

Why: two ``hvgp train`` into one ``--out`` used to leave one run's ``config.json`` beside the
other's ``metrics.json``; a re-run silently replaced a finished run; a failed run left a
``config.json`` that looked like a run. :func:`run_folder` (used by
:func:`hvgp.experiment.run`) takes an exclusive advisory lock (``fcntl.flock`` on
``.hvgp.lock``, released by the kernel when its process dies, so a stale lock file of a dead
process never blocks), refuses to replace a finished or unfinished run unless asked, and on
an error removes what it created or writes ``FAILED.json`` saying what went wrong.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["FAILED_NAME", "LOCK_NAME", "RUN_FILES", "RunFolderBusyError", "RunFolderError",
           "folder_state", "lock_folder", "run_folder"]

LOCK_NAME = ".hvgp.lock"
FAILED_NAME = "FAILED.json"
#: the files a run writes into its folder (all of them removed by ``overwrite``)
RUN_FILES: tuple[str, ...] = ("config.json", "metrics.json", "model.pt", "checkpoint.pt",
                              "reliability.png", FAILED_NAME)


class RunFolderError(ValueError):
    """The run folder cannot be used as asked (finished, unfinished, unwritable)."""


class RunFolderBusyError(RunFolderError):
    """Another process holds the run folder's lock."""

    def __init__(self, folder: Path, pid: int | None) -> None:
        self.pid = pid
        who = f"pid {pid}" if pid is not None else "an unknown process"
        if pid is not None and not _alive(pid):
            who += " (not running: a process it started may still hold the lock)"
        super().__init__(f"run folder {folder} is in use by another hvgp run ({who}); wait for "
                         "it to finish or choose another --out")


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(fd: int) -> int | None:
    """The pid recorded in an open lock file, if any."""
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


def _unwritable(folder: Path, err: OSError) -> RunFolderError:
    return RunFolderError(f"cannot write run folder {folder}: {err.strerror or err} "
                          "(choose a writable --out)")


@contextmanager
def lock_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Hold the exclusive lock of ``folder`` (created if missing) for the ``with`` block.

    :raises RunFolderBusyError: another process (or another open lock in this one) holds it;
        the message names the holder's pid.
    :raises RunFolderError: the folder cannot be created or written.
    """
    folder = Path(folder)
    path = folder / LOCK_NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _read_pid(fd)
                os.close(fd)
                raise RunFolderBusyError(folder, pid) from None
            try:  # the holder before us may have unlinked the file it locked: lock the new one
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError as err:
        raise _unwritable(folder, err) from None
    try:
        yield folder
    finally:
        try:
            os.unlink(path)  # while still holding it; a waiter re-checks the inode
        except FileNotFoundError:
            pass
        os.close(fd)


def folder_state(folder: str | os.PathLike) -> str:
    """``"empty"`` (no run files), ``"failed"``, ``"finished"`` or ``"unfinished"``."""
    folder = Path(folder)
    if (folder / FAILED_NAME).is_file():
        return "failed"
    if (folder / "metrics.json").is_file():
        return "finished"
    if any((folder / name).exists() for name in RUN_FILES):
        return "unfinished"
    return "empty"


def check_folder(folder: str | os.PathLike, resume: bool = False,
                 overwrite: bool = False) -> str:
    """Refuse a folder a run must not write into; returns its :func:`folder_state`.

    A finished run is replaced only with ``overwrite`` (or continued with ``resume``); an
    unfinished one is continued with ``resume`` or started over with ``overwrite``; a failed
    one may be redone or resumed.
    """
    folder = Path(folder)
    if resume and overwrite:
        raise RunFolderError("--resume continues the run in the folder, --overwrite replaces it: "
                             "give one of them")
    state = folder_state(folder) if folder.is_dir() else "empty"
    if overwrite or resume:
        return state
    if state == "finished":
        raise RunFolderError(f"{folder} holds a finished run (metrics.json); pass --overwrite "
                             "(overwrite=True) to replace it, or choose another --out")
    if state == "unfinished":
        raise RunFolderError(f"{folder} holds an unfinished run; continue it with --resume, "
                             "start over with --overwrite, or choose another --out")
    return state


@contextmanager
def run_folder(folder: str | os.PathLike, resume: bool = False,
               overwrite: bool = False) -> Iterator[Path]:
    """Lock ``folder`` for one run, after :func:`check_folder`; clean up if the run fails.

    On an error (not on Ctrl-C, which keeps the checkpoint for ``--resume``) a folder this
    call created and nothing was written to is removed, files the run had not yet written
    are not left behind, and otherwise ``FAILED.json`` records the error.
    """
    folder = Path(folder)
    created = not folder.exists()
    try:
        with lock_folder(folder):
            check_folder(folder, resume, overwrite)
            if overwrite:
                for name in RUN_FILES:
                    if (folder / name).is_file():
                        (folder / name).unlink()
            before = _snapshot(folder)
            try:
                yield folder
            except KeyboardInterrupt:
                raise
            except BaseException as err:
                _failed(folder, err, before)
                raise
            if (folder / FAILED_NAME).is_file():
                (folder / FAILED_NAME).unlink()  # a redone or resumed run succeeded
    finally:
        if created and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _snapshot(folder: Path) -> dict[str, int]:
    """Name -> modification time of what is in ``folder`` (the lock file aside)."""
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.name != LOCK_NAME}


def _failed(folder: Path, err: BaseException, before: dict[str, int]) -> None:
    """Record a failed run: nothing if it wrote nothing, else ``FAILED.json``."""
    if _snapshot(folder) == before:
        return  # nothing of this run was written: what was there stays as it was
    try:
        (folder / FAILED_NAME).write_text(json.dumps({
            "error": f"{type(err).__name__}: {err}", "pid": os.getpid(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=2) + "\n")
    except OSError as write_err:
        if write_err.errno not in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.ENOENT):
            raise

