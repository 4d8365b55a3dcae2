"""Temperature scaling as an estimator: any trained estimator plus one post-hoc temperature.

Fits :class:`hvgp.metrics.TemperatureScaling` on the *validation* predictive after training
(the test split is never touched) and divides every later prediction's log-probabilities by
``T``. Wrapping rather than subclassing lets the same recalibration sit on a dense net, RigL,
CigL, MC dropout or an ensemble (each sample is tempered; ``T`` minimises the NLL of their
mean).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hvgp.estimator import Estimator
from hvgp.metrics import TemperatureScaling
from hvgp.predict import PredictiveSamples
from hvgp.registry import get_model, make_estimator, register_model

__all__ = ["BASE_READS", "TemperatureScaled", "temperature_scaled"]


class TemperatureScaled(Estimator):
    """An estimator whose classification predictive is recalibrated by one temperature.

    :param estimator: anything with the estimator surface (``fit``, ``predict``,
        ``predict_loader``, ``sparsity``), e.g. :class:`hvgp.infer.RigL`.
    """

    def __init__(self, estimator: Any) -> None:
        for method in ("fit", "predict", "predict_loader", "sparsity"):
            if not callable(getattr(estimator, method, None)):
                raise TypeError(f"estimator {type(estimator).__name__} has no {method}() method")
        self.estimator = estimator
        self.scaler = TemperatureScaling()

    @property
    def temperature(self) -> float | None:
        """The fitted temperature ``T`` (``None`` before :meth:`calibrate`)."""
        return self.scaler.temperature

    def fit(self, train_loader: Any, epochs: int, val_loader: Any = None,
            **kw: Any) -> TemperatureScaled:
        """Train the wrapped estimator, then fit ``T`` on ``val_loader`` (required)."""
        if val_loader is None:
            raise ValueError("temperature scaling is fitted on validation data: pass val_loader")
        self.scaler = TemperatureScaling()
        self.estimator.fit(train_loader, epochs, val_loader=val_loader, **kw)
        return self.calibrate(val_loader)

    def calibrate(self, val_loader: Any, num_samples: int | None = None) -> TemperatureScaled:
        """(Re)fit ``T`` on the wrapped estimator's predictive over ``val_loader``."""
        samples, y = self.estimator.predict_loader(val_loader, num_samples)
        self.scaler = TemperatureScaling().fit(samples, y)
        return self

    def predict(self, x: torch.Tensor, num_samples: int | None = None,
                **kw: Any) -> PredictiveSamples:
        """The wrapped estimator's predictive, tempered once ``T`` is fitted."""
        samples = self.estimator.predict(x, num_samples, **kw)
        return samples if self.temperature is None else self.scaler.transform(samples)

    def prediction_nets(self) -> list[nn.Module]:
        return self.estimator.prediction_nets()

    def sparsity(self) -> float:
        """The wrapped estimator's sparsity (temperature does not change weights)."""
        return self.estimator.sparsity()

    def state_dict(self) -> dict[str, Any]:
        return {"estimator": self.estimator.state_dict(), "temperature": self.temperature}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.estimator.load_state_dict(state["estimator"])
        self.scaler.temperature = state["temperature"]

    @property
    def history_(self) -> Any:
        return getattr(self.estimator, "history_", None)

    def __repr__(self) -> str:
        t = "unfitted" if self.temperature is None else f"{self.temperature:.4f}"
        return f"TemperatureScaled({self.estimator!r}, temperature={t})"


#: RunConfig fields a base estimator may read (field -> keyword; CigL's and W-DP's), so
#: ``hvgp train --model temperature --base cigl --drop-rate 0.05`` reaches CigL
BASE_READS: dict[str, str] = {"drop_rate": "drop_rate", "averaging_start": "average_start"}


@register_model("temperature", kind="wrapper", aliases=("ts",), options=("base",),
                reads=BASE_READS, needs_val=True,
                help="post-hoc temperature fitted on validation data (base= any model)")
def temperature_scaled(net_or_factory: Any, base: str = "rigl", sparsity: float = 0.0,
                       **kw: Any) -> TemperatureScaled:
    """Any other estimator (``base``: RigL by default, dense at sparsity 0; or ``cigl``,
    ``mc-dropout``, ``ensemble``...) plus one T.

    The :data:`BASE_READS` keywords a run forwards reach only a base whose registration
    reads them (CigL's ``drop_rate``; RigL has none), as when that base runs on its own.
    """
    spec = get_model(base)
    if spec.name == "temperature":
        raise ValueError("base='temperature' would temper twice; pick another base estimator")
    unread = set(BASE_READS.values()) - set(spec.reads.values())
    kw = {k: v for k, v in kw.items() if k not in unread}
    return TemperatureScaled(make_estimator(base, net_or_factory, sparsity=sparsity, **kw))
