"""Sparse variational GP (SVGP) classification, minibatched, with k-means inducing points.

Likelihood choice: :class:`gpytorch.likelihoods.SoftmaxLikelihood` (one latent GP per class,
``p(y | f) = softmax(f)_y``), not ``DirichletClassificationLikelihood``. The softmax likelihood
is the model whose predictive probabilities we want to score: the ELBO is a bound on the
Categorical log-likelihood, so NLL/ECE compare like with like against the neural models. The
Dirichlet method (Milios et al. 2018) is a *regression* on transformed labels with a
heteroscedastic Gaussian noise; its class probabilities come from a post-hoc Gamma/Dirichlet
moment match, it is designed for exact GPs rather than minibatched SVGP, and its calibration
depends on the label-smoothing constant ``alpha_epsilon``. It would be a second baseline,
not a better default.
"""

from __future__ import annotations

from typing import Any

import gpytorch
import torch

from hvgp.baselines.gp._common import (
    GPEstimator,
    class_labels,
    kmeans_inducing_points,
    make_kernel,
    minibatches,
)
from hvgp.baselines.gp.nngp import NNGPKernel
from hvgp.predict import PredictiveSamples
from hvgp.registry import register_model

__all__ = ["NNGPClassifier", "SVGPClassifier", "SVGPModel"]


class SVGPModel(gpytorch.models.ApproximateGP):
    """``num_latents`` independent GPs sharing inducing inputs (one per class).

    :param inducing_points: ``(M, D)`` initial inducing inputs.
    :param num_latents: number of latent functions (classes).
    :param covar_module: kernel; a batch-shaped kernel gives each latent its own
        hyper-parameters, a plain one is shared.
    """

    def __init__(
        self, inducing_points: torch.Tensor, num_latents: int, covar_module: gpytorch.kernels.Kernel
    ) -> None:
        batch = torch.Size([num_latents])
        dist = gpytorch.variational.CholeskyVariationalDistribution(
            inducing_points.shape[0], batch_shape=batch
        )
        strategy = gpytorch.variational.IndependentMultitaskVariationalStrategy(
            gpytorch.variational.VariationalStrategy(
                self, inducing_points, dist, learn_inducing_locations=True
            ),
            num_tasks=num_latents,
        )
        super().__init__(strategy)
        self.mean_module = gpytorch.means.ConstantMean(batch_shape=batch)
        self.covar_module = covar_module

    def forward(self, x: torch.Tensor) -> gpytorch.distributions.MultivariateNormal:
        return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))


def softmax_likelihood(num_classes: int) -> gpytorch.likelihoods.SoftmaxLikelihood:
    """Softmax over one latent per class (no mixing weights: latents *are* the logits)."""
    return gpytorch.likelihoods.SoftmaxLikelihood(
        num_features=num_classes, num_classes=num_classes, mixing_weights=False
    )


def probs_from_latents(
    likelihood: gpytorch.likelihoods.SoftmaxLikelihood, f: torch.Tensor
) -> torch.Tensor:
    """Class probabilities ``(…, N, C)`` of latent samples ``(…, N, C)``."""
    return likelihood(f).probs


@register_model("svgp", kind="gp", task="classification", help="sparse variational GP")
class SVGPClassifier(GPEstimator):
    """Multi-class SVGP (Hensman et al. 2015) trained on minibatches by the ELBO.

    Inducing inputs start at k-means centres of the training inputs and are learnt.
    ``predict`` draws ``num_samples`` latent vectors ``f(x) ~ q(f)`` (per-point marginals) and
    returns their softmax, ``(S, N, C)``.

    :param num_inducing: number of inducing points ``M``.
    :param kernel: named kernel (per-class hyper-parameters) or a GPyTorch kernel (shared).
    :param ard: one length-scale per feature (named kernels only).
    :param num_classes: defaults to ``max(y) + 1``.
    :param train_kernel: learn the kernel's hyper-parameters.
    :param num_likelihood_samples: Monte-Carlo samples of ``f`` for the expected
        log-likelihood in the ELBO (the softmax has no closed form).
    :param kwargs: device / dtype / jitter / seed / progress (see :class:`GPEstimator`).
    """

    is_classifier = True

    def __init__(
        self,
        num_inducing: int = 64,
        kernel: str | gpytorch.kernels.Kernel = "rbf",
        ard: bool = True,
        num_classes: int | None = None,
        train_kernel: bool = True,
        num_likelihood_samples: int = 16,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_inducing, self.kernel, self.ard = num_inducing, kernel, ard
        self.num_classes, self.train_kernel = num_classes, train_kernel
        self.num_likelihood_samples = num_likelihood_samples
        self.model: SVGPModel | None = None
        self.likelihood: gpytorch.likelihoods.SoftmaxLikelihood | None = None

    def _build(self, x: torch.Tensor, num_classes: int) -> None:
        z = kmeans_inducing_points(x, self.num_inducing, self.seed)
        batch = torch.Size([num_classes]) if isinstance(self.kernel, str) else torch.Size()
        covar = make_kernel(self.kernel, x.shape[1], self.ard, batch_shape=batch, x=x)
        self.model = SVGPModel(z, num_classes, covar).to(device=self.device, dtype=self.dtype)
        self.likelihood = softmax_likelihood(num_classes).to(device=self.device, dtype=self.dtype)
        for p in self.model.covar_module.parameters():
            p.requires_grad_(self.train_kernel)

    def fit(
        self,
        x_train: Any,
        y_train: Any,
        epochs: int = 100,
        lr: float = 0.02,
        batch_size: int | None = 256,
        patience: int | None = 15,
    ) -> SVGPClassifier:
        """Maximise the ELBO with Adam on minibatches of ``batch_size`` (None: full batch)."""
        self.num_features_ = None
        x = self._features(x_train)
        y, num_classes = class_labels(y_train, x.shape[0], self.device, self.num_classes)
        with self._rng(), self._settings():
            self._build(x, num_classes)
            model, likelihood = self.model, self.likelihood
            elbo = gpytorch.mlls.VariationalELBO(likelihood, model, num_data=x.shape[0])
            model.train()
            likelihood.train()

            def loss_fn(batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
                with gpytorch.settings.num_likelihood_samples(self.num_likelihood_samples):
                    return -elbo(model(batch[0]), batch[1])

            self._optimise(loss_fn, minibatches((x, y), batch_size, self._generator()), epochs,
                           lr, patience, x.shape[1])
        self.num_classes_ = num_classes
        return self

    @torch.no_grad()
    def predict(self, x: Any, num_samples: int | None = 64) -> PredictiveSamples:
        """Softmax of ``num_samples`` draws of the latent functions: probs ``(S, N, C)``."""
        self._check_fitted()
        if num_samples is None or num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        xt = self._features(x)
        parts = []
        with self._settings():
            for chunk in self._chunks(xt):
                f = self.model(chunk)  # MultitaskMultivariateNormal, (N, C)
                eps = torch.randn(num_samples, *f.mean.shape, dtype=f.mean.dtype, device=xt.device)
                samples = f.mean + f.variance.clamp_min(0).sqrt() * eps
                parts.append(probs_from_latents(self.likelihood, samples))
        return PredictiveSamples(probs=torch.cat(parts, 1))


@register_model("nngp", kind="gp", task="classification", help="GP of a masked ReLU MLP")
class NNGPClassifier(SVGPClassifier):
    """SVGP classification with the NNGP kernel of a randomly masked ReLU MLP (shared by all
    classes, fixed by default: it is the network's prior; see :class:`NNGPKernel`)."""

    def __init__(
        self,
        depth: int = 2,
        weight_var: float = 2.0,
        bias_var: float = 0.1,
        keep_prob: float = 1.0,
        density: float = 1.0,
        num_inducing: int = 64,
        train_kernel: bool = False,
        **kwargs: Any,
    ) -> None:
        kernel = NNGPKernel(depth, weight_var, bias_var, keep_prob=keep_prob, density=density)
        super().__init__(
            num_inducing=num_inducing, kernel=kernel, ard=False, train_kernel=train_kernel, **kwargs
        )
