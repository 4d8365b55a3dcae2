"""SNGP (Liu et al., NeurIPS 2020): spectral-normalised network, random-feature GP output layer.

The network of :mod:`hvgp.nn` (the 1-D CNN, an MLP...) loses its linear readout
(:func:`hvgp.baselines.gp.dkl.split_readout`). Every remaining conv / linear layer gets a
spectral-norm parametrisation with the paper's soft bound ``c``: ``W <- c W / sigma(W)`` when
the power-iteration estimate ``sigma(W)`` exceeds ``c``, else ``W`` unchanged (torch's
:class:`~torch.nn.utils.parametrizations` spectral norm, its power iteration, plus the bound).
The last hidden features ``h`` feed a Gaussian-process output layer approximated by ``D`` fixed
random Fourier features ``phi(h) = sqrt(2/D) cos(W h / l + b)`` (``W ~ N(0, I)``,
``b ~ U(0, 2 pi)``, after a LayerNorm) and trainable output weights ``beta``: logits
``beta phi(h)``, trained with the cross-entropy and the run's optimizer (weight decay on
``beta`` is its Gaussian prior).

During the final epoch the Laplace posterior precision of ``beta`` is accumulated per class,
``P_k = s I + sum_i p_ik (1 - p_ik) phi_i phi_i^T`` (ridge ``s``, the paper's Eq. 9 with the
logistic Hessian of class ``k``), and inverted once: ``Sigma_k = s P_k^-1``. At prediction
the logit variance ``v_k(x) = phi^T Sigma_k phi`` shrinks near the training features; the
mean-field logits ``g_k / sqrt(1 + lambda v_k)`` (``lambda = pi / 8``, the probit
approximation) give one deterministic predictive, ``num_samples=S`` draws ``S`` Monte-Carlo
logit samples from ``N(g_k, v_k)``.

Caveats (stated, not hidden): distance preservation (the paper's lower Lipschitz bound) needs
residual blocks, which hvgp's CNN / MLP do not have, so here the spectral norm bounds only
the upper Lipschitz constant; on a convolution it bounds the reshaped ``(out, in * k)`` kernel
matrix, as torch's spectral norm does, not the convolution's operator norm; and BatchNorm
after a convolution rescales its output (as in the paper's ResNets). ``sparsity > 0`` gives
the feature network a static ERK mask, as :class:`~hvgp.baselines.gp.dkl.DKLClassifier`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _SpectralNorm
from tqdm.auto import tqdm

import hvgp.infer.estimator  # noqa: F401  (CigL, RigL... register first: model lists start there)
from hvgp.baselines._shared import (
    batch_inputs,
    check_positive,
    network_outputs,
    require_classifier,
    run_optim,
)
from hvgp.baselines.gp._common import class_labels
from hvgp.baselines.gp.dkl import split_readout
from hvgp.data.base import check_training_loader
from hvgp.estimator import Estimator
from hvgp.predict import PredictiveSamples
from hvgp.registry import register_model
from hvgp.sparsity.topology import mask_multiplier
from hvgp.utils import resolve_device, seed_everything

__all__ = ["BoundedSpectralNorm", "RandomFeatureGP", "SNGPClassifier", "spectral_normalize",
           "spectral_norms"]

_HIDDEN = (nn.Linear, nn.Conv1d, nn.Conv2d)


class BoundedSpectralNorm(_SpectralNorm):
    """Torch's spectral-norm parametrisation with SNGP's soft bound: ``W * min(1, c / sigma)``.

    Why not plain ``spectral_norm``: it rescales every layer to norm exactly 1; the paper
    leaves a layer whose norm is already below ``c`` as it is.
    """

    def __init__(self, weight: torch.Tensor, bound: float, n_power_iterations: int = 1) -> None:
        super().__init__(weight, n_power_iterations)
        self.bound = float(bound)

    def sigma(self, weight: torch.Tensor) -> torch.Tensor:
        """The power-iteration estimate of the largest singular value (one step in training)."""
        mat = self._reshape_weight_to_matrix(weight)
        if self.training:
            self._power_method(mat, self.n_power_iterations)
        u = self._u.clone(memory_format=torch.contiguous_format)
        v = self._v.clone(memory_format=torch.contiguous_format)
        return torch.vdot(u, torch.mv(mat, v))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * torch.clamp(self.bound / self.sigma(weight), max=1.0)

    @torch.no_grad()
    def refresh_(self, weight: torch.Tensor, steps: int = 30) -> None:
        """Run ``steps`` more power iterations so the eval-time estimate is converged."""
        self._power_method(self._reshape_weight_to_matrix(weight), steps)


def spectral_normalize(net: nn.Module, bound: float, n_power_iterations: int = 1) -> list[str]:
    """Give every conv / linear layer of ``net`` a :class:`BoundedSpectralNorm` on its weight.

    Returns the qualified names of the normalised layers. The layer's weight Parameter becomes
    ``parametrizations.weight.original`` (the same object, so a sparse topology's masks and
    in-place updates still reach it).
    """
    names = []
    for name, module in net.named_modules():
        if isinstance(module, _HIDDEN) and not parametrize.is_parametrized(module, "weight"):
            weight = module.weight
            parametrize.register_parametrization(
                module, "weight", BoundedSpectralNorm(weight, bound, n_power_iterations))
            assert module.parametrizations.weight.original is weight
            names.append(name)
    if not names:
        raise ValueError(f"{type(net).__name__} has no hidden conv / linear layer to normalise")
    return names


def spectral_norms(net: nn.Module) -> dict[str, float]:
    """The exact largest singular value (SVD) of each normalised layer's effective weight
    matrix, the ``(out, in * k)`` reshaping for convolutions: what the bound holds for."""
    out = {}
    with torch.no_grad():
        for name, module in net.named_modules():
            if parametrize.is_parametrized(module, "weight"):
                out[name] = float(torch.linalg.matrix_norm(module.weight.flatten(1), ord=2))
    return out


def _refresh(net: nn.Module) -> None:
    """Converge every layer's power iteration (called once after training)."""
    for module in net.modules():
        if parametrize.is_parametrized(module, "weight"):
            for p in module.parametrizations.weight:
                if isinstance(p, BoundedSpectralNorm):
                    p.refresh_(module.parametrizations.weight.original)


class RandomFeatureGP(nn.Module):
    """GP output layer: fixed random Fourier features, trainable weights, Laplace covariance.

    :param in_features: width of the hidden features ``h``.
    :param num_classes: outputs (one latent function per class).
    :param num_features: ``D`` random features (the RBF kernel's rank).
    :param length_scale: RBF length scale on the LayerNorm'ed features.
    :param ridge_penalty: ``s``: prior precision of ``beta`` in the posterior precision.
    :param seed: seed of the random features (fixed buffers, saved with the state).
    """

    def __init__(self, in_features: int, num_classes: int, num_features: int = 1024,
                 length_scale: float = 8.0, ridge_penalty: float = 1.0, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.norm = nn.LayerNorm(in_features, elementwise_affine=False)
        self.register_buffer("frequencies", torch.randn(num_features, in_features,
                                                        generator=gen) / length_scale)
        self.register_buffer("phases", 2 * math.pi * torch.rand(num_features, generator=gen))
        self.output = nn.Linear(num_features, num_classes)
        self.ridge_penalty = float(ridge_penalty)
        eye = torch.eye(num_features).expand(num_classes, -1, -1)
        self.register_buffer("precision", self.ridge_penalty * eye.clone())
        self.register_buffer("covariance", eye.clone())

    def features(self, h: torch.Tensor) -> torch.Tensor:
        """``phi(h) = sqrt(2 / D) cos(W norm(h) / l + b)``: ``(N, D)``."""
        d = self.phases.numel()
        return math.sqrt(2.0 / d) * torch.cos(F.linear(self.norm(h), self.frequencies,
                                                       self.phases))

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(N, K)`` and the random features ``(N, D)`` they were computed from."""
        phi = self.features(h)
        return self.output(phi), phi

    @torch.no_grad()
    def reset_precision(self) -> None:
        """Back to the prior precision ``s I`` (at the start of the final epoch)."""
        eye = torch.eye(self.phases.numel(), device=self.precision.device)
        self.precision.copy_(self.ridge_penalty * eye.expand_as(self.precision))

    @torch.no_grad()
    def update_precision(self, phi: torch.Tensor, logits: torch.Tensor) -> None:
        """Add one batch's ``sum_i p_ik (1 - p_ik) phi_i phi_i^T`` to every class's precision."""
        p = logits.softmax(-1)
        weights = (p * (1 - p)).T  # (K, N)
        self.precision += torch.matmul(phi.T * weights[:, None, :], phi)

    @torch.no_grad()
    def update_covariance(self) -> None:
        """``Sigma_k = s P_k^-1`` (Cholesky): the posterior covariance used at prediction."""
        chol = torch.linalg.cholesky(self.precision)
        self.covariance.copy_(self.ridge_penalty * torch.cholesky_inverse(chol))

    def variance(self, phi: torch.Tensor) -> torch.Tensor:
        """Posterior logit variances ``phi^T Sigma_k phi``: ``(N, K)``."""
        return (torch.matmul(phi, self.covariance) * phi).sum(-1).T.clamp_min(0.0)


@register_model("sngp", kind="network",
                options=("spec_norm_bound", "num_random_features", "length_scale",
                         "ridge_penalty", "mean_field_factor", "gp_lr"),
                help="SNGP: spectral-normalised network + random-feature GP output layer")
class SNGPClassifier(Estimator):
    """SNGP on a network of :mod:`hvgp.nn`, with the estimator surface.

    :param net: a classification network; its last linear layer is replaced by
        :class:`RandomFeatureGP`, the others are spectral-normalised.
    :param sparsity: static ERK sparsity of the feature network (0: dense).
    :param spec_norm_bound: ``c``, the bound on each hidden layer's spectral norm.
    :param num_random_features: ``D`` random Fourier features.
    :param length_scale: RBF length scale on the LayerNorm'ed hidden features.
    :param ridge_penalty: ``s`` of the posterior precision ``s I + sum_i ...``.
    :param mean_field_factor: ``lambda`` of the mean-field logits ``g / sqrt(1 + lambda v)``
        (``pi / 8``: the probit approximation; 0: the MAP logits, no covariance).
    :param gp_lr: Adam learning rate of the output weights ``beta`` (as DKL's GP layer: under
        the run's SGD the logit scale grew too slowly; the network keeps the run's optimizer).
    :param n_power_iterations: power-iteration steps per training step.
    :param topology, optim: the run's recipes (:mod:`hvgp.infer.recipes`); ``lr`` and
        ``weight_decay`` override the optimizer recipe's.
    :param checkpoint: accepted for the run path; SNGP writes no training checkpoint.
    """

    def __init__(
        self,
        net: nn.Module,
        sparsity: float = 0.0,
        *,
        spec_norm_bound: float = 0.95,
        num_random_features: int = 1024,
        length_scale: float = 8.0,
        ridge_penalty: float = 1.0,
        mean_field_factor: float = math.pi / 8,
        gp_lr: float = 0.01,
        n_power_iterations: int = 1,
        topology: Any = None,
        optim: Any = None,
        lr: float | None = None,
        weight_decay: float | None = None,
        likelihood: str = "categorical",
        device: str | torch.device = "auto",
        seed: int = 0,
        progress: bool = False,
        checkpoint: Any = None,
    ) -> None:
        from hvgp.infer.recipes import TopologyRecipe

        if not isinstance(net, nn.Module):
            raise TypeError(f"SNGPClassifier needs an nn.Module, got {type(net).__name__}")
        require_classifier("sngp", likelihood)
        check_positive(True, num_random_features=num_random_features,
                       n_power_iterations=n_power_iterations)
        check_positive(spec_norm_bound=spec_norm_bound, length_scale=length_scale,
                       ridge_penalty=ridge_penalty, gp_lr=gp_lr)
        if not (isinstance(mean_field_factor, (int, float)) and mean_field_factor >= 0):
            raise ValueError(f"mean_field_factor must be >= 0, got {mean_field_factor!r}")
        self.device = resolve_device(device)
        self.seed, self.progress = int(seed), progress
        self.bound, self.mean_field_factor = float(spec_norm_bound), float(mean_field_factor)
        self.gp_lr = float(gp_lr)
        self.optim = run_optim(optim, lr, weight_decay)
        num_hidden, self.num_classes = split_readout(net)
        self.topology = ((topology or TopologyRecipe()).topology(net, sparsity, self.seed)
                         if sparsity > 0 else None)
        self.normalised = spectral_normalize(net, self.bound, n_power_iterations)
        self.net = net.to(self.device)
        self.gp = RandomFeatureGP(num_hidden, self.num_classes, num_random_features,
                                  float(length_scale), float(ridge_penalty),
                                  self.seed).to(self.device)
        self.input_shape_: tuple[int, ...] | None = None
        self.history_: list[float] = []
        self.fitted_ = False

    def _logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """MAP logits and random features of a checked batch."""
        return self.gp(network_outputs(self.net, x))

    # -- training
    def fit(self, train_loader: Iterable, epochs: int, val_loader: Any = None,
            resume: Any = None, progress: bool | None = None) -> SNGPClassifier:
        """Cross-entropy training of network and ``beta``; precision in the final epoch."""
        from hvgp.infer.recipes import decay_groups

        if resume is not None:
            raise ValueError("sngp has no training checkpoint to resume")
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
        if progress is not None:
            self.progress = progress
        check_training_loader(train_loader, self.net)
        seed_everything(self.seed)
        decay = (self.optim.weight_decay, getattr(self.optim, "decay_1d", False))
        net_opt = self.optim.build_optimizer(decay_groups(self.net.parameters(), *decay))
        opts = [net_opt, torch.optim.Adam(decay_groups(self.gp.parameters(), *decay),
                                          lr=self.gp_lr)]
        scheduler = self.optim.build_scheduler(net_opt, epochs * len(train_loader))
        self.input_shape_, self.history_ = None, []
        for epoch in tqdm(range(epochs), desc="SNGP", disable=not self.progress, leave=False):
            final = epoch == epochs - 1
            if final:
                self.gp.reset_precision()
            self.history_.append(self._epoch(train_loader, opts, scheduler, final))
        self.gp.update_covariance()
        _refresh(self.net)
        self.fitted_ = True
        self._eval()
        return self

    def _epoch(self, loader: Iterable, opts: list[torch.optim.Optimizer], scheduler: Any,
               final: bool) -> float:
        """One pass of SGD steps (accumulating the precision when ``final``); mean loss."""
        self.net.train()
        self.gp.train()
        total, count = 0.0, 0
        for x, y in loader:
            x = batch_inputs(x, self.input_shape_, self.device)
            self.input_shape_ = tuple(x.shape[1:])
            labels, _ = class_labels(y, x.shape[0], self.device, self.num_classes)
            logits, phi = self._logits(x)
            loss = F.cross_entropy(logits, labels)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"SNGP: loss is {loss.item()}; try a smaller lr")
            for opt in opts:
                opt.zero_grad(set_to_none=True)
            loss.backward()
            self._mask_(grads=True)
            for opt in opts:
                opt.step()
            self._mask_(grads=False)
            if scheduler is not None:
                scheduler.step()
            if final:
                self.gp.update_precision(phi.detach(), logits.detach())
            total, count = total + loss.item() * len(labels), count + len(labels)
        return total / max(count, 1)

    @torch.no_grad()
    def _mask_(self, grads: bool) -> None:
        """Zero the masked entries of each sparse layer's raw weight (``grads``: of its
        gradient), in place. Why not the topology's own ``apply_``: the weights now sit under
        ``parametrizations.weight.original``, which a topology does not look up."""
        if self.topology is None:
            return
        for module in self.net.modules():
            mask = getattr(module, "weight_mask", None)
            if mask is not None and parametrize.is_parametrized(module, "weight"):
                raw = module.parametrizations.weight.original
                target = raw.grad if grads else raw
                if target is not None:
                    target.mul_(mask_multiplier(mask))

    def _eval(self) -> None:
        self.net.eval()
        self.gp.eval()

    # -- prediction
    @torch.no_grad()
    def logit_moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and variance of the logits at ``x``: two ``(N, K)`` tensors."""
        if not self.fitted_:
            raise RuntimeError("SNGPClassifier is not fitted yet: call fit(loader, epochs) first")
        x = batch_inputs(x, self.input_shape_, self.device)
        means, variances = [], []
        for chunk in x.split(1024):
            logits, phi = self._logits(chunk)
            means.append(logits)
            variances.append(self.gp.variance(phi))
        return torch.cat(means), torch.cat(variances)

    def predict(self, x: torch.Tensor, num_samples: int | None = None,
                **kw: Any) -> PredictiveSamples:
        """Mean-field predictive (``num_samples=None``: ``(1, N, K)``) or ``num_samples``
        Monte-Carlo draws of the logits from their Gaussian posterior (seeded by ``seed``)."""
        if num_samples is not None:
            check_positive(True, num_samples=num_samples)
        mean, var = self.logit_moments(x)
        if num_samples is None:
            probs = (mean / torch.sqrt(1.0 + self.mean_field_factor * var)).softmax(-1)[None]
        else:
            gen = torch.Generator(device=mean.device).manual_seed(self.seed)
            eps = torch.randn((num_samples, *mean.shape), generator=gen, device=mean.device)
            probs = (mean + var.sqrt() * eps).softmax(-1)
        return PredictiveSamples(probs=probs.cpu())

    def prediction_nets(self) -> list[nn.Module]:
        return [self.net]

    def nonzero(self) -> int:
        """Non-zero learned parameters: the feature network and ``beta`` (the fixed random
        features and the posterior covariance are buffers, not counted)."""
        return super().nonzero() + sum(int((p != 0).sum()) for p in self.gp.parameters())

    # -- saving
    def state_dict(self) -> dict[str, Any]:
        if not self.fitted_:
            raise RuntimeError("SNGPClassifier is not fitted yet: nothing to save")
        return {"net": self.net.state_dict(), "gp": self.gp.state_dict(),
                "input_shape": list(self.input_shape_)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.gp.load_state_dict(state["gp"])
        self.input_shape_ = tuple(state["input_shape"])
        self.fitted_ = True
        self._eval()

    def __repr__(self) -> str:
        return (f"SNGPClassifier({type(self.net).__name__}, bound={self.bound}, "
                f"random_features={self.gp.phases.numel()}, classes={self.num_classes}, "
                f"sparsity={self.sparsity():.3f})")
