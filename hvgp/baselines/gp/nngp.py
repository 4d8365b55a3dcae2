"""NNGP kernel: the Gaussian process that an infinitely wide, randomly masked ReLU MLP is.

CigL trains a sparse network whose weights are switched off at random (DropConnect with
inverted scaling) on top of a fixed sparse topology. At infinite width the prior over the
functions such a network computes is a GP (Neal 1996; Lee et al. 2018; Matthews et al. 2018)
whose kernel is the order-1 arc-cosine recursion (Cho & Saul 2009) below, with a weight
variance that the two masks rescale. This module makes that GP usable as a baseline: the
kernel is a :class:`gpytorch.kernels.Kernel`, so it plugs into the exact GP regressor and the
SVGP classifier of this package (:class:`NNGPRegressor`, :class:`NNGPClassifier`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from gpytorch.constraints import Positive
from gpytorch.kernels import Kernel

__all__ = ["NNGPKernel", "effective_weight_var", "relu_expectation"]


def effective_weight_var(weight_var: float, keep_prob: float = 1.0, density: float = 1.0) -> float:
    """Variance scale ``σ_w² · d / (1 - p)`` of a masked, inverted-dropout weight.

    Derivation (the assumption of the whole module). A layer with dense fan-in ``n`` has
    effective weights ``w_ij · m_ij · z_ij / (1 - p)`` with ``w_ij ~ N(0, σ_w² / n)`` (the
    initialisation is scaled by the *dense* fan-in, as hvgp's masked layers do: the weight
    tensor is initialised dense and the mask is applied on top), ``m_ij ∈ {0, 1}`` a
    deterministic topology with a fraction ``d`` of ones (marginally ``E[m²] = d``, whether
    the mask has an exact count or is Bernoulli) and ``z_ij ~ Bernoulli(1 - p)`` independent of
    ``w`` and ``m``. Then ``E[(w m z / (1 - p))²] = (σ_w² / n) · d · (1 - p) / (1 - p)²``, and
    summing the ``n`` terms of a pre-activation gives the dense recursion with ``σ_w²``
    replaced by ``σ_w² · d / (1 - p)``. Cross terms vanish because the weights have mean 0.

    ``z`` is drawn once per *network* (one function sample is evaluated at every input with
    the same ``z``), which is what a function-space prior means. If ``z`` were resampled per
    example, the off-diagonal entries would use ``σ_w² · d`` and only the diagonal
    ``σ_w² · d / (1 - p)`` (an extra nugget); that is not what this kernel computes.
    If your layers are initialised with the *active* fan-in ``d · n`` instead, pass
    ``density=1.0``: the factor ``d`` cancels.

    >>> effective_weight_var(2.0, keep_prob=0.5, density=0.25)
    1.0
    """
    if not 0.0 < keep_prob <= 1.0:
        raise ValueError(f"keep_prob must be in (0, 1], got {keep_prob}")
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density}")
    return weight_var * density / keep_prob


def relu_expectation(
    cross: torch.Tensor, var1: torch.Tensor, var2: torch.Tensor, eps: float | None = None
) -> torch.Tensor:
    """``E[relu(u) relu(v)]`` for centred Gaussians with ``Var u = var1, Var v = var2,
    Cov(u, v) = cross``: ``√(var1 var2) / (2π) · (sin θ + (π − θ) cos θ)``, ``cos θ = ρ``.

    ``ρ`` is clamped slightly inside ``[-1, 1]`` so that the gradient of ``acos`` stays finite
    on the diagonal (the value error this causes is ``O(eps)``, invisible in float64).
    """
    if eps is None:
        eps = 1e-7 if cross.dtype == torch.float64 else 1e-4
    norm = (var1 * var2).sqrt()
    rho = (cross / norm).clamp(-1.0 + eps, 1.0 - eps)
    theta = torch.acos(rho)
    return norm / (2 * math.pi) * (torch.sin(theta) + (math.pi - theta) * rho)


class NNGPKernel(Kernel):
    """Kernel of an infinitely wide ReLU MLP with ``depth`` hidden layers and random masks.

    ``K⁰(x, x') = σ_b² + σ̃_w² · x·x' / D`` (input layer, ``D`` input features), then for each
    hidden ReLU layer ``K^{l+1}(x, x') = σ_b² + σ̃_w² · √(K^l(x,x) K^l(x',x')) / (2π) ·
    (sin θ + (π − θ) cos θ)`` with ``cos θ = K^l(x,x') / √(K^l(x,x) K^l(x',x'))``. The value
    returned is the covariance of the scalar read-out (``depth`` ReLU layers, ``depth + 1``
    weight layers, every weight layer masked alike). ``σ̃_w² = weight_var · density /
    keep_prob`` (see :func:`effective_weight_var` for the derivation and its assumption).

    ``weight_var`` and ``bias_var`` are GPyTorch hyper-parameters (positive, trainable);
    ``keep_prob`` and ``density`` are fixed properties of the network being approximated.
    The kernel is not stationary and has no length-scale: standardise inputs first.

    :param depth: number of hidden ReLU layers (0 gives the linear kernel).
    :param weight_var: ``σ_w²`` of the dense initialisation ``N(0, σ_w² / fan_in)`` (2.0 = He).
    :param bias_var: ``σ_b²`` of the biases.
    :param keep_prob: ``1 − p``, probability that an active weight is kept this step.
    :param density: fraction ``d`` of weights present in the sparse topology.

    >>> k = NNGPKernel(depth=1, weight_var=2.0, bias_var=0.0)
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    >>> k(x).to_dense().detach()  # orthogonal unit inputs: K⁰ = I; off-diagonal 1/π
    tensor([[1.0000, 0.3183],
            [0.3183, 1.0000]], dtype=torch.float64)
    """

    has_lengthscale = False
    is_stationary = False

    def __init__(
        self,
        depth: int,
        weight_var: float = 2.0,
        bias_var: float = 0.0,
        keep_prob: float = 1.0,
        density: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
            raise ValueError(f"depth must be a non-negative int, got {depth!r}")
        if weight_var <= 0:
            raise ValueError(f"weight_var must be > 0, got {weight_var}")
        if bias_var < 0:
            raise ValueError(f"bias_var must be >= 0, got {bias_var}")
        effective_weight_var(weight_var, keep_prob, density)  # validates keep_prob / density
        self.depth = depth
        self.keep_prob = float(keep_prob)
        self.density = float(density)
        batch = self.batch_shape
        self.register_parameter("raw_weight_var", torch.nn.Parameter(torch.zeros(*batch, 1)))
        self.register_parameter("raw_bias_var", torch.nn.Parameter(torch.zeros(*batch, 1)))
        self.register_constraint("raw_weight_var", Positive())
        # bias_var may be exactly 0: a Positive constraint with a tiny floor keeps it learnable.
        self.register_constraint("raw_bias_var", Positive(initial_value=max(bias_var, 1e-8)))
        self.weight_var = weight_var
        self.bias_var = max(bias_var, 1e-8)

    # ---- hyper-parameters (GPyTorch idiom: raw parameter + constraint) --------------------
    @property
    def weight_var(self) -> torch.Tensor:
        return self.raw_weight_var_constraint.transform(self.raw_weight_var)

    @weight_var.setter
    def weight_var(self, value: float | torch.Tensor) -> None:
        value = torch.as_tensor(value).to(self.raw_weight_var)
        self.initialize(raw_weight_var=self.raw_weight_var_constraint.inverse_transform(value))

    @property
    def bias_var(self) -> torch.Tensor:
        return self.raw_bias_var_constraint.transform(self.raw_bias_var)

    @bias_var.setter
    def bias_var(self, value: float | torch.Tensor) -> None:
        value = torch.as_tensor(value).to(self.raw_bias_var)
        self.initialize(raw_bias_var=self.raw_bias_var_constraint.inverse_transform(value))

    @property
    def effective_weight_var(self) -> torch.Tensor:
        """``σ_w² · density / keep_prob``: the weight variance the recursion actually uses."""
        return self.weight_var * self.density / self.keep_prob

    # ---- kernel ------------------------------------------------------------------------------
    def forward(
        self,
        x1: torch.Tensor,
        x2: torch.Tensor,
        diag: bool = False,
        last_dim_is_batch: bool = False,
        **params: Any,
    ) -> torch.Tensor:
        if last_dim_is_batch:
            raise NotImplementedError("NNGPKernel does not support last_dim_is_batch")
        sw = self.effective_weight_var.unsqueeze(-1)  # (*batch, 1, 1)
        sb = self.bias_var.unsqueeze(-1)
        dim = x1.shape[-1]
        # K⁰ on the diagonals (one per input set) and across.
        d1 = sb.squeeze(-1) + sw.squeeze(-1) * x1.pow(2).sum(-1) / dim  # (*batch, n1)
        d2 = sb.squeeze(-1) + sw.squeeze(-1) * x2.pow(2).sum(-1) / dim
        if diag:
            cross = sb.squeeze(-1) + sw.squeeze(-1) * (x1 * x2).sum(-1) / dim
            v1, v2 = d1, d2
        else:
            cross = sb + sw * (x1 @ x2.transpose(-1, -2)) / dim
            v1, v2 = d1.unsqueeze(-1), d2.unsqueeze(-2)
        sw_, sb_ = (sw.squeeze(-1), sb.squeeze(-1)) if diag else (sw, sb)
        for _ in range(self.depth):
            cross = sb_ + sw_ * relu_expectation(cross, v1, v2)
            v1 = sb_ + sw_ * v1 / 2  # E[relu(u)²] = Var(u) / 2
            v2 = sb_ + sw_ * v2 / 2
        return cross
