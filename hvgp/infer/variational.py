"""Learned σ: a Gaussian guide on the active weights of CigL's deterministic mask M.

CigL's variational family (the paper, :mod:`hvgp.infer.model`) is
``q(w | Z, U, M) = Z N(M U, σ²) + (1 - Z) N(0, σ²)`` with σ -> 0 (the point mass of
:class:`~hvgp.infer.guide.PointMassGuide`). :class:`SparseNormalGuide` keeps σ: one
``σ = softplus(ρ)`` per weight, read on the active entries of M only, so a layer's weight is

    w = U + σ ⊙ ε on M (ε ~ N(0, 1), reparameterised),   w = U = 0 outside M (point mass),

and the network uses ``w Z / (1 - p)`` exactly as with the point mass. Why these choices:

- Z is drawn *in the guide* (same :class:`~hvgp.infer.model.RandomMask`, the model replays
  it; q(Z) = p(Z), log densities 0): the guide then knows which weights are kept and masks
  log q to ``M & Z``, the same entries the model's prior covers. The ELBO of a step is
  ``log p(y | w Z / (1 - p)) - sum_{M & Z} KL(N(U, σ²) || N(0, s²))``, and a weight with
  Z = 0 gets no gradient at all that step, for U and for σ alike (as in the paper).
- The noise is added to the parameter U everywhere (zero outside M), so ``dw / dU`` is the
  identity and the inactive weights still receive the dense gradient RigL grows with.
- Weights are sampled directly, one draw per step shared by the minibatch (as Z is). The
  local reparameterisation trick is not used: it draws pre-activations instead of weights,
  so the program would have no weight site for Pyro's ELBO to score (it needs its own
  objective with the KL added analytically) — left out, correctness first.
- The KL is analytic (:func:`sparse_normal_kl`, through Pyro's ``TraceMeanField_ELBO``,
  :class:`VariationalELBO` ``analytic_kl=True``) or Pyro's Monte Carlo ``log p - log q``
  (``analytic_kl=False``, plain ``Trace_ELBO``); both have the same expectation.
- RigL's drop/grow acts on U as before (:mod:`hvgp.sparsity` is untouched): ρ is only read
  on M, and :class:`ResetGrownScales` sets ρ of a grown weight back to its initial value
  (and its optimizer state to 0), so a grown weight starts at ``N(0, init_scale²)``.
- Storage of the posterior: U and σ on the active weights, 2 × nnz numbers (training holds
  ρ as a dense tensor of the weight's shape, as it holds U).
- ``init_scale`` (default 1e-3) is absolute: small next to MNIST-1D weights (~0.1), so the
  first steps are those of the point mass; ρ learns with its own learning rate
  (``CigL(sigma_lr=...)``), since the KL's gradient per weight is O(1 / N).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import constraints
from pyro.distributions.torch_distribution import MaskedDistribution
from pyro.infer import TraceMeanField_ELBO
from torch import nn
from torch.distributions import register_kl

from hvgp.infer.callbacks import Callback
from hvgp.infer.guide import weight_site
from hvgp.infer.model import RandomMask, mask_site
from hvgp.infer.objective import NegativeELBO
from hvgp.nn.layers import masked_layers
from hvgp.sparsity.updaters import _reset_optimizer_state_

__all__ = ["ResetGrownScales", "SparseNormal", "SparseNormalGuide", "VariationalELBO",
           "inverse_softplus", "sparse_normal_kl"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def inverse_softplus(y: float) -> float:
    """ρ with ``softplus(ρ) = y`` (y > 0), stable for small and large y."""
    return y + math.log(-math.expm1(-y))


class SparseNormal(dist.TorchDistribution):
    """``N(loc, scale²)`` on the entries ``index`` of a weight, a point mass at ``loc``
    elsewhere; log density summed over the ``keep`` entries of ``index`` only.

    Event shape: the weight's shape. ``rsample`` adds ``scale ⊙ ε`` at ``index`` to the whole
    of ``loc`` (so gradients reach every entry of ``loc``).

    :param loc: the dense weight U (zero outside the mask).
    :param scale: ``(nnz,)`` std of the entries ``index``.
    :param index: flat indices of the active entries (``layer.active_index()``).
    :param keep: bool per active entry (broadcast over batch dims) whose log density counts;
        ``None``: all of them.
    """

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, index: torch.Tensor,
                 keep: torch.Tensor | None = None, batch_shape: torch.Size | None = None,
                 validate_args: bool | None = None) -> None:
        self.loc, self.scale, self.index, self.keep = loc, scale, index, keep
        super().__init__(torch.Size(batch_shape or ()), loc.shape, validate_args=False)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self) -> constraints.Constraint:
        return constraints.independent(constraints.real, self.loc.dim())

    def expand(self, batch_shape: torch.Size, _instance: object = None) -> SparseNormal:
        return SparseNormal(self.loc, self.scale, self.index, self.keep, torch.Size(batch_shape))

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> torch.Tensor:
        lead = torch.Size(sample_shape) + self.batch_shape
        eps = torch.randn(*lead, self.index.numel(), dtype=self.loc.dtype,
                          device=self.loc.device)
        noise = self.loc.new_zeros(*lead, self.loc.numel()).index_copy(
            -1, self.index, eps * self.scale)
        return self.loc + noise.view(*lead, *self.loc.shape)

    def active(self, t: torch.Tensor) -> torch.Tensor:
        """The active entries of ``t`` (``(..., *event)`` -> ``(..., nnz)``)."""
        k = self.loc.dim()
        return t.reshape(*t.shape[:t.dim() - k], -1).index_select(-1, self.index)

    def _kept(self, per_entry: torch.Tensor) -> torch.Tensor:
        """``per_entry`` ``(..., nnz)`` summed over the kept entries."""
        if self.keep is None:
            return per_entry.sum(-1)
        return torch.where(self.keep, per_entry, per_entry.new_zeros(())).sum(-1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        mu = self.active(self.loc)
        z = (self.active(value) - mu) / self.scale
        return self._kept(-0.5 * z * z - self.scale.log() - _HALF_LOG_2PI)

    def entropy(self) -> torch.Tensor:
        """Entropy of the kept Gaussian entries (the point masses add none)."""
        return self._kept((self.scale.log() + 0.5 + _HALF_LOG_2PI).expand(
            *self.batch_shape, self.index.numel()))


def _gaussian_prior(p: dist.Distribution, k: int) -> tuple[dist.Normal, Any]:
    """The Normal and the combined mask of a model weight site ``Normal.mask(..).to_event(k)``
    (``NotImplementedError`` for any other prior: the ELBO then falls back to Monte Carlo)."""
    if not isinstance(p, dist.Independent) or p.reinterpreted_batch_ndims != k:
        raise NotImplementedError
    base, mask = p.base_dist, True
    while isinstance(base, MaskedDistribution):
        mask = base._mask if mask is True else mask & base._mask
        base = base.base_dist
    if not isinstance(base, dist.Normal):
        raise NotImplementedError
    return base, mask


def sparse_normal_kl(q: SparseNormal, p: dist.Distribution) -> torch.Tensor:
    """``E_q[log q - log p]`` with q's log density on its kept entries and p's on its mask:
    the KL ``sum_{M & Z} KL(N(U, σ²) || N(m, s²))`` when the two masks agree (they do in
    the program), in closed form. A flat prior (mask False) leaves minus q's entropy."""
    k = q.loc.dim()
    normal, mask = _gaussian_prior(p, k)
    neg_entropy = -(q.scale.log() + 0.5 + _HALF_LOG_2PI)
    out = q._kept(neg_entropy.expand(*q.batch_shape, q.index.numel()))
    if mask is False:
        return out
    m, s = (q.active(t.expand(*t.shape[:t.dim() - k], *q.loc.shape))
            for t in (normal.loc, normal.scale))
    cross = s.log() + _HALF_LOG_2PI + ((q.active(q.loc) - m) ** 2 + q.scale ** 2) / (2 * s * s)
    if mask is not True:  # the model's M & Z, shaped like the weight (any leading dims)
        cross = torch.where(q.active(mask), cross, cross.new_zeros(()))
    return out + cross.sum(-1)


register_kl(SparseNormal, dist.Independent)(sparse_normal_kl)


@register_kl(RandomMask, RandomMask)
def _kl_random_mask(q: RandomMask, p: RandomMask) -> torch.Tensor:
    """0: the guide draws Z from the prior itself (q(Z) = p(Z))."""
    return torch.zeros(q.batch_shape, device=q.mask.device)


class SparseNormalGuide(nn.Module):
    """``N(U, softplus(ρ)²)`` on the active weights of every masked layer, Z as the model's.

    An ``nn.Module``: its ρ are the BNN's parameters (optimizer, ``state_dict``, checkpoint).

    :param net: the network (its masked layers' weights are the means U; not a submodule).
    :param drop_rate: the model's random-mask rate p (float, or dict layer name -> p); must
        be the :class:`~hvgp.infer.model.SparseBNN`'s (it checks nothing itself).
    :param init_scale: initial σ of every weight (and of every grown weight).
    """

    def __init__(self, net: nn.Module, drop_rate: float | Mapping[str, float] = 0.0,
                 init_scale: float = 1e-3) -> None:
        super().__init__()
        layers = masked_layers(net)
        if not layers:
            raise TypeError("the network has no masked layers (build it with hvgp.nn)")
        if not (isinstance(init_scale, (int, float)) and 0 < init_scale < math.inf):
            raise ValueError(f"init_scale must be a positive finite std, got {init_scale!r}")
        self.__dict__["layers"] = layers  # plain dict: the network is the BNN's, not ours
        self.drop_rates = ({n: float(drop_rate.get(n, 0.0)) for n in layers}
                           if isinstance(drop_rate, Mapping)
                           else dict.fromkeys(layers, float(drop_rate)))
        self.init_scale = float(init_scale)
        self.init_rho = inverse_softplus(self.init_scale)
        self.rho = nn.ParameterList(
            [nn.Parameter(torch.full_like(layer.weight, self.init_rho, requires_grad=True))
             for layer in layers.values()])

    @classmethod
    def builder(cls, drop_rate: float | Mapping[str, float] = 0.0,
                init_scale: float = 1e-3) -> Any:
        """``guide(net)`` for :class:`~hvgp.infer.model.SparseBNN`'s ``guide=``."""
        return lambda net: cls(net, drop_rate, init_scale)

    def bind(self, net: nn.Module) -> SparseNormalGuide:
        """This posterior's σ (shared ρ, not copied) around ``net``'s weights as means, e.g.
        the averaged network."""
        new = type(self)(net, self.drop_rates, self.init_scale)
        new.rho = self.rho
        return new

    def scales(self) -> dict[str, torch.Tensor]:
        """Layer name -> σ of its active weights, flat ``(nnz,)`` in ``active_index`` order."""
        return {name: F.softplus(rho.reshape(-1).index_select(0, layer.active_index()))
                for (name, layer), rho in zip(self.layers.items(), self.rho, strict=True)}

    def numel(self) -> dict[str, int]:
        """Stored numbers of the posterior of the masked weights: U and σ on nnz each."""
        nnz = sum(int(layer.active_index().numel()) for layer in self.layers.values())
        return {"nnz": nnz, "mean": nnz, "scale": nnz}

    def forward(self, *args: Any, **kwargs: Any) -> None:
        """Draw Z (as the model would) and the weights at their Pyro sites."""
        for name, scale in self.scales().items():
            layer = self.layers[name]
            idx, p, keep = layer.active_index(), self.drop_rates[name], None
            if p > 0:
                d = RandomMask(layer.weight_mask, 1.0 - p, layer.weight.dtype, index=idx)
                z = pyro.sample(mask_site(name), d)
                if d.last_draw is not None and d.last_draw[0] is z:
                    keep = d.last_draw[1]
                else:  # a handler (condition, replay) gave the value
                    k = layer.weight.dim()
                    keep = z.reshape(*z.shape[:z.dim() - k], -1).index_select(-1, idx) != 0
            pyro.sample(weight_site(name), SparseNormal(layer.weight, scale, idx, keep))

    @torch.no_grad()
    def reset_(self, name: str, where: torch.Tensor,
               optimizer: torch.optim.Optimizer | None = None) -> None:
        """ρ of layer ``name`` back to its initial value at ``where`` (bool, weight shape),
        and its optimizer state there to 0."""
        rho = self.rho[list(self.layers).index(name)]
        rho.masked_fill_(where, self.init_rho)
        _reset_optimizer_state_(optimizer, rho, where)

    def posterior_state(self) -> dict[str, Any]:
        """σ on the active weights (``active_index`` order) and the initial scale: plain
        tensors, for ``state_dict`` and export."""
        return {"init_scale": self.init_scale,
                "scale": {n: s.detach().clone() for n, s in self.scales().items()}}

    @torch.no_grad()
    def load_posterior_state(self, state: Mapping[str, Any]) -> None:
        """Install what :meth:`posterior_state` returned (on the current masks)."""
        self.init_scale = float(state["init_scale"])
        self.init_rho = inverse_softplus(self.init_scale)
        for (name, layer), rho in zip(self.layers.items(), self.rho, strict=True):
            s = state["scale"][name].to(rho)
            idx = layer.active_index()
            if s.numel() != idx.numel():
                raise ValueError(f"posterior of {name!r} has {s.numel()} scales, the layer "
                                 f"{idx.numel()} active weights")
            rho.fill_(self.init_rho)
            rho.view(-1).index_copy_(0, idx, s + torch.log(-torch.expm1(-s)))


class ResetGrownScales(Callback):
    """After each topology update, ρ of every grown weight back to the guide's initial σ.

    Runs after :class:`~hvgp.infer.callbacks.TopologyUpdate` in the same
    ``on_after_backward`` (put it after that callback); a mask is compared only when its
    version counter moved. Stateless: the masks are re-read at ``on_fit_start`` (a resume
    starts at an epoch end, masks as saved).
    """

    def __init__(self, guide: SparseNormalGuide) -> None:
        self.guide = guide
        self._masks: dict[str, tuple[int, torch.Tensor]] = {}

    def on_fit_start(self, trainer: Any) -> None:
        self._masks = {n: (layer.weight_mask._version, layer.weight_mask.clone())
                       for n, layer in self.guide.layers.items()}

    def on_after_backward(self, trainer: Any) -> None:
        for name, layer in self.guide.layers.items():
            m = layer.weight_mask
            version, old = self._masks[name]
            if m._version == version:
                continue
            born = m & ~old
            if born.any():
                self.guide.reset_(name, born, trainer.optimizer)
            self._masks[name] = (m._version, m.clone())


class VariationalELBO(NegativeELBO):
    """:class:`~hvgp.infer.objective.NegativeELBO` whose KL is analytic where it can be.

    ``analytic_kl=True``: Pyro's ``TraceMeanField_ELBO`` (:func:`sparse_normal_kl` on the
    weight sites, 0 on the Z sites, Monte Carlo for any other prior); ``False``: plain
    ``Trace_ELBO`` (``log p - log q`` at the sampled weights). Never the fast step (the
    guide is not the point mass).
    """

    def __init__(self, bnn: Any, num_data: int | None = None, analytic_kl: bool = True) -> None:
        super().__init__(bnn, num_data)
        self.analytic_kl = bool(analytic_kl)
        if self.analytic_kl:
            self._elbo = TraceMeanField_ELBO(max_plate_nesting=1)
