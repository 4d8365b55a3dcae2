"""Two-layer deep GP with doubly-stochastic variational inference (Salimbeni & Deisenroth 2017).

A deep GP is the function-space object CigL's masked network approximates (DESIGN §1), so it
is the most direct GP baseline. Each layer is an SVGP whose inputs are samples of the layer
below; the ELBO is estimated by propagating ``num_likelihood_samples`` samples through the
layers (GPyTorch's ``DeepGP`` + ``DeepApproximateMLL``). Regression uses a Gaussian
likelihood; classification the softmax likelihood over one output GP per class (see
:mod:`hvgp.baselines.gp.svgp` for why softmax rather than Dirichlet).
"""

from __future__ import annotations

from typing import Any

import gpytorch
import torch
from gpytorch.models.deep_gps import DeepGP, DeepGPLayer

from hvgp.baselines.gp._common import (
    GPEstimator,
    as_targets,
    class_labels,
    kmeans_inducing_points,
    minibatches,
)
from hvgp.baselines.gp.svgp import probs_from_latents, softmax_likelihood
from hvgp.predict import PredictiveSamples
from hvgp.registry import register_model

__all__ = ["DeepGPClassifier", "DeepGPLayerRBF", "DeepGPModel", "DeepGPRegressor"]


# ---- layers --------------------------------------------------------------------------------------
def init_layer(
    layer: DeepGPLayer,
    base: type[DeepGPLayer],
    inducing_points: torch.Tensor,
    output_dims: int | None,
    linear_mean: bool,
    **base_kwargs: Any,
) -> None:
    """Give ``layer`` (a ``base`` subclass) an SVGP strategy, a mean and a scaled ARD RBF kernel.

    Shared by the deep-GP and DSPP layers, which differ only in their GPyTorch base class.
    ``inducing_points`` is ``(M, D)``; it is copied for each of the ``output_dims`` GPs.
    """
    batch = torch.Size() if output_dims is None else torch.Size([output_dims])
    num_inducing, input_dims = inducing_points.shape[-2:]
    z = inducing_points.expand(*batch, num_inducing, input_dims).clone()
    dist = gpytorch.variational.CholeskyVariationalDistribution(num_inducing, batch_shape=batch)
    strategy = gpytorch.variational.VariationalStrategy(
        layer, z, dist, learn_inducing_locations=True
    )
    base.__init__(layer, strategy, input_dims, output_dims, **base_kwargs)
    layer.mean_module = (
        gpytorch.means.LinearMean(input_dims, batch_shape=batch)
        if linear_mean
        else gpytorch.means.ConstantMean(batch_shape=batch)
    )
    layer.covar_module = gpytorch.kernels.ScaleKernel(
        gpytorch.kernels.RBFKernel(ard_num_dims=input_dims, batch_shape=batch), batch_shape=batch
    )


def layer_forward(layer: DeepGPLayer, x: torch.Tensor) -> gpytorch.distributions.MultivariateNormal:
    return gpytorch.distributions.MultivariateNormal(layer.mean_module(x), layer.covar_module(x))


class DeepGPLayerRBF(DeepGPLayer):
    """One deep-GP layer: ``output_dims`` SVGPs (None: a single, squeezed output)."""

    def __init__(
        self, inducing_points: torch.Tensor, output_dims: int | None, linear_mean: bool = True
    ) -> None:
        init_layer(self, DeepGPLayer, inducing_points, output_dims, linear_mean)

    forward = layer_forward


def hidden_inducing_points(hidden: DeepGPLayer, z: torch.Tensor) -> torch.Tensor:
    """Inducing inputs of the next layer: the hidden layer's prior mean at ``z``, ``(M, H)``.

    With a linear mean this places the upper layer's inducing points where the hidden
    features of the data will lie at initialisation (GPyTorch's example uses ``randn``).
    """
    with torch.no_grad():
        return hidden.mean_module.to(z)(z).transpose(-1, -2).contiguous()


class DeepGPModel(DeepGP):
    """Input → ``hidden_dims`` GPs (linear mean) → ``num_outputs`` GPs (constant mean).

    :param inducing_points: ``(M, D)`` initial inducing inputs of the first layer.
    :param hidden_dims: width of the hidden GP layer.
    :param num_outputs: None for one regression output, ``C`` for ``C`` class latents.
    """

    def __init__(
        self, inducing_points: torch.Tensor, hidden_dims: int, num_outputs: int | None
    ) -> None:
        super().__init__()
        self.hidden = DeepGPLayerRBF(inducing_points, hidden_dims, linear_mean=True)
        z_out = hidden_inducing_points(self.hidden, inducing_points)
        self.output = DeepGPLayerRBF(z_out, num_outputs, linear_mean=False)

    def forward(self, x: torch.Tensor) -> gpytorch.distributions.MultivariateNormal:
        return self.output(self.hidden(x))


# ---- estimators ----------------------------------------------------------------------------------
class DeepEstimatorBase(GPEstimator):
    """Fit loop shared by the deep GP and DSPP estimators (regression and classification).

    Subclasses provide ``_make_model(z, num_outputs)`` and ``_make_objective(likelihood, model,
    num_data)``, and ``predict``.

    :param hidden_dims: width of the hidden GP layer.
    :param num_inducing: inducing points per GP (first layer: k-means of the inputs).
    :param num_classes: classifiers only; defaults to ``max(y) + 1``.
    :param num_likelihood_samples: samples propagated through the layers per training step.
    :param kwargs: device / dtype / jitter / seed / progress (see :class:`GPEstimator`).
    """

    def __init__(
        self,
        hidden_dims: int = 3,
        num_inducing: int = 64,
        num_classes: int | None = None,
        num_likelihood_samples: int = 8,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if hidden_dims < 1:
            raise ValueError(f"hidden_dims must be >= 1, got {hidden_dims}")
        if num_classes is not None and not self.is_classifier:
            raise ValueError("num_classes applies to classifiers only")
        self.hidden_dims, self.num_inducing = hidden_dims, num_inducing
        self.num_classes, self.num_likelihood_samples = num_classes, num_likelihood_samples
        self.model: DeepGP | None = None
        self.likelihood: gpytorch.likelihoods.Likelihood | None = None

    def _make_model(self, z: torch.Tensor, num_outputs: int | None) -> DeepGP:
        raise NotImplementedError

    def _make_objective(
        self, likelihood: gpytorch.likelihoods.Likelihood, model: DeepGP, num_data: int
    ) -> gpytorch.mlls.MarginalLogLikelihood:
        raise NotImplementedError

    def _targets(self, y: Any, n: int) -> torch.Tensor:
        if self.is_classifier:
            labels, self.num_classes_ = class_labels(y, n, self.device, self.num_classes)
            return labels
        return self._standardise(as_targets(y, n, self.dtype, self.device))

    def fit(
        self,
        x_train: Any,
        y_train: Any,
        epochs: int = 100,
        lr: float = 0.02,
        batch_size: int | None = 256,
        patience: int | None = 15,
    ) -> DeepEstimatorBase:
        """Maximise the (doubly-stochastic) objective with Adam on minibatches."""
        self.num_features_ = None
        x = self._features(x_train)
        y = self._targets(y_train, x.shape[0])
        num_outputs = self.num_classes_ if self.is_classifier else None
        with self._rng(), self._settings():
            z = kmeans_inducing_points(x, self.num_inducing, self.seed)
            model = self._make_model(z, num_outputs).to(device=self.device, dtype=self.dtype)
            likelihood = (
                softmax_likelihood(num_outputs)
                if self.is_classifier
                else gpytorch.likelihoods.GaussianLikelihood()
            ).to(device=self.device, dtype=self.dtype)
            objective = self._make_objective(likelihood, model, x.shape[0])
            self.model, self.likelihood = model, likelihood
            model.train()
            likelihood.train()

            def loss_fn(batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
                with gpytorch.settings.num_likelihood_samples(self.num_likelihood_samples):
                    return -objective(model(batch[0]), batch[1])

            self._optimise(loss_fn, minibatches((x, y), batch_size, self._generator()), epochs,
                           lr, patience, x.shape[1])
        return self

    def _check_samples(self, num_samples: int | None) -> int:
        if num_samples is None or num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        return num_samples

    def _noise_std(self) -> torch.Tensor:
        return self.likelihood.noise.detach().squeeze().sqrt()


class _DeepGPMixin:
    """Model and objective of the doubly-stochastic deep GP."""

    def _make_model(self, z: torch.Tensor, num_outputs: int | None) -> DeepGP:
        return DeepGPModel(z, self.hidden_dims, num_outputs)

    def _make_objective(
        self, likelihood: gpytorch.likelihoods.Likelihood, model: DeepGP, num_data: int
    ) -> gpytorch.mlls.MarginalLogLikelihood:
        return gpytorch.mlls.DeepApproximateMLL(
            gpytorch.mlls.VariationalELBO(likelihood, model, num_data)
        )


@register_model("deepgp", kind="gp", task="regression")
class DeepGPRegressor(_DeepGPMixin, DeepEstimatorBase):
    """Two-layer deep GP regression (targets standardised inside).

    ``predict`` propagates ``num_samples`` samples through the hidden layer; sample ``s`` gives
    the Gaussian ``N(loc_s, scale_s²)`` of ``y`` (output-layer mean, and output-layer variance
    plus noise), so the ``PredictiveSamples`` mixture *is* the deep GP's predictive.
    """

    @torch.no_grad()
    def predict(self, x: Any, num_samples: int | None = 64) -> PredictiveSamples:
        self._check_fitted()
        s = self._check_samples(num_samples)
        xt = self._features(x)
        locs, scales = [], []
        with self._settings(), gpytorch.settings.num_likelihood_samples(s):
            for chunk in self._chunks(xt):
                f = self.model(chunk)  # batch (S,), event (N,)
                locs.append(f.mean)
                scales.append((f.variance.clamp_min(0) + self._noise_std() ** 2).sqrt())
        loc = torch.cat(locs, -1) * self.y_std_ + self.y_mean_
        return PredictiveSamples(loc=loc, scale=torch.cat(scales, -1) * self.y_std_)


@register_model("deepgp", kind="gp", task="classification", help="two-layer deep GP")
class DeepGPClassifier(_DeepGPMixin, DeepEstimatorBase):
    """Two-layer deep GP classification (softmax over ``C`` output GPs).

    ``predict``: for each of ``num_samples`` hidden-layer samples one draw of the ``C``
    output latents, softmaxed: probs ``(S, N, C)``.
    """

    is_classifier = True

    @torch.no_grad()
    def predict(self, x: Any, num_samples: int | None = 64) -> PredictiveSamples:
        self._check_fitted()
        s = self._check_samples(num_samples)
        xt = self._features(x)
        parts = []
        with self._settings(), gpytorch.settings.num_likelihood_samples(s):
            for chunk in self._chunks(xt):
                f = self.model(chunk)  # batch (S,), event (N, C)
                draw = f.mean + f.variance.clamp_min(0).sqrt() * torch.randn_like(f.mean)
                parts.append(probs_from_latents(self.likelihood, draw))
        return PredictiveSamples(probs=torch.cat(parts, 1))
