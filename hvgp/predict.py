"""Predictive samples: the one object every hvgp model (Bayesian, sparse or GP) returns.

Like Pyro's :class:`~pyro.infer.Predictive` it carries a leading sample dimension; unlike it,
the calibration reductions (mean, entropy, mutual information) are attached so that one
evaluation code serves every model in the package.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["PredictiveSamples"]

_EPS = 1e-12


@dataclass
class PredictiveSamples:
    """Samples of the predictive distribution.

    Classification: ``probs`` of shape ``(S, N, C)`` (class probabilities per sample).
    Regression: ``loc`` of shape ``(S, N)`` (predictive means per sample) and ``scale`` of
    shape ``(S, N)`` (observation-noise std per sample; may be zeros).

    A deterministic model is the ``S = 1`` case.

    >>> p = PredictiveSamples(probs=torch.tensor([[[0.5, 0.5]], [[1.0, 0.0]]]))
    >>> p.mean()
    tensor([[0.7500, 0.2500]])
    >>> round(float(p.mutual_information()[0]), 4)
    0.2158
    """

    probs: torch.Tensor | None = None
    loc: torch.Tensor | None = None
    scale: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if (self.probs is None) == (self.loc is None):
            raise ValueError("give exactly one of probs= (classification) or loc= (regression)")
        if self.probs is not None:
            p = torch.as_tensor(self.probs)
            if p.dim() == 2:
                p = p.unsqueeze(0)
            if p.dim() != 3:
                raise ValueError(f"probs must have shape (S, N, C), got {tuple(p.shape)}")
            if not torch.isfinite(p).all():
                raise ValueError("probs contain NaN or inf")
            if (p < -1e-6).any() or (p.sum(-1) - 1).abs().max() > 1e-3:
                raise ValueError("probs must be non-negative and sum to 1 over the last axis")
            self.probs = p
        else:
            loc = torch.as_tensor(self.loc)
            if loc.dim() == 1:
                loc = loc.unsqueeze(0)
            if loc.dim() != 2:
                raise ValueError(f"loc must have shape (S, N), got {tuple(loc.shape)}")
            scale = torch.zeros_like(loc) if self.scale is None else torch.as_tensor(self.scale)
            scale = scale.to(loc).expand_as(loc) if scale.dim() < 2 else scale
            if scale.shape != loc.shape:
                raise ValueError(
                    f"scale shape {tuple(scale.shape)} != loc shape {tuple(loc.shape)}"
                )
            if not (torch.isfinite(loc).all() and torch.isfinite(scale).all()):
                raise ValueError("loc/scale contain NaN or inf")
            self.loc, self.scale = loc, scale

    # ---- shape -----------------------------------------------------------------------------
    @property
    def is_classification(self) -> bool:
        return self.probs is not None

    @property
    def num_samples(self) -> int:
        return (self.probs if self.is_classification else self.loc).shape[0]

    @property
    def num_points(self) -> int:
        return (self.probs if self.is_classification else self.loc).shape[1]

    # ---- reductions ------------------------------------------------------------------------
    def mean(self) -> torch.Tensor:
        """Posterior-predictive mean: ``(N, C)`` probabilities or ``(N,)`` regression means."""
        return (self.probs if self.is_classification else self.loc).mean(0)

    def variance(self) -> torch.Tensor:
        """Total predictive variance of a regression output (epistemic + noise), ``(N,)``."""
        self._need_regression("variance")
        epistemic = self.loc.var(0, unbiased=False)
        return epistemic + (self.scale**2).mean(0)

    def entropy(self) -> torch.Tensor:
        """Entropy of the mean predictive, ``(N,)`` (total uncertainty, nats)."""
        self._need_classification("entropy")
        p = self.mean()
        return -(p * (p + _EPS).log()).sum(-1)

    def expected_entropy(self) -> torch.Tensor:
        """Mean over samples of each sample's entropy, ``(N,)`` (aleatoric part)."""
        self._need_classification("expected_entropy")
        return -(self.probs * (self.probs + _EPS).log()).sum(-1).mean(0)

    def mutual_information(self) -> torch.Tensor:
        """BALD mutual information ``H[E p] - E H[p]``, ``(N,)`` (epistemic part)."""
        return (self.entropy() - self.expected_entropy()).clamp_min(0.0)

    def predict(self) -> torch.Tensor:
        """Point predictions: arg-max class ``(N,)`` or predictive mean ``(N,)``."""
        return self.mean().argmax(-1) if self.is_classification else self.mean()

    def log_likelihood(self, y: torch.Tensor) -> torch.Tensor:
        """Per-point log predictive density ``log E_s p(y | s)``, ``(N,)``."""
        y = torch.as_tensor(y, device=self.mean().device)
        if self.is_classification:
            return (self.mean().gather(-1, y.long().view(-1, 1)).squeeze(-1) + _EPS).log()
        scale = self.scale.clamp_min(1e-6)
        lp = torch.distributions.Normal(self.loc, scale).log_prob(y.to(self.loc))
        return torch.logsumexp(lp, 0) - math.log(self.num_samples)

    def to_numpy(self) -> dict[str, np.ndarray]:
        """Plain NumPy arrays of what is stored (``probs`` or ``loc``/``scale``)."""
        if self.is_classification:
            return {"probs": self.probs.detach().cpu().numpy()}
        return {"loc": self.loc.detach().cpu().numpy(), "scale": self.scale.detach().cpu().numpy()}

    def to(self, device: str | torch.device) -> PredictiveSamples:
        """Copy onto ``device``."""
        if self.is_classification:
            return PredictiveSamples(probs=self.probs.to(device))
        return PredictiveSamples(loc=self.loc.to(device), scale=self.scale.to(device))

    @staticmethod
    def concat(parts: list[PredictiveSamples]) -> PredictiveSamples:
        """Join predictions made batch by batch along the data axis ``N``."""
        if not parts:
            raise ValueError("nothing to concatenate")
        if parts[0].is_classification:
            return PredictiveSamples(probs=torch.cat([p.probs for p in parts], 1))
        return PredictiveSamples(
            loc=torch.cat([p.loc for p in parts], 1), scale=torch.cat([p.scale for p in parts], 1)
        )

    def _need_classification(self, what: str) -> None:
        if not self.is_classification:
            raise ValueError(f"{what}() is defined for classification samples (probs=)")

    def _need_regression(self, what: str) -> None:
        if self.is_classification:
            raise ValueError(f"{what}() is defined for regression samples (loc=)")
