"""Shared plot plumbing: pyplot-free figures (safe headless and in loops) and saving."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

__all__ = ["new_figure", "save"]

_FORMATS = {".png", ".svg", ".pdf"}


def new_figure(width: float, height: float) -> Figure:
    """A figure that never touches pyplot's global state or a GUI backend.

    Built from :class:`matplotlib.figure.Figure` directly, it is garbage-collected like any
    object (no ``plt.close`` needed in a sweep) and renders with Agg on a headless machine.
    """
    return Figure(figsize=(width, height), layout="constrained")


def save(fig: Figure, path: str | Path | None, dpi: int = 150) -> None:
    """Write ``fig`` to ``path`` (.png, .svg or .pdf), creating parent folders; no-op for None."""
    if path is None:
        return
    path = Path(path)
    if path.suffix.lower() not in _FORMATS:
        raise ValueError(f"plot path must end in one of {sorted(_FORMATS)}, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
