"""The Pyro program of a sparse BNN: random mask Z, masked Gaussian prior, likelihood.

For each masked layer (weight shape ``k`` dims, deterministic mask ``M``, drop rate ``p``)::

    z ~ RandomMask(M, 1 - p)                # Bernoulli(1 - p) on the active weights, 1 elsewhere
    w ~ Normal(0, s).expand(shape).mask(M & z).to_event(k)            # prior on kept weights
    used weight = w * where(M, z / (1 - p), 1)                        # inverted DropConnect

then ``y ~ likelihood(net(x; used weights))`` in a data plate of size ``N``.

Why these choices:
- Z's log-density is taken as 0 (:class:`RandomMask`): q(Z) = p(Z), so it cancels in the
  ELBO; leaving it out keeps the loss free of that parameter-free term, while
  ``poutine.trace`` still records Z and ``poutine.condition`` / ``poutine.block`` act on
  it like on any site.
- Z is drawn on the active weights only (``rand < 1 - p`` at ``M``'s indices): Z on an
  inactive weight is irrelevant (its factor is 1 whatever Z is, and its prior is masked by
  ``M``), so it is set to 1 there, the same on every path, and nothing is drawn for it.
- The prior covers only kept active weights, so a weight with Z = 0 gets neither a data
  gradient (its factor is 0) nor a weight-decay gradient that step.
- Inactive weights (held at exactly 0 by the topology) enter with factor 1, so they still
  receive the *dense* gradient RigL's grow step needs.
- Prior scale ``s`` and SGD weight decay ``lambda`` match through ``s^2 = 1 / (lambda N)``
  (see :func:`prior_scale_from_weight_decay`).
- The prior (:mod:`hvgp.infer.prior`), the guide (:mod:`hvgp.infer.guide`), the likelihood
  and the objective (:mod:`hvgp.infer.objective`, which knows N) are objects passed in, so a
  new prior, guide or posterior is one class, not an edit here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import nullcontext
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from torch import nn
from torch.func import functional_call

from hvgp.infer.guide import PointMassGuide, weight_site
from hvgp.infer.likelihood import Likelihood, make_likelihood
from hvgp.infer.objective import NegativeELBO
from hvgp.infer.prior import GaussianPrior, Prior, prior_scale_from_weight_decay
from hvgp.nn.layers import masked_layers, weight_factors

__all__ = ["RandomMask", "SparseBNN", "mask_site", "prior_scale_from_weight_decay"]


def mask_site(layer_name: str) -> str:
    """Pyro site name of a masked layer's random mask Z."""
    return f"{layer_name}.weight_z" if layer_name else "weight_z"


class RandomMask(dist.TorchDistribution):
    """The random mask Z of one layer: Bernoulli(``keep``) on the active weights, 1 elsewhere.

    Event shape: the weight's shape; values 0./1. in ``dtype``. The log density is 0
    (q(Z) = p(Z) cancels in the ELBO). Only the ``nnz`` active entries are drawn
    (``rand < keep`` at ``index``): the inactive ones do not matter (factor 1, no prior).
    The last draw's ``(value, kept, dropped)`` is kept in ``last_draw`` (``kept``: bool per
    active entry; ``dropped``: flat indices of the active entries drawn 0, on the CPU for a
    single draw, else None), so the fast training step reuses it instead of gathering it
    back. On the CPU a single draw fills Z through ``dropped`` (about ``p * nnz`` entries,
    a count known without a device sync); Z is the same either way.

    :param mask: the deterministic mask M (bool, the weight's shape).
    :param keep: ``1 - p``.
    :param index: flat indices of M's True entries (default: computed from ``mask``).
    """

    arg_constraints: dict = {}

    def __init__(self, mask: torch.Tensor, keep: float, dtype: torch.dtype = torch.float32,
                 batch_shape: torch.Size | None = None, index: torch.Tensor | None = None,
                 validate_args: bool | None = None) -> None:
        self.mask, self.keep, self.dtype = mask, float(keep), dtype
        self.index = index if index is not None else mask.reshape(-1).nonzero().squeeze(1)
        self.last_draw: tuple[torch.Tensor, torch.Tensor] | None = None
        super().__init__(torch.Size(batch_shape or ()), mask.shape, validate_args=False)

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self) -> constraints.Constraint:
        return constraints.independent(constraints.boolean, self.mask.dim())

    def expand(self, batch_shape: torch.Size, _instance: object = None) -> RandomMask:
        return RandomMask(self.mask, self.keep, self.dtype, torch.Size(batch_shape), self.index)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> torch.Tensor:
        lead = torch.Size(sample_shape) + self.batch_shape
        m = self.mask
        self.last_draw = None  # a cached distribution drops its last Z before the next
        kept = torch.rand(*lead, self.index.numel(), device=m.device) < self.keep
        z = torch.ones(*lead, m.numel(), dtype=self.dtype, device=m.device)
        dropped = None
        if not lead and m.device.type == "cpu":
            dropped = self.index[kept.logical_not()]
            z.index_fill_(0, dropped, 0.0)
        else:
            z.index_copy_(-1, self.index, kept.to(self.dtype))
        z = z.reshape(*lead, *m.shape)
        self.last_draw = (z, kept, dropped)
        return z

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return value.new_zeros(value.shape[:value.dim() - self.mask.dim()])


class SparseBNN(nn.Module):
    """Model and guide of a sparse Bayesian network with deterministic and random masks.

    :param net: network of :class:`hvgp.nn.MaskedLayer` layers (plus anything unmasked).
    :param likelihood: ``"categorical"``, ``"normal"`` or a :class:`Likelihood`.
    :param drop_rate: random-mask rate ``p`` for every layer, or a dict ``name -> p``
        (missing layers get 0); 0 disables Z for that layer.
    :param prior_scale: std of the Gaussian weight prior (when ``prior`` is not given).
    :param data_size: default N for :meth:`loss` (:class:`NegativeELBO` passes its own).
    :param noise: fixed noise std of a ``"normal"`` likelihood (``None`` learns it).
    :param prior: a :class:`~hvgp.infer.prior.Prior` (default ``GaussianPrior(prior_scale)``).
    :param guide: ``guide(net)`` builds the guide (default :class:`PointMassGuide`); an
        ``nn.Module`` guide's parameters become the BNN's.
    """

    def __init__(
        self,
        net: nn.Module,
        likelihood: str | Likelihood = "categorical",
        drop_rate: float | Mapping[str, float] = 0.0,
        prior_scale: float = 1.0,
        data_size: int | None = None,
        noise: float | None = None,
        *,
        prior: Prior | None = None,
        guide: Callable[[nn.Module], Any] | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.likelihood = make_likelihood(likelihood, noise)
        self.prior = prior if prior is not None else GaussianPrior(prior_scale)
        self.data_size = data_size
        self._layers = masked_layers(net)
        if not self._layers:
            raise TypeError("the network has no masked layers (build it with hvgp.nn)")
        self.guide = (guide or PointMassGuide)(net)
        self.drop_rates = self._drop_rates(drop_rate)

    # ---- configuration -----------------------------------------------------------------
    @property
    def layers(self) -> dict[str, nn.Module]:
        """The masked layers of the network, by name."""
        return self._layers

    @property
    def prior_scale(self) -> float:
        """Std of a Gaussian prior (setting it installs ``GaussianPrior(value)``)."""
        return self.prior.scale  # type: ignore[attr-defined]

    @prior_scale.setter
    def prior_scale(self, value: float) -> None:
        self.prior = GaussianPrior(value)

    def _drop_rates(self, drop_rate: float | Mapping[str, float]) -> dict[str, float]:
        names = list(self.layers)
        if isinstance(drop_rate, Mapping):
            unknown = set(drop_rate) - set(names)
            if unknown:
                raise ValueError(f"drop_rate names {sorted(unknown)} are not masked layers {names}")
            rates = {n: float(drop_rate.get(n, 0.0)) for n in names}
        else:
            rates = dict.fromkeys(names, float(drop_rate))
        for n, p in rates.items():
            if not 0.0 <= p < 1.0:
                raise ValueError(f"drop_rate of {n!r} must be in [0, 1), got {p!r}")
        return rates

    @property
    def mask_sites(self) -> list[str]:
        """Names of the random-mask sites (layers with ``p > 0``)."""
        return [mask_site(n) for n, p in self.drop_rates.items() if p > 0]

    # ---- the Pyro program ----------------------------------------------------------------
    def mask_distribution(self, name: str) -> RandomMask:
        """The distribution of layer ``name``'s random mask Z (drop rate must be > 0).

        The same object while the mask, its active index, the rate and the dtype stay (a
        distribution's construction costs about as much as a small layer's draw).
        """
        layer = self.layers[name]
        mask, index = layer.weight_mask, layer.active_index()
        keep, dtype = 1.0 - self.drop_rates[name], layer.weight.dtype
        cache = self.__dict__.setdefault("_mask_dists", {})
        d = cache.get(name)
        if d is None or d.mask is not mask or d.index is not index or d.keep != keep \
                or d.dtype != dtype or d.batch_shape:
            d = cache[name] = RandomMask(mask, keep, dtype, index=index)
        return d

    def sample_masks(self, num_samples: int | None = None) -> dict[str, torch.Tensor]:
        """Only the random-mask sites: layer name -> Z (``(S, *w)`` in a ``samples`` plate).

        The program prediction runs with the point-mass guide (whose weights are the
        parameters themselves), and what the fast training step draws Z with.
        """
        plate = (nullcontext() if num_samples is None
                 else pyro.plate("samples", num_samples, dim=-1))
        with plate:
            return {name: pyro.sample(mask_site(name), self.mask_distribution(name))
                    for name, p in self.drop_rates.items() if p > 0}

    def mask_factors(self, zs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``where(M, Z / (1 - p), 1)`` per layer for masks ``zs`` (any leading dims).

        Built as ones with the active entries scattered in (gather, divide and scatter
        ``nnz`` entries, not three passes over every weight).
        """
        out = {}
        for name, z in zs.items():
            layer = self.layers[name]
            idx, k = layer.active_index(), layer.weight_mask.dim()
            flat = z.reshape(*z.shape[:z.dim() - k], -1)
            f = torch.ones_like(flat)
            f.index_copy_(-1, idx, flat.index_select(-1, idx) / (1.0 - self.drop_rates[name]))
            out[name] = f.view(z.shape)
        return out

    def forward_masked(self, x: torch.Tensor, zs: dict[str, torch.Tensor],
                       factors: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Network output with the parameters as weights and masks ``zs`` applied in the layers.

        ``zs`` of shape ``(S, *w)`` give ``(S, N, ...)`` in one stacked pass; plain ``(*w)``
        give ``(N, ...)``. ``factors``: precomputed :meth:`mask_factors` of ``zs``.
        """
        factors = self.mask_factors(zs) if factors is None else factors
        s = next((f.shape[0] for n, f in factors.items()
                  if f.dim() > self.layers[n].weight_mask.dim()), None)
        with weight_factors(self.layers, factors):
            if s is None:
                return self.net(x)
            flat = x.unsqueeze(0).expand(s, *x.shape).reshape(s * x.shape[0], *x.shape[1:])
            out = self.net(flat)
        return out.reshape(s, x.shape[0], *out.shape[1:])

    def sample_weights(self) -> dict[str, torch.Tensor]:
        """Draw Z and the weight site of every masked layer; return the weights the net uses.

        Keys are the layers' parameter names (``"<layer>.weight"``).
        """
        used = {}
        for name, layer in self.layers.items():
            m = layer.weight_mask
            k, p = m.dim(), self.drop_rates[name]
            zero = torch.zeros((), device=m.device, dtype=layer.weight.dtype)
            keep, factor = m, None
            if p > 0:
                z = pyro.sample(mask_site(name), self.mask_distribution(name))
                keep = m & z.bool()
                factor = torch.where(m, z / (1.0 - p), torch.ones_like(z))
            w = pyro.sample(
                weight_site(name),
                self.prior.distribution(name, m.shape, zero).mask(keep).to_event(k),
            )
            if w.dim() == k + 1:  # Predictive(parallel=True) conditions w as (S, *w): the
                w = w.unsqueeze(1)  # samples plate is at dim -2, so make it (S, 1, *w)
            used[weight_site(name)] = w if factor is None else w * factor
        return used

    def forward_samples(self, x: torch.Tensor, weights: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Network output ``(N, ...)``, or ``(S, N, ...)`` for weights with S stacked samples.

        Stacked weights have shape ``(S, 1, *w)`` (a samples plate at dim -2); the input is
        then repeated S times along the batch axis and the masked layers run S networks in
        one pass.
        """
        layers = self.layers.items()
        sizes = {weight_site(n): layer.weight_mask.numel() for n, layer in layers}
        s = max((w.numel() // sizes[n] for n, w in weights.items()), default=1)
        if s == 1:
            return functional_call(self.net, dict(weights), (x,), strict=False)
        flat = x.unsqueeze(0).expand(s, *x.shape).reshape(s * x.shape[0], *x.shape[1:])
        out = functional_call(self.net, dict(weights), (flat,), strict=False)
        return out.reshape(s, x.shape[0], *out.shape[1:])

    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        """The program up to the likelihood: sampled Z and weights -> logits / regression mean.

        Prediction runs this (not :meth:`model`), so any number of test points can be
        predicted, whatever the training-set size the observation plate is scaled to.
        """
        out = self.forward_samples(x, self.sample_weights())
        return out if self.likelihood.is_classification else out.squeeze(-1)

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None,
              num_data: int | None = None) -> torch.Tensor:
        """The generative program; returns the network output (logits or regression mean).

        :param num_data: size of the data plate (default ``data_size``; None: the batch).
        """
        out = self.outputs(x)
        self.likelihood(out, y, num_data if num_data is not None else self.data_size)
        return out

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Differentiable negative ELBO divided by N = ``data_size`` (see
        :class:`~hvgp.infer.objective.NegativeELBO`)."""
        return NegativeELBO(self, self.data_size)(x, y)
