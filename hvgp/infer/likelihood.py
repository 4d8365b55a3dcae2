"""Likelihoods: the observation site of the Pyro program, scaled to the data-set size.

Kept apart from the network and the objective (as in GPyTorch): a likelihood turns the
network output into a distribution, puts the ``obs`` site inside a subsampled data plate so
that the minibatch term is scaled by ``N / B`` (the ELBO stays unbiased), and says how to
read a predictive off the output (:meth:`Likelihood.predictive` -> ``PredictiveSamples``).
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from hvgp.predict import PredictiveSamples
from hvgp.utils import all_finite

__all__ = ["CategoricalLikelihood", "GaussianLikelihood", "Likelihood", "make_likelihood"]


class Likelihood(nn.Module):
    """Base class. ``forward(out, y, data_size)`` draws/observes the ``obs`` site."""

    is_classification = True

    def distribution(self, out: torch.Tensor) -> dist.Distribution:
        """The per-point observation distribution for network output ``out``."""
        raise NotImplementedError

    def predictive(self, out: torch.Tensor) -> PredictiveSamples:
        """Predictive samples of network outputs ``(S, N, ...)``: class probabilities (the
        softmax of the logits) for a classifier; regression likelihoods override this."""
        if not self.is_classification:
            raise NotImplementedError(f"{type(self).__name__} does not define predictive()")
        return PredictiveSamples(probs=out.float().softmax(-1))

    def check_targets(self, out: torch.Tensor, y: torch.Tensor) -> None:
        """Refuse targets this likelihood cannot observe, with a message naming them."""
        if y.is_floating_point() and not all_finite(y):
            raise ValueError("targets contain NaN/inf (non-finite) values")

    def forward(
        self, out: torch.Tensor, y: torch.Tensor | None = None, data_size: int | None = None
    ) -> torch.Tensor:
        """Observe (or sample) ``y`` in a data plate of ``size=data_size`` over this batch."""
        n = out.shape[-2] if self.is_classification else out.shape[-1]
        size = n if data_size is None else int(data_size)
        if size < n:
            raise ValueError(f"data_size={size} is smaller than the minibatch ({n} points)")
        if y is not None:
            self.check_targets(out, y)
        with pyro.plate("data", size=size, subsample=torch.arange(n, device=out.device)):
            return pyro.sample("obs", self.distribution(out), obs=y)


class CategoricalLikelihood(Likelihood):
    """Categorical over class logits of shape ``(..., N, C)``."""

    is_classification = True

    def distribution(self, out: torch.Tensor) -> dist.Distribution:
        return dist.Categorical(logits=out)

    def check_targets(self, out: torch.Tensor, y: torch.Tensor) -> None:
        c = out.shape[-1]
        if y.is_floating_point() or y.dtype == torch.bool:
            raise ValueError(f"labels must be integer class indices in [0, {c}), got {y.dtype}")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= c):
            raise ValueError(f"labels must be class indices in [0, {c}), got min {int(y.min())} "
                             f"max {int(y.max())}")


class GaussianLikelihood(Likelihood):
    """Normal around a scalar output ``(..., N)`` with a learned or fixed noise std.

    :param noise: fixed noise std; ``None`` learns it (a point-estimated log std, start 1).
    """

    is_classification = False

    def __init__(self, noise: float | None = None) -> None:
        super().__init__()
        if noise is None:
            self.log_noise = nn.Parameter(torch.zeros(()))
        else:
            if not (isinstance(noise, (int, float)) and noise > 0 and math.isfinite(noise)):
                raise ValueError(f"noise must be a positive finite std or None, got {noise!r}")
            self.register_buffer("log_noise", torch.tensor(math.log(noise)))

    @property
    def noise(self) -> torch.Tensor:
        return self.log_noise.exp()

    def distribution(self, out: torch.Tensor) -> dist.Distribution:
        return dist.Normal(out, self.noise.to(out))

    def predictive(self, out: torch.Tensor) -> PredictiveSamples:
        """Means ``out`` ``(S, N)`` with the noise std as every sample's scale."""
        return PredictiveSamples(loc=out, scale=self.noise.to(out).expand_as(out))


def make_likelihood(kind: str | Likelihood, noise: float | None = None) -> Likelihood:
    """``"categorical"`` / ``"normal"`` (alias ``"gaussian"``) or a ready likelihood."""
    if isinstance(kind, Likelihood):
        return kind
    key = str(kind).lower()
    if key in ("categorical", "classification"):
        return CategoricalLikelihood()
    if key in ("normal", "gaussian", "regression"):
        return GaussianLikelihood(noise)
    raise ValueError(f"unknown likelihood {kind!r}; use 'categorical' or 'normal'")
