"""Exact GP regression with hyper-parameters fitted by the marginal likelihood.

The reference Bayesian regressor: with a Gaussian likelihood the posterior is closed form, so
its calibration is the best a GP prior can do. The kernel is any GPyTorch kernel — scaled
RBF / Matérn with ARD by default, :class:`~hvgp.baselines.gp.nngp.NNGPKernel` for
:class:`NNGPRegressor`.
"""

from __future__ import annotations

import warnings
from typing import Any

import gpytorch
import torch

from hvgp.baselines.gp._common import (
    GPEstimator,
    as_targets,
    make_kernel,
    minibatches,
)
from hvgp.baselines.gp.nngp import NNGPKernel
from hvgp.predict import PredictiveSamples
from hvgp.registry import register_model

__all__ = ["ExactGPModel", "ExactGPRegressor", "NNGPRegressor"]


class ExactGPModel(gpytorch.models.ExactGP):
    """Constant mean + a given kernel: the ~10-line GPyTorch model."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        likelihood: gpytorch.likelihoods.GaussianLikelihood,
        covar_module: gpytorch.kernels.Kernel,
    ) -> None:
        super().__init__(x, y, likelihood)
        self.mean_module = gpytorch.means.ConstantMean()
        self.covar_module = covar_module

    def forward(self, x: torch.Tensor) -> gpytorch.distributions.MultivariateNormal:
        return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))


@register_model("svgp", kind="gp", task="regression")  # exact: regression fits in memory
class ExactGPRegressor(GPEstimator):
    """Exact GP regression; hyper-parameters by maximising the exact marginal likelihood (Adam).

    Targets are standardised inside (``normalize_y``) so that default hyper-parameter
    initialisations are sensible whatever the units; predictions come back in the original
    units. ``predict(x, num_samples=S)`` returns ``S`` draws of the latent ``f(x)`` with the
    noise std as ``scale`` (the convention of every hvgp model); ``num_samples=None`` returns
    the closed-form predictive ``N(mean, var_f + noise)`` as a single sample, which is what
    :meth:`evaluate` uses by default (no Monte-Carlo error in the NLL).

    :param kernel: ``"rbf" | "matern12" | "matern32" | "matern52"`` or a GPyTorch kernel.
    :param ard: one length-scale per input feature (named kernels only).
    :param lengthscale, outputscale, noise: initial values (named kernels); with
        ``epochs=0`` they are the values used, which makes the model a fixed-hyper-parameter GP.
    :param train_kernel: learn the kernel's hyper-parameters (noise and mean are always learnt).
    :param normalize_y: standardise targets before fitting.
    :param kwargs: device / dtype / jitter / seed / progress (see :class:`GPEstimator`).
    """

    default_eval_samples = None

    def __init__(
        self,
        kernel: str | gpytorch.kernels.Kernel = "rbf",
        ard: bool = True,
        lengthscale: float | None = None,
        outputscale: float | None = None,
        noise: float | None = None,
        train_kernel: bool = True,
        normalize_y: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.kernel, self.ard, self.train_kernel = kernel, ard, train_kernel
        self.lengthscale, self.outputscale, self.noise = lengthscale, outputscale, noise
        self.normalize_y = normalize_y
        self.model: ExactGPModel | None = None
        self.likelihood: gpytorch.likelihoods.GaussianLikelihood | None = None

    def _build(self, x: torch.Tensor, y: torch.Tensor) -> None:
        covar = make_kernel(self.kernel, x.shape[1], self.ard, x=x)
        if isinstance(self.kernel, str):
            if self.outputscale is not None:
                covar.outputscale = self.outputscale
            if self.lengthscale is not None:
                covar.base_kernel.lengthscale = self.lengthscale
        elif self.lengthscale is not None or self.outputscale is not None:
            raise ValueError(
                "lengthscale/outputscale apply to named kernels only; set them on "
                "the kernel object instead"
            )
        likelihood = gpytorch.likelihoods.GaussianLikelihood()
        if self.noise is not None:
            likelihood.noise = self.noise
        self.likelihood = likelihood.to(device=self.device, dtype=self.dtype)
        model = ExactGPModel(x, y, self.likelihood, covar)
        self.model = model.to(device=self.device, dtype=self.dtype)
        for p in self.model.covar_module.parameters():
            p.requires_grad_(self.train_kernel)

    def fit(
        self,
        x_train: Any,
        y_train: Any,
        epochs: int = 200,
        lr: float = 0.05,
        patience: int | None = 20,
        batch_size: int | None = None,
    ) -> ExactGPRegressor:
        """Fit hyper-parameters by the exact marginal likelihood; ``epochs`` full-batch Adam
        steps with early stopping after ``patience`` steps without improvement.

        ``batch_size`` exists for a common signature with the other estimators; the exact
        marginal likelihood needs all the data at once, so any value other than None only warns.
        """
        if batch_size is not None:
            warnings.warn(
                f"{type(self).__name__} trains on the full data set; batch_size={batch_size} "
                "is ignored",
                stacklevel=2,
            )
        self.num_features_ = None
        x = self._features(x_train)
        y = as_targets(y_train, x.shape[0], self.dtype, self.device)
        yn = self._standardise(y, self.normalize_y)
        with self._rng(), self._settings():
            self._build(x, yn)
            model, likelihood = self.model, self.likelihood
            mll = gpytorch.mlls.ExactMarginalLogLikelihood(likelihood, model)
            model.train()
            likelihood.train()

            def loss_fn(batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
                return -mll(model(batch[0]), batch[1])

            self._optimise(loss_fn, minibatches((x, yn), None, None), epochs, lr, patience,
                           x.shape[1])
        return self

    @torch.no_grad()
    def predict_latent(self, x: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and variance of the latent ``f(x)`` (original units), each ``(N,)``."""
        self._check_fitted()
        xt = self._features(x)
        means, variances = [], []
        with self._settings(), gpytorch.settings.fast_pred_var(False):
            for chunk in self._chunks(xt):
                f = self.model(chunk)
                means.append(f.mean)
                variances.append(f.variance.clamp_min(0.0))
        mean = torch.cat(means) * self.y_std_ + self.y_mean_
        return mean, torch.cat(variances) * self.y_std_**2

    @property
    def noise_std(self) -> torch.Tensor:
        """Observation-noise standard deviation in the original units."""
        self._check_fitted()
        return self.likelihood.noise.detach().squeeze().sqrt() * self.y_std_

    def predict(self, x: Any, num_samples: int | None = 64) -> PredictiveSamples:
        """``num_samples`` draws of ``f(x)`` (per-point marginals) with the noise std as scale;
        ``None``: the exact Gaussian predictive as one sample (scale = total std)."""
        mean, var = self.predict_latent(x)
        noise = self.noise_std
        if num_samples is None:
            total = (var + noise**2).sqrt()
            return PredictiveSamples(loc=mean.unsqueeze(0), scale=total.unsqueeze(0))
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1 or None, got {num_samples}")
        eps = torch.randn(num_samples, mean.shape[0], dtype=mean.dtype, device=mean.device)
        loc = mean + var.sqrt() * eps
        return PredictiveSamples(loc=loc, scale=noise.expand_as(loc))


@register_model("nngp", kind="gp", task="regression")
class NNGPRegressor(ExactGPRegressor):
    """Exact GP regression with the NNGP kernel of a randomly masked ReLU MLP.

    This is the GP that a CigL network with the same depth, weight variance, keep-probability
    and density approximates at infinite width (see :class:`NNGPKernel`). By default the
    kernel is the network's prior, held fixed (``train_kernel=False``); the mean and noise are
    fitted by the marginal likelihood. Standardise inputs: the kernel has no length-scale.
    """

    def __init__(
        self,
        depth: int = 2,
        weight_var: float = 2.0,
        bias_var: float = 0.1,
        keep_prob: float = 1.0,
        density: float = 1.0,
        train_kernel: bool = False,
        noise: float | None = None,
        normalize_y: bool = True,
        **kwargs: Any,
    ) -> None:
        kernel = NNGPKernel(depth, weight_var, bias_var, keep_prob=keep_prob, density=density)
        super().__init__(
            kernel=kernel,
            ard=False,
            noise=noise,
            train_kernel=train_kernel,
            normalize_y=normalize_y,
            **kwargs,
        )
