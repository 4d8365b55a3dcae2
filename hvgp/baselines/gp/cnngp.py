"""CNN-GP: the Gaussian process that hvgp's infinitely wide, randomly masked 1-D CNN is.

``cnn1d`` (:class:`hvgp.nn.CNN1d`) is three convolutions (kernel 5 / stride 1 / padding 2,
then 3/2/1 twice), each followed by BatchNorm and ReLU, a flatten (no pooling), one hidden
dense ReLU layer and a dense read-out. In the infinite-channel limit its output is a GP
(Novak et al. 2019; Garriga-Alonso et al. 2019). Because nothing pools over positions, the
read-out only needs, per layer, the *per-position diagonal* of the spatial covariance,
``K_l(x, x')[p] = Cov(z_l(x)[p], z_l(x')[p])``, and a convolution maps it by

    K_{l+1}[p] = σ̃_w² · (1/k) Σ_{j<k} E[relu(u) relu(v)](K_l)[s·p + j − pad] + σ_b²,

zero padding contributing 0 (the padded activation is 0) and the stride ``s`` subsampling
the patch centres exactly as the convolution does. ``σ̃_w² = σ_w² · d / (1 − p)`` is the
masked weight variance of :func:`~hvgp.baselines.gp.nngp.effective_weight_var` (per-layer
density ``d``, keep-probability ``1 − p``), with ``w ~ N(0, σ_w² / fan_in)`` and the *dense*
fan-in ``C_in · k`` as in the MLP kernel.

What is modelled: the architecture *without BatchNorm* (as neural-tangents does). At
initialisation BatchNorm's shift is 0 and its scale 1, so it only renormalises each channel
by batch statistics; in the infinite-width limit that is a data-dependent rescaling that has
no per-pair closed form, and with He variance (σ_w² = 2) the pre-activations already keep
unit scale, which is what BatchNorm is there to ensure. Strides are modelled exactly.

:class:`CNNGPClassifier` is an exact GP on the one-hot labels with this kernel, through the
Dirichlet transform of Milios et al. (2018) (GPyTorch's ``DirichletClassificationLikelihood``):
closed form, one Cholesky per class, calibrated class probabilities by softmax of latent
samples. :class:`CNNGPRegressor` is :class:`~hvgp.baselines.gp.exact.ExactGPRegressor` with
the kernel passed in.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from typing import Any

import gpytorch
import torch
from gpytorch.kernels import Kernel
from linear_operator.utils.cholesky import psd_safe_cholesky

from hvgp.baselines.gp._common import GPEstimator, class_labels, make_kernel
from hvgp.baselines.gp.exact import ExactGPRegressor
from hvgp.baselines.gp.nngp import NNGPKernel, effective_weight_var, relu_expectation
from hvgp.predict import PredictiveSamples
from hvgp.registry import register_model

__all__ = [
    "CNN1D_CONVS",
    "CNNGPClassifier",
    "CNNGPKernel",
    "CNNGPRegressor",
    "DirichletGPClassifier",
]

#: ``(kernel_size, stride, padding)`` of the three convolutions of :class:`hvgp.nn.CNN1d`
CNN1D_CONVS: tuple[tuple[int, int, int], ...] = ((5, 1, 2), (3, 2, 1), (3, 2, 1))

Densities = float | Sequence[float]


def _window_mean(t: torch.Tensor, spec: tuple[int, int, int]) -> torch.Tensor:
    """Mean over each convolution patch along the last axis (zero padding, stride)."""
    k, s, pad = spec
    return torch.nn.functional.pad(t, (pad, pad)).unfold(-1, k, s).mean(-1)


class CNNGPKernel(NNGPKernel):
    """Kernel of an infinitely wide, randomly masked 1-D ReLU CNN: convs, flatten, dense layers.

    The network: ``len(convs)`` convolutions (each ``(kernel_size, stride, padding)``) with
    ReLU, a flatten, ``dense_depth`` hidden dense ReLU layers and a scalar read-out; every
    weight layer ``w ~ N(0, σ_w² / fan_in)`` masked with density ``d_l`` and keep-probability
    ``keep_prob``, biases ``N(0, σ_b²)``. The defaults are :class:`hvgp.nn.CNN1d` without
    BatchNorm (see the module docstring). Inputs are ``(N, in_channels · L)`` rows, channel
    major (``x.flatten(1)`` of ``(N, C, L)`` signals); ``L`` is free.

    ``weight_var`` / ``bias_var`` are the GPyTorch hyper-parameters of :class:`NNGPKernel`
    (which this subclasses for them; its ``depth`` is ``dense_depth`` here). The kernel is
    computed in chunks of rows of ``x1`` holding about ``chunk_elements`` numbers each, so a
    4000 × 4000 kernel of length-40 signals needs ~1 GiB whatever the size.

    :param convs: ``(kernel_size, stride, padding)`` per convolution (at least one).
    :param dense_depth: hidden dense ReLU layers after the flatten (``CNN1d``: 1).
    :param density: one density for every weight layer, or one per weight layer
        (``len(convs) + dense_depth + 1``, e.g. ERK densities, input layer first).
    :param in_channels: input channels ``C`` (rows hold ``C · L`` numbers).
    :param chunk_elements: numbers per chunk of the ``(rows, N2, L)`` cross covariance.

    >>> k = CNNGPKernel(convs=((3, 1, 1),), dense_depth=0, weight_var=2.0)
    >>> x = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    >>> k(x).to_dense().detach().diagonal()  # sw · mean_p (1/2) · sw · pool(x²)[p]
    tensor([0.4444, 0.4444], dtype=torch.float64)
    """

    def __init__(
        self,
        convs: Sequence[tuple[int, int, int]] = CNN1D_CONVS,
        dense_depth: int = 1,
        weight_var: float = 2.0,
        bias_var: float = 0.0,
        keep_prob: float = 1.0,
        density: Densities = 1.0,
        in_channels: int = 1,
        chunk_elements: int = 2**24,
        **kwargs: Any,
    ) -> None:
        convs = tuple(tuple(int(v) for v in c) for c in convs)
        if not convs or any(len(c) != 3 or c[0] < 1 or c[1] < 1 or c[2] < 0 for c in convs):
            raise ValueError(f"convs must be (kernel_size >= 1, stride >= 1, padding >= 0) "
                             f"triples, at least one; got {convs!r}")
        layers = len(convs) + dense_depth + 1 if isinstance(dense_depth, int) else 0
        densities = (density,) * layers if isinstance(density, int | float) else tuple(density)
        if len(densities) != layers:
            raise ValueError(f"density needs one value per weight layer ({layers}), "
                             f"got {len(densities)}")
        super().__init__(dense_depth, weight_var, bias_var, keep_prob=keep_prob, density=1.0,
                         **kwargs)
        for d in densities:
            effective_weight_var(1.0, keep_prob, float(d))  # validates each density
        if self.batch_shape != torch.Size():
            raise ValueError("CNNGPKernel has no batch mode; share one kernel across outputs")
        if in_channels < 1 or chunk_elements < 1:
            raise ValueError("in_channels and chunk_elements must be >= 1")
        self.convs, self.densities = convs, tuple(float(d) for d in densities)
        self.density = sum(self.densities) / len(self.densities)  # summary only
        self.in_channels, self.chunk_elements = int(in_channels), int(chunk_elements)

    @classmethod
    def from_module(cls, net: torch.nn.Module, **kwargs: Any) -> CNNGPKernel:
        """The kernel of a masked 1-D CNN's architecture and topology (e.g. a CigL ``CNN1d``):
        convolution shapes and per-layer densities read from its ``weight_mask`` buffers."""
        from hvgp.nn.layers import MaskedConv1d, MaskedLinear, masked_layers

        layers = list(masked_layers(net).values())
        convs = [m for m in layers if isinstance(m, MaskedConv1d)]
        linears = [m for m in layers if isinstance(m, MaskedLinear)]
        if not convs or not linears or layers != convs + linears:
            raise ValueError("from_module needs masked Conv1d layers followed by Linear layers")
        if any(c.dilation != (1,) or c.groups != 1 for c in convs):
            raise ValueError("from_module supports dilation 1 and groups 1 only")
        kwargs.setdefault("density", [float(m.weight_mask.float().mean()) for m in layers])
        return cls(
            convs=[(c.kernel_size[0], c.stride[0], c.padding[0]) for c in convs],
            dense_depth=len(linears) - 1, in_channels=convs[0].in_channels, **kwargs,
        )

    def layer_weight_vars(self) -> list[torch.Tensor]:
        """``σ_w² · d_l / keep_prob`` for each weight layer, input layer first."""
        return [self.weight_var.reshape(()) * d / self.keep_prob for d in self.densities]

    def _signals(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[-1] % self.in_channels:
            raise ValueError(f"CNNGPKernel needs (N, {self.in_channels} * L) inputs, "
                             f"got {tuple(x.shape)}")
        return x.reshape(x.shape[0], self.in_channels, -1)

    def _propagate(
        self, prod: torch.Tensor, var1: list[torch.Tensor] | None, var2: list[torch.Tensor] | None
    ) -> list[torch.Tensor]:
        """Pre-activation covariance of every weight layer from per-position input products
        (positions on the last axis); ``var1 is None`` means ``prod`` is a self-covariance."""
        sws, sb = self.layer_weight_vars(), self.bias_var.reshape(())
        nconv = len(self.convs)
        k = sws[0] * _window_mean(prod, self.convs[0]) + sb
        out = [k]
        for layer in range(1, len(sws)):
            if var1 is None:
                e = k / 2  # E[relu(u)²] = Var(u) / 2
            else:
                e = relu_expectation(k, var1[layer - 1], var2[layer - 1])
            if layer < nconv:
                e = _window_mean(e, self.convs[layer])
            elif layer == nconv:
                e = e.mean(-1)  # flatten + dense: fan-in C · L, one weight per position
            k = sws[layer] * e + sb
            out.append(k)
        return out

    def _variances(self, s: torch.Tensor) -> list[torch.Tensor]:
        """Per-layer, per-position prior variances of signals ``s`` (N, C, L)."""
        return self._propagate(s.pow(2).mean(1), None, None)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, diag: bool = False,
                last_dim_is_batch: bool = False, **params: Any) -> torch.Tensor:
        """``K(x1, x2)`` (or its diagonal), in chunks of rows of ``x1``; no batch mode."""
        if last_dim_is_batch:
            raise NotImplementedError("CNNGPKernel does not support last_dim_is_batch")
        s1, s2 = self._signals(x1), self._signals(x2)
        same = x1 is x2 or (x1.shape == x2.shape and torch.equal(x1, x2))
        v1 = self._variances(s1)
        if diag:
            if same:
                return v1[-1]
            v2 = self._variances(s2)
            return self._propagate((s1 * s2).mean(1), v1, v2)[-1]
        v2 = v1 if same else self._variances(s2)
        right = [v.unsqueeze(0) for v in v2]
        n1, n2 = s1.shape[0], s2.shape[0]
        rows = max(1, self.chunk_elements // max(1, n2 * s2.shape[-1]))
        if same:
            rows = min(rows, -(-n1 // 8))  # several blocks, so that the triangle saves work
        out = torch.empty(n1, n2, dtype=x1.dtype, device=x1.device)
        for start in range(0, n1, rows):
            idx = slice(start, start + rows)
            cols = slice(start if same else 0, n2)  # K(x, x): upper block-triangle only
            prod = torch.einsum("icl,jcl->ijl", s1[idx], s2[cols]) / self.in_channels
            left = [v[idx].unsqueeze(1) for v in v1]
            block = self._propagate(prod, left, [v[:, cols] for v in right])[-1]
            out[idx, cols] = block
            if same:
                out[cols, idx] = block.transpose(0, 1)
        return out


def _cnngp_kernel(kwargs: dict[str, Any]) -> CNNGPKernel:
    """Pop the :class:`CNNGPKernel` arguments out of an estimator's keyword arguments."""
    names = ("convs", "dense_depth", "weight_var", "bias_var", "keep_prob", "density",
             "in_channels", "chunk_elements")
    return CNNGPKernel(**{n: kwargs.pop(n) for n in names if n in kwargs})


class CNNGPRegressor(ExactGPRegressor):
    """Exact GP regression with the CNN-GP kernel, held fixed by default (the network's prior);
    mean and noise by the marginal likelihood. Kernel arguments as :class:`CNNGPKernel`."""

    def __init__(self, train_kernel: bool = False, noise: float | None = None,
                 normalize_y: bool = True, **kwargs: Any) -> None:
        kernel = _cnngp_kernel(kwargs)
        super().__init__(kernel=kernel, ard=False, noise=noise, train_kernel=train_kernel,
                         normalize_y=normalize_y, **kwargs)


class DirichletGPClassifier(GPEstimator):
    """Exact GP classification with a fixed kernel by Dirichlet-transformed one-hot targets.

    Milios et al. (2018): the one-hot label of class ``c`` becomes the regression target
    ``log α − σ²/2`` with the fixed noise ``σ² = log(1/α + 1)``, ``α = 1[y = c] + α_ε``; one
    exact GP per class (shared kernel, a constant mean at its maximum-likelihood value) gives a
    Gaussian posterior over log-Gamma latents, and the class probabilities are the softmax of
    latent samples. Everything is closed form (one Cholesky of ``N × N`` per class), so
    ``fit`` trains nothing; ``epochs`` and friends are accepted for a common signature.

    :param kernel: a GPyTorch kernel on the flattened inputs (used as given, not trained).
    :param alpha_epsilon: ``α_ε``, the Dirichlet pseudo-count of the other classes (smaller:
        sharper targets, larger label noise on the absent classes).
    :param num_classes: defaults to ``max(y) + 1``; every class must occur in training.
    :param kernel_dtype: dtype the kernel matrices are computed in (default ``dtype``);
        float32 is ~4x faster for the CNN-GP's arc-cosines, and the Cholesky stays in
        ``dtype`` (the Dirichlet label noise, >= 0.69 on the diagonal, keeps it well posed).
    :param kwargs: device / dtype / jitter / seed / progress (see :class:`GPEstimator`).
    """

    is_classifier = True
    default_eval_samples = 256

    def __init__(self, kernel: Kernel, alpha_epsilon: float = 0.01,
                 num_classes: int | None = None, kernel_dtype: torch.dtype | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kernel_dtype = kernel_dtype or self.dtype
        if not isinstance(kernel, Kernel):
            raise TypeError(f"kernel must be a gpytorch Kernel, got {type(kernel).__name__}")
        if not alpha_epsilon > 0:
            raise ValueError(f"alpha_epsilon must be > 0, got {alpha_epsilon}")
        self.kernel, self.alpha_epsilon, self.num_classes = kernel, alpha_epsilon, num_classes
        self.model: Kernel | None = None
        self.likelihood: gpytorch.likelihoods.DirichletClassificationLikelihood | None = None

    def _kernel(self, a: torch.Tensor, b: torch.Tensor | None = None, diag: bool = False
                ) -> torch.Tensor:
        """``K(a, b)`` (``b = a`` when None; its diagonal with ``diag``) in ``kernel_dtype``,
        returned in ``dtype``."""
        kd, model = self.kernel_dtype, self._compute_kernel
        a = a.to(kd)
        out = model(a, diag=True) if diag else model(a, a if b is None else b.to(kd)).to_dense()
        return out.to(self.dtype)

    def fit(self, x_train: Any, y_train: Any, epochs: int = 0, **_: Any) -> DirichletGPClassifier:
        """Condition on ``(x_train, y_train)``: the closed-form posterior of every class."""
        if epochs:
            warnings.warn(f"{type(self).__name__} is closed form; epochs={epochs} is ignored",
                          stacklevel=2)
        self.num_features_ = None
        x = self._features(x_train)
        y, num_classes = class_labels(y_train, x.shape[0], self.device, self.num_classes)
        if int(y.max()) + 1 < num_classes or y.unique().numel() < num_classes:
            raise ValueError("every class must occur in the training labels")
        lik = gpytorch.likelihoods.DirichletClassificationLikelihood(
            y, alpha_epsilon=self.alpha_epsilon, dtype=self.dtype)
        self.likelihood = lik.to(self.device)
        kernel = make_kernel(self.kernel, x.shape[1])  # a copy: refits never share state
        self.model = kernel.to(device=self.device, dtype=self.dtype).eval()
        self._compute_kernel = (self.model if self.kernel_dtype == self.dtype
                                else copy.deepcopy(self.model).to(self.kernel_dtype))
        targets = lik.transformed_targets.to(self.device)  # (C, N)
        noise = lik.noise.to(self.device)  # (C, N) fixed heteroscedastic label noise
        with torch.no_grad(), self._settings():
            k = self._kernel(x)
            ones = torch.ones(x.shape[0], 1, dtype=self.dtype, device=self.device)
            self.chol_, self.weights_, self.mean_ = [], [], []
            for c in range(num_classes):
                chol = psd_safe_cholesky(k + torch.diag(noise[c]))
                both = torch.cholesky_solve(torch.stack([targets[c], ones[:, 0]], 1), chol)
                mean = both[:, 0].sum() / both[:, 1].sum()  # GLS constant mean
                self.chol_.append(chol)
                self.weights_.append(both[:, 0] - mean * both[:, 1])
                self.mean_.append(mean)
        self.x_train_, self.num_classes_ = x, num_classes
        self.num_features_ = x.shape[1]
        return self

    def _posterior(self, chunk: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent mean and variance ``(n, C)`` of one chunk of test inputs."""
        cross = self._kernel(chunk, self.x_train_)  # (n, N)
        prior = self._kernel(chunk, diag=True)
        mu = [cross @ w + m for w, m in zip(self.weights_, self.mean_)]
        var = [prior - torch.linalg.solve_triangular(ch, cross.T, upper=False).pow(2).sum(0)
               for ch in self.chol_]
        return torch.stack(mu, -1), torch.stack(var, -1).clamp_min(0.0)

    @torch.no_grad()
    def predict_latent(self, x: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and variance of the log-Gamma latents, each ``(N, C)``."""
        self._check_fitted()
        xt = self._features(x)
        with self._settings():
            means, variances = zip(*[self._posterior(c) for c in self._chunks(xt)])
        return torch.cat(means), torch.cat(variances)

    def predict(self, x: Any, num_samples: int | None = 256) -> PredictiveSamples:
        """Softmax of ``num_samples`` latent draws (per-point marginals): probs ``(S, N, C)``."""
        if num_samples is None or num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        mean, var = self.predict_latent(x)
        gen = self._generator()
        eps = torch.randn(num_samples, *mean.shape, generator=gen, dtype=mean.dtype)
        return PredictiveSamples(probs=torch.softmax(mean + var.sqrt() * eps.to(mean), -1))


class CNNGPClassifier(DirichletGPClassifier):
    """Exact Dirichlet-GP classification with the CNN-GP kernel of hvgp's masked 1-D CNN.

    Kernel arguments (``convs``, ``dense_depth``, ``weight_var``, ``bias_var``, ``keep_prob``,
    ``density``, ``in_channels``, ``chunk_elements``) as :class:`CNNGPKernel`; the rest as
    :class:`DirichletGPClassifier`. Inputs: flattened signals ``(N, C · L)``.
    """

    def __init__(self, alpha_epsilon: float = 0.01, num_classes: int | None = None,
                 **kwargs: Any) -> None:
        kernel = _cnngp_kernel(kwargs)
        super().__init__(kernel, alpha_epsilon=alpha_epsilon, num_classes=num_classes, **kwargs)


#: kernel amplitudes chosen on MNIST-1D's validation split by NLL (benchmarks/cnngp_mnist1d.py)
CNNGP_DEFAULTS: dict[str, Any] = {"weight_var": 3.0, "bias_var": 0.1}


@register_model("cnngp", kind="gp", task="classification",
                help="exact GP of the masked 1-D CNN (infinite channels)")
def cnngp_classifier(**kw: Any) -> CNNGPClassifier:
    """``hvgp train --model cnngp``: the CNN-GP classifier with the validation-chosen
    amplitudes and a float32 kernel (4× faster than float64; the Cholesky stays float64)."""
    kw = {**CNNGP_DEFAULTS, "kernel_dtype": torch.float32, **kw}
    return CNNGPClassifier(**kw)


@register_model("cnngp", kind="gp", task="regression")
def cnngp_regressor(**kw: Any) -> CNNGPRegressor:
    """``hvgp train --model cnngp`` on regression data: exact GP with the CNN-GP kernel."""
    return CNNGPRegressor(**{**CNNGP_DEFAULTS, **kw})
