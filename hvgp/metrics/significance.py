"""Significance across seeds: paired differences of a metric between methods run on the same seeds.

A difference in mean ECE over three seeds says nothing by itself: seed-to-seed spread of a
1-D CNN's ECE is as large as the CigL-vs-RigL gap. Runs that share a seed share the data
order and initialisation, so the per-seed *differences* cancel that shared noise; this module
reports their mean with a t interval, a paired t-test and a Wilcoxon signed-rank test (scipy),
and how many seeds each method wins, as one sentence or one markdown table, never as a bare
"x % lower".
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["PairedDifference", "paired_difference", "paired_differences", "paired_table"]

HIGHER_IS_BETTER = frozenset({"accuracy", "auroc", "ood_auroc", "ece_p_value"})
_MINUS = "\u2212"


def _num(x: float, decimals: int) -> str:
    """``x`` with ``decimals`` decimals and a typographic minus."""
    return f"{x:.{decimals}f}".replace("-", _MINUS)


def _p(p: float) -> str:
    """A p-value with two significant digits (``< 0.001`` below that)."""
    if math.isnan(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"= {p:.2g}"


@dataclass(frozen=True)
class PairedDifference:
    """Mean of ``a - b`` over paired seeds, its t interval, paired tests and win counts.

    ``a_wins``/``b_wins`` count seeds where that method is better (lower when
    ``lower_is_better``), ``ties`` where both are equal. ``t_p_value`` is the two-sided paired
    t-test, ``wilcoxon_p_value`` the two-sided Wilcoxon signed-rank test (exact for small
    ``n``; zero differences dropped; with 5 seeds it cannot go below 0.0625, so it is the
    cautious check and the t-test the sharper one). ``significant`` is whether the interval
    excludes 0.
    """

    mean: float
    ci_low: float
    ci_high: float
    t_p_value: float
    wilcoxon_p_value: float
    a_wins: int
    b_wins: int
    ties: int
    n: int
    confidence: float = 0.95
    lower_is_better: bool = True
    metric: str = "metric"
    name_a: str = "a"
    name_b: str = "b"
    seeds: tuple[Hashable, ...] | None = None

    @property
    def significant(self) -> bool:
        """True when the confidence interval of the mean difference excludes 0."""
        return self.ci_low > 0 or self.ci_high < 0

    def _decimals(self) -> int:
        """Decimals that show the interval's half-width with two significant digits."""
        half = (self.ci_high - self.ci_low) / 2
        ref = half if half > 0 else abs(self.mean)
        if ref == 0 or not math.isfinite(ref):
            return 4
        return int(min(10, max(0, 1 - math.floor(math.log10(ref)))))

    def cell(self) -> str:
        """Compact table cell: ``−0.0031 [−0.0052, −0.0010], p = 0.012, 5/5``."""
        d = self._decimals()
        return (f"{_num(self.mean, d)} [{_num(self.ci_low, d)}, {_num(self.ci_high, d)}], "
                f"p {_p(self.t_p_value)}, {self.a_wins}/{self.n}")

    def sentence(self) -> str:
        """One readable sentence: difference, interval, tests, seeds, wins, verdict."""
        d = self._decimals()
        better = "lower" if self.lower_is_better else "higher"
        pct = f"{self.confidence * 100:g} %"
        ties = f" ({self.ties} tied)" if self.ties else ""
        verdict = ("the interval excludes 0" if self.significant
                   else f"the interval includes 0: not significant at {pct}")
        return (f"{self.metric} {self.name_a} {_MINUS} {self.name_b} = {_num(self.mean, d)} "
                f"[{_num(self.ci_low, d)}, {_num(self.ci_high, d)}] ({pct} CI, paired t "
                f"p {_p(self.t_p_value)}, Wilcoxon p {_p(self.wilcoxon_p_value)}, "
                f"{self.n} seeds), {self.name_a} {better} in {self.a_wins}/{self.n}{ties}; "
                f"{verdict}")

    def __str__(self) -> str:
        return self.sentence()


def _as_values(x: Sequence[float], name: str) -> np.ndarray:
    """A finite 1-D float64 array, or a ValueError naming ``name``."""
    try:
        v = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a sequence of numbers") from err
    if v.ndim != 1:
        raise ValueError(f"{name} must be one value per seed (1-D), got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError(f"{name} contains NaN or inf (seed {int(np.argmin(np.isfinite(v)))})")
    return v


def paired_difference(
    a: Sequence[float],
    b: Sequence[float],
    *,
    seeds: Sequence[Hashable] | None = None,
    lower_is_better: bool = True,
    confidence: float = 0.95,
    metric: str = "metric",
    names: tuple[str, str] = ("a", "b"),
) -> PairedDifference:
    """Paired comparison of one metric of two methods run on the same seeds (``a[i]``, ``b[i]``).

    Mean of ``a - b`` with a Student-t interval at ``confidence``, the paired t-test and
    Wilcoxon signed-rank p-values, and the seeds each method wins.

    :raises ValueError: fewer than 2 pairs, different lengths, NaN/inf, repeated seeds,
        ``confidence`` outside (0, 1).
    """
    va, vb = _as_values(a, "a"), _as_values(b, "b")
    if va.shape != vb.shape:
        raise ValueError(f"a and b must pair up seed by seed, got {va.size} and {vb.size} values")
    n = va.size
    if n < 2:
        raise ValueError(f"a paired test needs at least 2 seeds that both methods ran, got {n}")
    if seeds is not None:
        seeds = tuple(seeds)
        if len(seeds) != n:
            raise ValueError(f"seeds has {len(seeds)} entries but a and b have {n}")
        if len(set(seeds)) != n:
            raise ValueError(f"seeds must be distinct, got {list(seeds)}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    diff = va - vb
    mean = float(diff.mean())
    se = float(diff.std(ddof=1)) / math.sqrt(n)
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * se
    if se > 0:
        t_p = float(stats.ttest_rel(va, vb).pvalue)
    else:  # every seed has the same difference: t is 0/0 (no difference) or +-inf
        t_p = 1.0 if mean == 0 else 0.0
    w_p = float(stats.wilcoxon(diff).pvalue) if np.any(diff != 0) else 1.0
    better_a = diff < 0 if lower_is_better else diff > 0
    ties = int((diff == 0).sum())
    return PairedDifference(
        mean=mean, ci_low=mean - half, ci_high=mean + half, t_p_value=t_p, wilcoxon_p_value=w_p,
        a_wins=int(better_a.sum()), b_wins=n - ties - int(better_a.sum()), ties=ties, n=n,
        confidence=confidence, lower_is_better=lower_is_better, metric=metric,
        name_a=names[0], name_b=names[1], seeds=seeds,
    )


def _by_model(rows: Iterable[Mapping[str, Any]], model_key: str,
              seed_key: str) -> dict[str, dict[Hashable, Mapping[str, Any]]]:
    """``{model: {seed: row}}``; a repeated (model, seed) is an error, not a silent overwrite."""
    out: dict[str, dict[Hashable, Mapping[str, Any]]] = {}
    for row in rows:
        if model_key not in row or seed_key not in row:
            raise ValueError(f"every row needs '{model_key}' and '{seed_key}' keys, got {row!r}")
        runs = out.setdefault(str(row[model_key]), {})
        if row[seed_key] in runs:
            raise ValueError(f"model {row[model_key]!r} has two rows for seed {row[seed_key]!r}")
        runs[row[seed_key]] = row
    return out


def paired_differences(
    rows: Iterable[Mapping[str, Any]],
    reference: str,
    metrics: Sequence[str] = ("ece", "nll", "accuracy"),
    *,
    model_key: str = "model",
    seed_key: str = "seed",
    confidence: float = 0.95,
    higher_is_better: Iterable[str] = HIGHER_IS_BETTER,
) -> dict[str, dict[str, PairedDifference]]:
    """``{model: {metric: model - reference}}`` paired by seed (only seeds both ran).

    ``rows`` are per-run records such as ``{"model": "cigl", "seed": 0, "ece": 0.012, ...}``.
    Metrics named in ``higher_is_better`` (accuracy, AUROC, ...) count a win when higher.

    :raises ValueError: unknown reference, a missing metric, repeated (model, seed), fewer
        than 2 shared seeds for some model, NaN values.
    """
    runs = _by_model(rows, model_key, seed_key)
    if reference not in runs:
        raise ValueError(f"reference model {reference!r} not among {sorted(runs)}")
    higher = set(higher_is_better)
    ref = runs[reference]
    out: dict[str, dict[str, PairedDifference]] = {}
    for model, model_runs in runs.items():
        if model == reference:
            continue
        seeds = sorted(set(model_runs) & set(ref), key=repr)
        if len(seeds) < 2:
            raise ValueError(f"{model} and {reference} share {len(seeds)} seed(s) "
                             f"({seeds}); a paired test needs at least 2")
        out[model] = {}
        for metric in metrics:
            missing = [s for s in seeds if metric not in model_runs[s] or metric not in ref[s]]
            if missing:
                raise ValueError(f"metric {metric!r} missing for {model} or {reference} "
                                 f"at seed(s) {missing}")
            try:
                out[model][metric] = paired_difference(
                    [model_runs[s][metric] for s in seeds], [ref[s][metric] for s in seeds],
                    seeds=seeds, lower_is_better=metric not in higher, confidence=confidence,
                    metric=metric, names=(model, reference))
            except ValueError as err:
                raise ValueError(f"{model} vs {reference}, {metric}: {err}") from err
    return out


def paired_table(
    rows: Iterable[Mapping[str, Any]],
    reference: str,
    metrics: Sequence[str] = ("ece", "nll", "accuracy"),
    *,
    legend: bool = True,
    **kwargs: Any,
) -> str:
    """Markdown table of :func:`paired_differences`: one row per model, one column per metric.

    Each cell is ``mean [CI], p, wins/seeds`` of ``model - reference`` over the seeds both
    ran, e.g. ``−0.0031 [−0.0052, −0.0010], p = 0.012, 5/5``; ``legend`` appends a line that
    says so. ``kwargs`` go to :func:`paired_differences`.
    """
    diffs = paired_differences(rows, reference, metrics, **kwargs)
    head = [f"model {_MINUS} {reference}", "seeds"] + [f"\u0394 {m}" for m in metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model, per_metric in diffs.items():
        n = next(iter(per_metric.values())).n if per_metric else 0
        cells = [model, str(n)] + [per_metric[m].cell() for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    if legend:
        pct = f"{kwargs.get('confidence', 0.95) * 100:g} %"
        higher = sorted(set(metrics) & set(kwargs.get("higher_is_better", HIGHER_IS_BETTER)))
        better = "lower is better" + (f"; higher for {', '.join(higher)}" if higher else "")
        lines += ["", f"Cells: mean of model {_MINUS} {reference} over the seeds both ran "
                      f"[{pct} t interval], paired t-test p, seeds in which the model is "
                      f"better ({better})."]
    return "\n".join(lines)
