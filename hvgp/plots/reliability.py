"""Reliability diagrams (Guo et al. 2017 style): accuracy per confidence bin, gap bars, histogram.

The bins come from :func:`hvgp.metrics.reliability_bins`, so the picture and the ECE printed
on it are computed from the same numbers.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from hvgp.metrics import ece, reliability_bins
from hvgp.plots._common import new_figure, save

__all__ = ["reliability_diagram", "confidence_hist", "grid_shape", "reliability_grid"]

#: where a legend / the ECE label may go inside an axes, tried in this order
_LEGEND_SPOTS = ("upper left", "upper center", "center left", "upper right", "center",
                 "lower right", "lower center", "lower left", "center right")
_TEXT_SPOTS = ((0.97, 0.03, "right", "bottom"), (0.03, 0.97, "left", "top"),
               (0.5, 0.97, "center", "top"), (0.97, 0.97, "right", "top"),
               *((x, y, ha, "top") for y in (0.88, 0.8, 0.72, 0.64, 0.56, 0.48, 0.4, 0.32)
                 for x, ha in ((0.03, "left"), (0.5, "center"), (0.97, "right"))))


def _obstacles(ax: Axes, renderer: Any) -> list[Any]:
    """Display boxes of the bars and vertical marker lines a label must not cover."""
    boxes = [p.get_window_extent(renderer) for p in ax.patches
             if p.get_height() != 0 and p.get_width() != 0]  # type: ignore[attr-defined]
    boxes += [ln.get_window_extent(renderer) for ln in ax.lines
              if len(set(np.asarray(ln.get_xdata()).tolist())) == 1]
    return boxes


def _covered(box: Any, obstacles: list[Any]) -> float:
    """Display area of ``box`` that lies over ``obstacles`` (0: covers nothing)."""
    total = 0.0
    for b in obstacles:
        w = min(box.x1, b.x1) - max(box.x0, b.x0)
        h = min(box.y1, b.y1) - max(box.y0, b.y0)
        if w > 0 and h > 0:
            total += max(w, 1.0) * max(h, 1.0)  # a hairline still counts
    return total


def _put_text(text: Any, spot: tuple[float, float, str, str]) -> None:
    """Move ``text`` to an axes-fraction ``(x, y, ha, va)`` spot."""
    text.set_position(spot[:2])
    text.set_ha(spot[2])
    text.set_va(spot[3])


def _best(spots: tuple[Any, ...], put: Any, box: Any, obstacles: list[Any]) -> Any:
    """The first spot covering nothing, else the least covered; ``put`` moves the artist."""
    costs = []
    for spot in spots:
        put(spot)
        cost = _covered(box(), obstacles)
        if cost == 0:
            return spot
        costs.append(cost)
    return spots[int(np.argmin(costs))]


def keep_labels_clear(fig: Figure) -> None:
    """Move every axes' legend and texts of ``fig`` to spots that cover no bar or marker line.

    Why: a fixed corner hid the last bar (ECE label, lower right) of an accurate model and
    the low-confidence bars of an under-confident one. Spots are tried in a fixed order after
    the layout is done; where none is free, the least covered one is kept.
    """
    fig.draw_without_rendering()  # the final layout, so boxes are where they will be drawn
    renderer = fig._get_renderer()  # type: ignore[attr-defined]
    for ax in fig.axes:
        obstacles = _obstacles(ax, renderer)
        legend = ax.get_legend()
        if legend is not None:
            legend.set_loc(_best(_LEGEND_SPOTS, legend.set_loc,
                                 lambda lg=legend: lg.get_window_extent(renderer), obstacles))
            obstacles.append(legend.get_window_extent(renderer))
        for text in ax.texts:
            _put_text(text, _best(_TEXT_SPOTS, lambda spot, t=text: _put_text(t, spot),
                                  lambda t=text: t.get_window_extent(renderer), obstacles))
            obstacles.append(text.get_window_extent(renderer))


def reliability_diagram(
    probs_or_samples: Any,
    labels: Any,
    ax: Axes | None = None,
    n_bins: int = 10,
    title: str | None = None,
    hist_ax: Axes | None = None,
) -> Axes:
    """Draw accuracy per confidence bin, the gap to the diagonal, and the ECE.

    Blue bars are the accuracy of each non-empty bin; red hatched bars span the gap from
    accuracy to mean confidence (above the bar: over-confident). With ``ax=None`` a new figure
    is made with the top-label confidence histogram above the diagram (reach it via
    ``ax.figure``); pass ``hist_ax`` to draw that histogram on an axes of your own.
    """
    own_figure = ax is None
    if ax is None:
        fig = new_figure(4.0, 5.0)
        hist_ax, ax = fig.subplots(2, 1, height_ratios=[1, 3], sharex=True)
    bins = reliability_bins(probs_or_samples, labels, n_bins=n_bins)
    edges = bins["bin_edges"]
    left, width = edges[:-1], np.diff(edges)
    full = bins["count"] > 0
    acc, conf = bins["accuracy"][full], bins["confidence"][full]
    ax.bar(left[full], acc, width[full], align="edge", color="tab:blue", edgecolor="black",
           linewidth=0.6, label="accuracy")
    ax.bar(left[full], conf - acc, width[full], bottom=acc, align="edge", color="tab:red",
           alpha=0.3, edgecolor="tab:red", hatch="//", linewidth=0.6, label="gap")
    ax.plot([0, 1], [0, 1], "--", color="gray", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    value = ece(probs_or_samples, labels, n_bins=n_bins)
    ax.text(0.97, 0.03, f"ECE = {value:.4f}", transform=ax.transAxes, ha="right", va="bottom",
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
    ax.legend(loc="upper left", fontsize="small")
    if hist_ax is not None:
        confidence_hist(probs_or_samples, labels, hist_ax, n_bins=n_bins, bins=bins)
    if title:
        (hist_ax if hist_ax is not None else ax).set_title(title)
    if own_figure:
        keep_labels_clear(ax.figure)
    return ax


def confidence_hist(
    probs_or_samples: Any,
    labels: Any,
    ax: Axes,
    n_bins: int = 10,
    bins: dict[str, np.ndarray] | None = None,
) -> Axes:
    """Fraction of points per confidence bin, with the mean confidence and accuracy marked."""
    bins = bins or reliability_bins(probs_or_samples, labels, n_bins=n_bins)
    edges, count = bins["bin_edges"], bins["count"]
    total = count.sum()
    ax.bar(edges[:-1], count / total, np.diff(edges), align="edge", color="tab:gray",
           edgecolor="black", linewidth=0.6)
    full = count > 0
    mean_conf = float((bins["confidence"][full] * count[full]).sum() / total)
    mean_acc = float((bins["accuracy"][full] * count[full]).sum() / total)
    ax.axvline(mean_acc, color="tab:blue", linestyle="--", linewidth=1.2, label="accuracy")
    ax.axvline(mean_conf, color="tab:red", linestyle=":", linewidth=1.5, label="avg. confidence")
    ax.set_xlim(0, 1)
    ax.set_ylabel("fraction")
    ax.legend(loc="upper left", fontsize="x-small")
    return ax


def grid_shape(n: int, max_cols: int = 4) -> tuple[int, int]:
    """``(rows, cols)`` for ``n`` panels: ``ceil(n / max_cols)`` rows, columns balanced.

    Why balanced: nine panels as 3 x 3 rather than 4 + 4 + 1 (one row of nine was 4320 px
    wide and unreadable when scaled down).

    >>> grid_shape(9), grid_shape(4), grid_shape(5)
    ((3, 3), (1, 4), (2, 3))
    """
    for name, value in (("n", n), ("max_cols", max_cols)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    rows = math.ceil(n / max_cols)
    return rows, math.ceil(n / rows)


def reliability_grid(
    results: dict[str, tuple[Any, Any]], path: str | Path | None = None, n_bins: int = 10,
    max_cols: int = 4, title: str | None = None,
) -> Figure:
    """Several methods in a grid: each a confidence histogram above its reliability diagram.

    Panels fill rows of at most ``max_cols`` (:func:`grid_shape`), in the order of
    ``results``; ``fig.axes`` lists every histogram, then every diagram, in that order.
    Legends and ECE labels are placed where they cover no bar (:func:`keep_labels_clear`).

    :param results: ``{method name: (probs or PredictiveSamples, labels)}``.
    :param path: if given, the figure is also written there (.png, .svg or .pdf).
    :param title: a line above the grid (e.g. which seed the panels show).
    """
    if not isinstance(results, dict) or not results:
        raise ValueError("results must be a non-empty dict {method: (probs, labels)}")
    for name, pair in results.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"results[{name!r}] must be a (probs_or_samples, labels) pair")
    rows, cols = grid_shape(len(results), max_cols)
    fig = new_figure(3.2 * cols, 4.6 * rows)
    grid = fig.add_gridspec(2 * rows, cols, height_ratios=[1, 3] * rows)
    places = [divmod(j, cols) for j in range(len(results))]
    hists = [fig.add_subplot(grid[2 * r, c]) for r, c in places]
    diagrams = [fig.add_subplot(grid[2 * r + 1, c], sharex=h) for (r, c), h in zip(places, hists)]
    for (name, (probs, labels)), (_, c), h, ax in zip(results.items(), places, hists, diagrams):
        reliability_diagram(probs, labels, ax=ax, n_bins=n_bins, title=str(name), hist_ax=h)
        h.tick_params(labelbottom=False)
        if c:
            ax.set_ylabel("")
            h.set_ylabel("")
    if title:
        fig.suptitle(title)
    keep_labels_clear(fig)
    save(fig, path)
    return fig
