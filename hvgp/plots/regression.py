"""Fan plots for 1-D regression: predictive bands, sample functions and the training data."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from hvgp.metrics import predictive_quantiles
from hvgp.metrics._validate import as_samples
from hvgp.plots._common import new_figure, save

__all__ = ["regression_fan"]


def _vector(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D (or (N, 1)) for a 1-D fan plot, got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf")
    return a


def regression_fan(
    x_train: Any,
    y_train: Any,
    x_test: Any,
    samples: Any,
    path: str | Path | None = None,
    levels: Sequence[float] = (0.5, 0.9),
    n_lines: int = 5,
) -> Figure:
    """Predictive mean, central bands at ``levels`` and ``n_lines`` sample functions.

    Bands are quantiles of the full predictive mixture (sample spread plus noise scale), so
    they show total uncertainty; the thin sample curves show the epistemic part.

    :param samples: regression PredictiveSamples over ``x_test`` (``loc`` of shape ``(S, N)``).
    :param path: if given, the figure is also written there (.png, .svg or .pdf).
    """
    xt, yt, xs = _vector(x_train, "x_train"), _vector(y_train, "y_train"), _vector(x_test, "x_test")
    if xt.shape != yt.shape:
        raise ValueError(f"x_train has {xt.size} points but y_train has {yt.size}")
    s = as_samples(samples)
    if s.num_points != xs.size:
        raise ValueError(f"samples cover N = {s.num_points} points but x_test has {xs.size}")
    order = np.argsort(xs)
    xs = xs[order]
    levels = sorted((float(v) for v in levels), reverse=True)
    tails = [q for v in levels for q in ((1 - v) / 2, (1 + v) / 2)]
    quant = predictive_quantiles(s, tails).cpu().numpy()[:, order]
    loc = s.loc.detach().cpu().numpy()[:, order]

    fig = new_figure(6.0, 3.8)
    ax = fig.add_subplot()
    for i, v in enumerate(levels):
        ax.fill_between(xs, quant[2 * i], quant[2 * i + 1], color="tab:blue",
                        alpha=0.15 + 0.15 * i, linewidth=0, label=f"{round(100 * v)}% interval")
    for k in range(min(n_lines, loc.shape[0]) if loc.shape[0] > 1 else 0):
        ax.plot(xs, loc[k], color="tab:blue", linewidth=0.6, alpha=0.6,
                label="samples" if k == 0 else None)
    ax.plot(xs, loc.mean(0), color="navy", linewidth=1.8, label="predictive mean")
    ax.scatter(xt, yt, s=10, color="black", zorder=3, label="training data")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(fontsize="small", loc="best")
    save(fig, path)
    return fig
