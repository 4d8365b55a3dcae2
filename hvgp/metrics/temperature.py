"""Post-hoc temperature scaling (Guo et al. 2017), the recalibration baseline of the CigL paper.

One scalar ``T`` divides the logits (or log-probabilities) so that the validation NLL is
minimal; accuracy is unchanged, confidence is shrunk (``T > 1``) or sharpened (``T < 1``).
For PredictiveSamples each sample's log-probabilities are tempered and ``T`` minimises the
NLL of the tempered model average, so the same baseline applies to Bayesian predictives.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

import torch
from scipy.optimize import minimize_scalar

from hvgp.metrics._validate import _as_tensor, as_labels, as_probs
from hvgp.predict import PredictiveSamples

__all__ = ["TemperatureScaling"]

Kind = Literal["auto", "logits", "probs"]
_LOG_T_BOUNDS = (-5.0, 5.0)  # T in [0.0067, 148]


def _looks_like_probs(x: torch.Tensor) -> bool:
    return bool((x >= 0).all() and (x <= 1).all() and ((x.sum(-1) - 1).abs() <= 1e-3).all())


def _log_probs(x: Any, kind: Kind) -> torch.Tensor:
    """``(S, N, C)`` float64 log-probabilities from logits, probs or PredictiveSamples."""
    if isinstance(x, PredictiveSamples):
        if not x.is_classification:
            raise ValueError("temperature scaling needs classification samples (probs=)")
        return x.probs.detach().to(torch.float64).clamp_min(1e-300).log()
    t = _as_tensor(x, "logits_or_probs")
    if t.dim() not in (2, 3):
        raise ValueError(
            f"expected logits/probs of shape (N, C) or (S, N, C), got {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError("logits_or_probs contain NaN or inf")
    if kind not in ("auto", "logits", "probs"):
        raise ValueError(f"kind must be 'auto', 'logits' or 'probs', got {kind!r}")
    is_probs = _looks_like_probs(t) if kind == "auto" else kind == "probs"
    if is_probs:
        t = as_probs(t.reshape(-1, t.shape[-1])).reshape(t.shape)
        t = t.clamp_min(1e-300).log()
    t = t.log_softmax(-1)
    return t if t.dim() == 3 else t[None]


def _tempered(log_p: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean over samples of ``softmax(log p_s / T)``, ``(N, C)``."""
    return (log_p / temperature).softmax(-1).mean(0)


class TemperatureScaling:
    """Fit one temperature on a validation split, then apply it to test predictions.

    Four points predicted with confidence 0.982 but only 3 right: the fitted temperature
    brings the confidence down to the accuracy, sigmoid(4 / T) = 0.75, i.e. T = 4 / ln 3.

    >>> logits = torch.tensor([[4.0, 0.0], [4.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    >>> round(TemperatureScaling().fit(logits, [0, 0, 1, 1]).temperature, 3)
    3.641
    """

    def __init__(self) -> None:
        self.temperature: float | None = None

    def fit(self, logits_or_probs: Any, labels: Any, kind: Kind = "auto") -> TemperatureScaling:
        """Choose ``T`` minimising validation NLL (bounded 1-D search over ``log T``).

        :param logits_or_probs: ``(N, C)`` logits or probabilities, ``(S, N, C)``, or
            PredictiveSamples. ``kind="auto"`` treats non-negative rows summing to 1 as probs.
        :param labels: ``(N,)`` integer labels.
        """
        log_p = _log_probs(logits_or_probs, kind)
        y = as_labels(labels, log_p.shape[1], log_p.shape[2], log_p.device)

        def val_nll(log_t: float) -> float:
            p = _tempered(log_p, math.exp(log_t)).gather(1, y[:, None])
            return float(-p.clamp_min(1e-300).log().mean())

        res = minimize_scalar(val_nll, bounds=_LOG_T_BOUNDS, method="bounded",
                              options={"xatol": 1e-6})
        if min(abs(res.x - b) for b in _LOG_T_BOUNDS) < 1e-3:
            warnings.warn(f"temperature hit the search bound (T = {math.exp(res.x):.3g}): "
                          "the validation predictions carry almost no signal", stacklevel=2)
        self.temperature = float(math.exp(res.x))
        return self

    def transform(
        self, logits_or_probs: Any, kind: Kind = "auto"
    ) -> torch.Tensor | PredictiveSamples:
        """Tempered probabilities: ``(N, C)`` tensor, or PredictiveSamples for PredictiveSamples."""
        if self.temperature is None:
            raise RuntimeError("TemperatureScaling is not fitted: call .fit(val_inputs, labels)")
        log_p = _log_probs(logits_or_probs, kind)
        tempered = (log_p / self.temperature).softmax(-1)
        if isinstance(logits_or_probs, PredictiveSamples):
            return PredictiveSamples(probs=tempered.to(logits_or_probs.probs.dtype))
        squeeze = _as_tensor(logits_or_probs, "logits_or_probs").dim() == 2
        return tempered[0] if squeeze else tempered

    def fit_transform(self, logits_or_probs: Any, labels: Any, kind: Kind = "auto"):
        """``fit`` then ``transform`` on the same data (for inspection; evaluate on other data)."""
        return self.fit(logits_or_probs, labels, kind).transform(logits_or_probs, kind)

    def __repr__(self) -> str:
        t = "unfitted" if self.temperature is None else f"{self.temperature:.4f}"
        return f"TemperatureScaling(temperature={t})"
