"""Calibration plots (matplotlib, pyplot-free: safe on headless machines and in loops).

Every function returns a :class:`matplotlib.figure.Figure` (or Axes) and, given ``path``,
writes it as PNG, SVG or PDF.
"""

from hvgp.plots.regression import regression_fan
from hvgp.plots.reliability import confidence_hist, reliability_diagram, reliability_grid
from hvgp.plots.sparsity import aggregate_records, calibration_vs_sparsity

__all__ = [
    "aggregate_records",
    "calibration_vs_sparsity",
    "confidence_hist",
    "regression_fan",
    "reliability_diagram",
    "reliability_grid",
]
