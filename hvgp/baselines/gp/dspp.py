"""Deep sigma-point process (DSPP; Jankowiak, Pleiss & Gardner 2020), two layers.

A DSPP replaces the deep GP's Monte-Carlo samples of the hidden layer by ``Q`` learnt
quadrature sites with learnt weights, and is trained on the *predictive* log-likelihood
(``DeepPredictiveLogLikelihood``) rather than the ELBO, which tends to give better-calibrated
predictive variances — exactly what hvgp measures. Its predictive is a finite mixture of
``Q`` Gaussians (regression) or ``Q`` Gaussian-latent softmaxes (classification) with unequal
weights; :meth:`predict` turns it into ``num_samples`` equally weighted samples by systematic
resampling of the sites.

Support: GPyTorch documents DSPP for regression. Classification works here through the
generic sampled ``log_marginal`` of :class:`~gpytorch.likelihoods.SoftmaxLikelihood` (the
quadrature is over the hidden layer; the softmax expectation is Monte Carlo). It is
tested on two-moons, but it is our extension, not a GPyTorch-documented use.
"""

from __future__ import annotations

from typing import Any

import gpytorch
import torch
from gpytorch.models.deep_gps.dspp import DSPP, DSPPLayer

from hvgp.baselines.gp._common import systematic_resample
from hvgp.baselines.gp.deep import (
    DeepEstimatorBase,
    hidden_inducing_points,
    init_layer,
    layer_forward,
)
from hvgp.baselines.gp.svgp import probs_from_latents
from hvgp.predict import PredictiveSamples

__all__ = ["DSPPClassifier", "DSPPLayerRBF", "DSPPModel", "DSPPRegressor"]


class DSPPLayerRBF(DSPPLayer):
    """One DSPP layer: ``output_dims`` SVGPs evaluated at ``num_quad_sites`` sigma points."""

    def __init__(
        self,
        inducing_points: torch.Tensor,
        output_dims: int | None,
        num_quad_sites: int,
        linear_mean: bool = True,
    ) -> None:
        init_layer(
            self,
            DSPPLayer,
            inducing_points,
            output_dims,
            linear_mean,
            num_quad_sites=num_quad_sites,
        )

    forward = layer_forward


class DSPPModel(DSPP):
    """Input → ``hidden_dims`` GPs → ``num_outputs`` GPs, with ``num_quad_sites`` sites."""

    def __init__(
        self,
        inducing_points: torch.Tensor,
        hidden_dims: int,
        num_outputs: int | None,
        num_quad_sites: int = 8,
    ) -> None:
        super().__init__(num_quad_sites)
        self.hidden = DSPPLayerRBF(inducing_points, hidden_dims, num_quad_sites, linear_mean=True)
        z_out = hidden_inducing_points(self.hidden, inducing_points)
        self.output = DSPPLayerRBF(z_out, num_outputs, num_quad_sites, linear_mean=False)

    def forward(self, x: torch.Tensor) -> gpytorch.distributions.MultivariateNormal:
        return self.output(self.hidden(x))


class _DSPPMixin:
    """Model and objective of the DSPP (``beta`` scales the KL term, as in the paper)."""

    def __init__(self, *args: Any, num_quad_sites: int = 8, beta: float = 0.05, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if num_quad_sites < 1:
            raise ValueError(f"num_quad_sites must be >= 1, got {num_quad_sites}")
        self.num_quad_sites, self.beta = num_quad_sites, beta

    def _make_model(self, z: torch.Tensor, num_outputs: int | None) -> DSPP:
        return DSPPModel(z, self.hidden_dims, num_outputs, self.num_quad_sites)

    def _make_objective(
        self, likelihood: gpytorch.likelihoods.Likelihood, model: DSPP, num_data: int
    ) -> gpytorch.mlls.MarginalLogLikelihood:
        return gpytorch.mlls.DeepPredictiveLogLikelihood(likelihood, model, num_data, self.beta)

    def _sites(self, num_samples: int) -> torch.Tensor:
        """Indices of the quadrature site behind each of ``num_samples`` predictive samples."""
        return systematic_resample(self.model.quad_weights, num_samples)


class DSPPRegressor(_DSPPMixin, DeepEstimatorBase):
    """Two-layer DSPP regression (targets standardised inside).

    :param num_quad_sites: quadrature sites ``Q`` (mixture components of the predictive).
    :param beta: weight of the KL term in the predictive log-likelihood objective.
    Other parameters as :class:`~hvgp.baselines.gp.deep.DeepEstimatorBase`.
    """

    @torch.no_grad()
    def predict(self, x: Any, num_samples: int | None = 64) -> PredictiveSamples:
        """Sample ``s`` is site ``q_s``'s Gaussian (sites resampled by their weights)."""
        self._check_fitted()
        idx = self._sites(self._check_samples(num_samples))
        xt = self._features(x)
        locs, scales = [], []
        with self._settings():
            for chunk in self._chunks(xt):
                f = self.model(chunk)  # batch (Q,), event (N,)
                locs.append(f.mean[idx])
                scales.append((f.variance[idx].clamp_min(0) + self._noise_std() ** 2).sqrt())
        loc = torch.cat(locs, -1) * self.y_std_ + self.y_mean_
        return PredictiveSamples(loc=loc, scale=torch.cat(scales, -1) * self.y_std_)


class DSPPClassifier(_DSPPMixin, DeepEstimatorBase):
    """Two-layer DSPP classification (softmax over ``C`` output GPs; see module docstring).

    ``predict``: sample ``s`` draws the ``C`` output latents from site ``q_s`` and softmaxes.
    """

    is_classifier = True

    @torch.no_grad()
    def predict(self, x: Any, num_samples: int | None = 64) -> PredictiveSamples:
        self._check_fitted()
        idx = self._sites(self._check_samples(num_samples))
        xt = self._features(x)
        parts = []
        with self._settings():
            for chunk in self._chunks(xt):
                f = self.model(chunk)  # batch (Q,), event (N, C)
                mean, std = f.mean[idx], f.variance[idx].clamp_min(0).sqrt()
                draw = mean + std * torch.randn_like(std)
                parts.append(probs_from_latents(self.likelihood, draw))
        return PredictiveSamples(probs=torch.cat(parts, 1))
