"""Binned calibration errors: ECE, MCE, classwise/static and adaptive CE, reliability bins.

One binning primitive serves every binned metric so that ECE, the reliability diagram and
the bootstrap interval always agree on which point falls in which bin.

**Bin convention.** Equal-width bins are right-closed, ``(lo, hi]`` (the first bin also holds
0), as in Guo et al. 2017 and the temperature-scaling / CigL evaluation code, so a confidence
of exactly 1.0 lands in the last bin and one of exactly 0.5 in ``(0.4, 0.5]``. torchmetrics
``CalibrationError`` and netcal bin ``[lo, hi)`` instead (torchmetrics also puts 1.0 in an extra
bin of its own and casts to float32); pass ``closed="left"`` to reproduce them. The two agree
whenever no confidence sits exactly on an interior edge, which is almost surely the case for
real softmax outputs. Equal-width edges are exact: edge ``k`` is the float64 nearest ``k/n``
(``arange(n + 1) / n``), so a confidence equal to the literal ``0.55`` is *on* the edge 11/20
and goes to ``(0.5, 0.55]`` (``closed="right"``) or ``[0.55, 0.6)`` (``closed="left"``).
torchmetrics and netcal build their edges with ``linspace``, which is off by one ulp at some
``k/n`` (3/10 in NumPy float64, several in torchmetrics' float32), so on such ties they can
differ from ``closed="left"``; elsewhere they agree. ``engine="torchmetrics"`` runs the
torchmetrics implementation itself (confidences clamped just below 1.0 so that they fall in the
last regular bin).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from hvgp.metrics._validate import ProbsLike, as_probs_and_labels

__all__ = [
    "ece",
    "mce",
    "classwise_ece",
    "adaptive_ece",
    "reliability_bins",
    "confidence_histogram",
    "bootstrap_ece",
    "bootstrap_ece_diff",
]

Binning = Literal["width", "mass"]
Closed = Literal["right", "left"]
_BOOT_CHUNK_ELEMENTS = 4_000_000  # resampled indices held in memory at once


# ---- the binning primitive -------------------------------------------------------------------
def _check_bins(n_bins: int, binning: str, closed: str) -> None:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    if binning not in ("width", "mass"):
        raise ValueError(f"binning must be 'width' or 'mass', got {binning!r}")
    if closed not in ("right", "left"):
        raise ValueError(f"closed must be 'right' ((lo, hi] bins) or 'left' ([lo, hi)), "
                         f"got {closed!r}")


def _grid(n_bins: int, device: torch.device) -> torch.Tensor:
    """``k / n_bins`` for k = 0..n_bins, each the float64 nearest the exact fraction.

    ``arange / n`` is one correctly rounded division per edge, so edge 11/20 is the literal
    0.55 (``torch.linspace`` gives 0.5499999999999999 there and 0.30000000000000004 for 3/10,
    which sent confidences of exactly 0.55 or 0.3 into the neighbouring bin).
    """
    return torch.arange(n_bins + 1, dtype=torch.float64, device=device) / n_bins


def _edges(values: torch.Tensor, n_bins: int, binning: str) -> torch.Tensor:
    """Bin edges ``(n_bins + 1,)`` on [0, 1]: equal width or equal mass (quantiles of values)."""
    grid = _grid(n_bins, values.device)
    if binning == "width":
        return grid
    edges = torch.quantile(values.to(torch.float64), grid)
    edges[0], edges[-1] = 0.0, 1.0
    return edges


def _bin_index(values: torch.Tensor, edges: torch.Tensor, closed: str) -> torch.Tensor:
    """Index in ``[0, len(edges) - 2]`` of the bin holding each value (see module docstring)."""
    idx = torch.searchsorted(edges, values.contiguous(), right=(closed == "left")) - 1
    return idx.clamp(0, edges.numel() - 2)


def _bin_sums(
    idx: torch.Tensor, conf: torch.Tensor, hit: torch.Tensor, n_bins: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-bin count, sum of confidences and sum of hits (flat ``idx`` may span several groups)."""
    count = torch.zeros(n_bins, dtype=torch.float64, device=conf.device)
    count.index_add_(0, idx, torch.ones_like(conf))
    s_conf = torch.zeros_like(count).index_add_(0, idx, conf)
    s_hit = torch.zeros_like(count).index_add_(0, idx, hit)
    return count, s_conf, s_hit


def _gaps(count: torch.Tensor, s_conf: torch.Tensor, s_hit: torch.Tensor) -> torch.Tensor:
    """``|accuracy - confidence|`` per bin; 0 for empty bins (they carry no weight)."""
    return torch.where(count > 0, (s_hit - s_conf).abs() / count.clamp_min(1), 0.0)


def _top_label(probs: Any, labels: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-label confidence and correctness (ties in the arg-max go to the first class)."""
    p, y = as_probs_and_labels(probs, labels)
    conf, pred = p.max(-1)
    return conf, (pred == y).to(torch.float64)


def _ce(conf: torch.Tensor, hit: torch.Tensor, n_bins: int, binning: str, closed: str, norm: str):
    idx = _bin_index(conf, _edges(conf, n_bins, binning), closed)
    count, s_conf, s_hit = _bin_sums(idx, conf, hit, n_bins)
    gaps = _gaps(count, s_conf, s_hit)
    if norm == "l1":
        return float((gaps * count).sum() / count.sum())
    return float(gaps.max())


# ---- top-label metrics ------------------------------------------------------------------------
def ece(
    probs: ProbsLike,
    labels: Any,
    n_bins: int = 10,
    binning: Binning = "width",
    closed: Closed | None = None,
    engine: Literal["hvgp", "torchmetrics"] = "hvgp",
) -> float:
    """Expected calibration error of the top-label confidence.

    ``sum_b |B_b|/N * |acc(B_b) - conf(B_b)|`` over ``n_bins`` bins (10 equal-width bins as in
    the CigL paper). ``binning="mass"`` uses equal-mass (quantile) bins, the "adaptive ECE" of
    Mukhoti et al. 2020. ``closed`` picks the bin convention (default ``"right"``, see module
    docstring). ``engine="torchmetrics"`` delegates to torchmetrics (width bins, ``[lo, hi)``).

    >>> round(ece([[0.9, 0.1], [0.6, 0.4]], [0, 1], n_bins=10), 6)  # (0.1 + 0.6) / 2
    0.35
    """
    if engine == "torchmetrics":
        return _torchmetrics_ce(probs, labels, n_bins, binning, closed, "l1")
    if engine != "hvgp":
        raise ValueError(f"engine must be 'hvgp' or 'torchmetrics', got {engine!r}")
    closed = closed or "right"
    _check_bins(n_bins, binning, closed)
    conf, hit = _top_label(probs, labels)
    return _ce(conf, hit, n_bins, binning, closed, "l1")


def mce(
    probs: ProbsLike,
    labels: Any,
    n_bins: int = 10,
    binning: Binning = "width",
    closed: Closed | None = None,
    engine: Literal["hvgp", "torchmetrics"] = "hvgp",
) -> float:
    """Maximum calibration error: the largest ``|acc - conf|`` over the non-empty bins."""
    if engine == "torchmetrics":
        return _torchmetrics_ce(probs, labels, n_bins, binning, closed, "max")
    if engine != "hvgp":
        raise ValueError(f"engine must be 'hvgp' or 'torchmetrics', got {engine!r}")
    closed = closed or "right"
    _check_bins(n_bins, binning, closed)
    conf, hit = _top_label(probs, labels)
    return _ce(conf, hit, n_bins, binning, closed, "max")


def _torchmetrics_ce(probs, labels, n_bins, binning, closed, norm) -> float:
    """torchmetrics ``multiclass_calibration_error`` with confidences kept below 1.0."""
    from torchmetrics.functional.classification import multiclass_calibration_error

    if binning != "width" or (closed or "left") != "left":
        raise ValueError("engine='torchmetrics' supports only binning='width' with closed='left'")
    _check_bins(n_bins, binning, "left")
    p, y = as_probs_and_labels(probs, labels)
    # torchmetrics bins [lo, hi) and sends a confidence of exactly 1.0 to an extra bin of its
    # own; clamping just below 1 (in its float32) puts it in the last regular bin.
    below_one = torch.nextafter(torch.tensor(1.0), torch.tensor(0.0)).item()
    p = p.to(torch.float32).clamp(max=below_one)
    out = multiclass_calibration_error(p, y, num_classes=p.shape[1], n_bins=int(n_bins), norm=norm)
    return float(out)


# ---- classwise metrics ------------------------------------------------------------------------
def classwise_ece(
    probs: ProbsLike,
    labels: Any,
    n_bins: int = 10,
    binning: Binning = "width",
    closed: Closed = "right",
) -> float:
    """Classwise (static) calibration error, SCE of Nixon et al. 2019.

    Each class's probability column is binned on its own against the indicator ``y == k``;
    the per-class ECEs are averaged over the ``C`` classes. Catches miscalibration of the
    non-top classes that top-label ECE cannot see.
    """
    _check_bins(n_bins, binning, closed)
    p, y = as_probs_and_labels(probs, labels)
    n, c = p.shape
    onehot = torch.nn.functional.one_hot(y, c).to(torch.float64)
    idx = torch.stack([_bin_index(p[:, k], _edges(p[:, k], n_bins, binning), closed)
                       for k in range(c)], 1)
    flat = (idx + n_bins * torch.arange(c, device=p.device)).reshape(-1)
    count, s_conf, s_hit = _bin_sums(flat, p.reshape(-1), onehot.reshape(-1), c * n_bins)
    per_class = (_gaps(count, s_conf, s_hit) * count).reshape(c, n_bins).sum(1) / n
    return float(per_class.mean())


def adaptive_ece(
    probs: ProbsLike, labels: Any, n_bins: int = 10, closed: Closed = "right"
) -> float:
    """Adaptive calibration error (ACE, Nixon et al. 2019): classwise CE with equal-mass bins.

    Ranges are weighted by their counts, which equals Nixon's unweighted mean over ranges when
    every range holds the same number of points. (Top-label ECE with equal-mass bins is
    ``ece(..., binning="mass")``.)
    """
    return classwise_ece(probs, labels, n_bins=n_bins, binning="mass", closed=closed)


# ---- per-bin statistics (for plots) ------------------------------------------------------------
def reliability_bins(
    probs: ProbsLike,
    labels: Any,
    n_bins: int = 10,
    binning: Binning = "width",
    closed: Closed = "right",
) -> dict[str, np.ndarray]:
    """Per-bin top-label accuracy, mean confidence and count (NaN accuracy/confidence if empty).

    The numbers behind a reliability diagram; ``ece`` is ``sum(count * |accuracy - confidence|)
    / sum(count)`` over the non-empty bins.
    """
    _check_bins(n_bins, binning, closed)
    conf, hit = _top_label(probs, labels)
    edges = _edges(conf, n_bins, binning)
    count, s_conf, s_hit = _bin_sums(_bin_index(conf, edges, closed), conf, hit, n_bins)
    nan = torch.full_like(count, float("nan"))
    safe = count.clamp_min(1)
    return {
        "bin_edges": edges.cpu().numpy(),
        "accuracy": torch.where(count > 0, s_hit / safe, nan).cpu().numpy(),
        "confidence": torch.where(count > 0, s_conf / safe, nan).cpu().numpy(),
        "count": count.cpu().numpy().astype(np.int64),
    }


def confidence_histogram(
    probs: ProbsLike, n_bins: int = 10, closed: Closed = "right"
) -> dict[str, np.ndarray]:
    """Histogram of top-label confidences on equal-width bins (no labels needed)."""
    from hvgp.metrics._validate import as_probs

    _check_bins(n_bins, "width", closed)
    conf = as_probs(probs).max(-1).values
    edges = _edges(conf, n_bins, "width")
    count = torch.bincount(_bin_index(conf, edges, closed), minlength=n_bins)
    return {"bin_edges": edges.cpu().numpy(), "count": count.cpu().numpy().astype(np.int64)}


# ---- bootstrap intervals ----------------------------------------------------------------------
def _resamples(n: int, n_boot: int, seed: int, device: torch.device):
    """Yield ``(chunk, n)`` index matrices of bootstrap resamples, reproducible from ``seed``."""
    gen = torch.Generator().manual_seed(int(seed))  # CPU generator: same draws on every device
    chunk = max(1, _BOOT_CHUNK_ELEMENTS // n)
    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        yield torch.randint(0, n, (rows, n), generator=gen).to(device)


def _boot_ece(conf, hit, n_bins, binning, closed, rows: torch.Tensor) -> torch.Tensor:
    """ECE of each resample in ``rows`` (vectorised for width bins, looped for mass bins)."""
    if binning == "mass":
        return torch.tensor([_ce(conf[r], hit[r], n_bins, binning, closed, "l1") for r in rows],
                            dtype=torch.float64)
    idx = _bin_index(conf, _edges(conf, n_bins, binning), closed)
    b, n = rows.shape
    flat = (idx[rows] + n_bins * torch.arange(b, device=conf.device)[:, None]).reshape(-1)
    count, s_conf, s_hit = _bin_sums(
        flat, conf[rows].reshape(-1), hit[rows].reshape(-1), b * n_bins)
    gaps = (s_hit - s_conf).abs().reshape(b, n_bins).sum(1)  # sum over bins of |sum hit - sum conf|
    return (gaps / n).cpu()


def _interval(point: float, boots: torch.Tensor, level: float) -> tuple[float, float, float]:
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    lo, hi = torch.quantile(boots, q).tolist()
    return point, lo, hi


def _check_boot(n_boot: int, level: float) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 2:
        raise ValueError(f"n_boot must be an integer >= 2, got {n_boot!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")


def bootstrap_ece(
    probs: ProbsLike,
    labels: Any,
    n_bins: int = 10,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    binning: Binning = "width",
    closed: Closed = "right",
) -> tuple[float, float, float]:
    """ECE with a percentile-bootstrap interval: ``(ece, lo, hi)``.

    Test points are resampled with replacement ``n_boot`` times; the interval describes how
    much the ECE of this model would move on another test set of the same size. To ask
    whether two methods evaluated on the *same* test set differ, use
    :func:`bootstrap_ece_diff`, whose paired resampling cancels the shared noise.
    """
    _check_bins(n_bins, binning, closed)
    _check_boot(n_boot, level)
    conf, hit = _top_label(probs, labels)
    boots = torch.cat([_boot_ece(conf, hit, n_bins, binning, closed, r)
                       for r in _resamples(conf.numel(), n_boot, seed, conf.device)])
    return _interval(_ce(conf, hit, n_bins, binning, closed, "l1"), boots, level)


def bootstrap_ece_diff(
    probs_a: ProbsLike,
    probs_b: ProbsLike,
    labels: Any,
    n_bins: int = 10,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    binning: Binning = "width",
    closed: Closed = "right",
) -> tuple[float, float, float]:
    """``ECE(a) - ECE(b)`` on the same test set with a paired-bootstrap interval ``(d, lo, hi)``.

    An interval that excludes 0 says the difference is not test-set noise.
    """
    _check_bins(n_bins, binning, closed)
    _check_boot(n_boot, level)
    conf_a, hit_a = _top_label(probs_a, labels)
    conf_b, hit_b = _top_label(probs_b, labels)
    if conf_a.device != conf_b.device:
        raise ValueError(f"probs_a is on {conf_a.device} but probs_b is on {conf_b.device}")
    diffs = [
        _boot_ece(conf_a, hit_a, n_bins, binning, closed, r)
        - _boot_ece(conf_b, hit_b, n_bins, binning, closed, r)
        for r in _resamples(conf_a.numel(), n_boot, seed, conf_a.device)
    ]
    point = _ce(conf_a, hit_a, n_bins, binning, closed, "l1") - _ce(
        conf_b, hit_b, n_bins, binning, closed, "l1")
    return _interval(point, torch.cat(diffs), level)
