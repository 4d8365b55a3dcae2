"""Calibration-vs-sparsity curves: the paper's headline picture (ECE per sparsity, per method)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from hvgp.plots._common import new_figure, save

__all__ = ["calibration_vs_sparsity", "aggregate_records"]


def aggregate_records(
    records: Sequence[dict[str, Any]], metric: str = "ece"
) -> dict[str, dict[str, np.ndarray]]:
    """Group records by method and sparsity: ``{method: {sparsity, value, lo, hi, n}}``.

    Several records at the same (method, sparsity), e.g. seeds, give the mean and a +-1 std
    band. A single record may carry its own interval as ``<metric>_lo`` / ``<metric>_hi``
    (as returned by :func:`hvgp.metrics.bootstrap_ece`); otherwise it gets no error bar.
    """
    if not records:
        raise ValueError("records is empty: nothing to plot")
    groups: dict[str, dict[float, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for i, rec in enumerate(records):
        for key in ("method", "sparsity", metric):
            if key not in rec:
                raise ValueError(f"record {i} has no {key!r} key (keys: {sorted(rec)})")
        s, v = float(rec["sparsity"]), float(rec[metric])
        if not 0.0 <= s < 1.0:
            raise ValueError(f"record {i}: sparsity must be a fraction in [0, 1), got {s}")
        if not np.isfinite(v):
            raise ValueError(f"record {i}: {metric} is not finite ({v})")
        groups[str(rec["method"])][s].append(rec)
    out = {}
    for method, by_s in groups.items():
        rows = []
        for s in sorted(by_s):
            recs = by_s[s]
            vals = np.array([float(r[metric]) for r in recs])
            mean = float(vals.mean())
            if len(vals) > 1:
                sd = float(vals.std(ddof=1))
                lo, hi = mean - sd, mean + sd
            elif f"{metric}_lo" in recs[0] and f"{metric}_hi" in recs[0]:
                lo, hi = float(recs[0][f"{metric}_lo"]), float(recs[0][f"{metric}_hi"])
            else:
                lo = hi = mean
            rows.append((s, mean, lo, hi, len(vals)))
        cols = np.array(rows, dtype=np.float64).T
        out[method] = dict(zip(("sparsity", "value", "lo", "hi", "n"), cols))
    return out


def calibration_vs_sparsity(
    records: Sequence[dict[str, Any]],
    metric: str = "ece",
    path: str | Path | None = None,
) -> Figure:
    """One line per method of ``metric`` against sparsity (in %), with error bars.

    :param records: dicts with at least ``method``, ``sparsity`` (fraction) and ``metric``;
        see :func:`aggregate_records` for how repeats and intervals become error bars.
    :param path: if given, the figure is also written there (.png, .svg or .pdf).
    """
    table = aggregate_records(records, metric)
    fig = new_figure(5.0, 3.6)
    ax = fig.add_subplot()
    for method, col in table.items():
        err = np.vstack([col["value"] - col["lo"], col["hi"] - col["value"]])
        ax.errorbar(100 * col["sparsity"], col["value"], yerr=err, marker="o", capsize=3,
                    label=method)
    ax.set_xlabel("sparsity (%)")
    ax.set_ylabel(metric.upper() if len(metric) <= 4 else metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    save(fig, path)
    return fig
