"""The training objective: negative ELBO per data point of a sparse BNN.

Shaped like GPyTorch's ``VariationalELBO(likelihood, model, num_data)``: the objective
knows N (the data plate is scaled to it, and the loss is divided by it so learning rates
mean the usual thing); the model and guide stay the program's.

Two ways to evaluate it, equal wherever the fast one runs (tests/test_infer_fast_step.py):

- *generic*: Pyro's ``Trace_ELBO`` over the model and the guide (any prior, guide,
  likelihood, and any Pyro handler around the step);
- *fast* (:meth:`NegativeELBO.fast_terms`), for the point-mass guide, the Gaussian prior and
  the categorical / Gaussian likelihoods with no Pyro handler around the step other than
  :class:`SiteRecorder`: the guide contributes exactly 0 (log q of a point mass at U), so
  the ELBO is the log joint at U; Z is drawn at its Pyro sites (active weights only), the
  network runs once with ``Z / (1 - p)`` applied inside its layers (as a
  :class:`~hvgp.nn.layers.DropFactor`: no weight-sized factor or product is held over the
  pass, so the step's peak memory is RigL's), the likelihood term is a
  fused cross-entropy / Gaussian NLL, and the prior term ``sum_kept log N(U; 0, s)`` / N is
  added analytically to the *value*; its gradient ``lambda U`` on kept weights
  (``lambda = 1 / (s^2 N)``) is added to the gradients by the trainer after ``backward``
  (:meth:`FastTerms.add_prior_gradient`), which costs one fused multiply-add per layer
  instead of a masked ``log_prob`` over every weight and its backward. That gradient is
  ``lambda U Z`` over the whole weight: exact because the weights outside M are exactly 0
  (the topology's invariant: :class:`~hvgp.sparsity.SparseTopology` applies it when built
  and the trainer after every step).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyro
import torch
import torch.nn.functional as F
from pyro.infer import Trace_ELBO
from pyro.poutine.messenger import Messenger
from pyro.poutine.runtime import _PYRO_STACK

from hvgp.nn.layers import DropFactor, drop_scale

__all__ = ["FastTerms", "NegativeELBO", "SiteRecorder"]

#: one layer's draw of Z on the fast step: ``(Z, active index, kept per active entry,
#: Z's version counter, flat indices of the dropped active entries or None)``
Draw = tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, "torch.Tensor | None"]


class SiteRecorder(Messenger):
    """Records the values of the named sample sites (the random masks) as they are drawn."""

    def __init__(self, names: Iterable[str]) -> None:
        super().__init__()
        self.names = set(names)
        self.values: dict[str, torch.Tensor] = {}

    def _postprocess_message(self, msg: dict[str, Any]) -> None:
        if msg["type"] == "sample" and msg["name"] in self.names:
            self.values[msg["name"]] = msg["value"]


@dataclass
class FastTerms:
    """The pieces of ``-ELBO / N`` at the point mass U that the fast step computes.

    :param data: differentiable likelihood term (mean NLL over the minibatch: the data
        plate's N / B scaling divided by N).
    :param prior: the prior term ``-sum_kept log N(U; 0, s) / N`` (0-d, no graph).
    :param decay: ``lambda = 1 / (s^2 N)``: the prior term's gradient is ``lambda U`` on
        the kept weights (0 for the flat prior).
    :param draws: layer name -> ``(Z, active index, kept per active entry, Z's version,
        flat indices of the dropped active entries or None)``.
    """

    data: torch.Tensor
    prior: torch.Tensor
    decay: float
    draws: dict[str, Draw] = field(default_factory=dict)

    @torch.no_grad()
    def add_prior_gradient(self, layers: dict[str, Any]) -> None:
        """``grad += lambda * U * Z`` (kept weights; inactive ones are 0) for every layer:
        one multi-tensor call for the layers with a Z and one for those without."""
        if self.decay == 0:
            return
        masked: tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]] = ([], [], [])
        plain: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
        for name, layer in layers.items():
            w = layer.weight
            if not w.requires_grad:
                continue
            if w.grad is None:
                w.grad = torch.zeros_like(w)
            draw = self.draws.get(name)
            if draw is None:
                plain[0].append(w.grad)
                plain[1].append(w)
            else:
                for group, t in zip(masked, (w.grad, w, draw[0]), strict=True):
                    group.append(t)
        if plain[0]:
            torch._foreach_add_(plain[0], plain[1], alpha=self.decay)
        if masked[0]:
            torch._foreach_addcmul_(*masked, value=self.decay)


def _handlers_allow_fast() -> bool:
    """True when no Pyro handler but :class:`SiteRecorder` s is active (nothing conditions,
    replays, scales, masks or traces the program)."""
    return all(isinstance(m, SiteRecorder) for m in _PYRO_STACK)


def _distributed() -> bool:
    """True inside a process group of more than one rank (gradients are averaged there)."""
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class NegativeELBO:
    """``-ELBO / N`` of ``bnn`` (model and guide) on a minibatch.

    :param bnn: a :class:`hvgp.infer.SparseBNN` (anything with ``model`` and ``guide``).
    :param num_data: N, the training-set size; ``None``: ``bnn.data_size`` if set, else the
        minibatch is the data set.
    """

    def __init__(self, bnn: Any, num_data: int | None = None) -> None:
        self.bnn, self.num_data = bnn, num_data
        self._elbo = Trace_ELBO(max_plate_nesting=1)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Differentiable loss (a 0-d tensor)."""
        # Pyro's argument validation is off here (8 % of a CNN step on CPU): the trainer and
        # the likelihood check inputs and labels themselves, and every distribution of the
        # program is built from valid parameters. Non-finite logits still stop training
        # (NonFiniteLossError) through the loss value.
        n = self.num_data if self.num_data is not None else getattr(self.bnn, "data_size", None)
        with warnings.catch_warnings(), pyro.validation_enabled(False):
            # Z is model-only by design (q(Z) = p(Z)); Pyro's validation would warn about it.
            warnings.filterwarnings("ignore", "Found vars in model but not guide")
            elbo = self._elbo.differentiable_loss(self.bnn.model, self.bnn.guide, x, y, n)
        return elbo / (n or x.shape[0])

    def fast_exact(self) -> bool:
        """Whether :meth:`fast_terms` equals this objective exactly here and now."""
        from hvgp.infer.guide import PointMassGuide
        from hvgp.infer.likelihood import CategoricalLikelihood, GaussianLikelihood
        from hvgp.infer.model import SparseBNN
        from hvgp.infer.prior import GaussianPrior

        b = self.bnn
        if not isinstance(b, SparseBNN) or type(self).__call__ is not NegativeELBO.__call__:
            return False
        kind = type(b)
        program = ("model", "outputs", "sample_weights", "forward_samples",
                   "mask_distribution", "sample_masks")
        if any(getattr(kind, m) is not getattr(SparseBNN, m) or m in vars(b) for m in program):
            return False  # a subclass or an instance changed the program
        return (type(b.guide) is PointMassGuide and type(b.prior) is GaussianPrior
                and type(b.likelihood) in (CategoricalLikelihood, GaussianLikelihood)
                and _handlers_allow_fast() and not _distributed())

    def fast_terms(self, x: torch.Tensor, y: torch.Tensor) -> FastTerms:
        """The fast evaluation (see the module docstring); only exact where
        :meth:`fast_exact` is True. Z is drawn at its Pyro sites, visible to handlers."""
        from hvgp.infer.likelihood import CategoricalLikelihood
        from hvgp.infer.model import mask_site

        b = self.bnn
        n = self.num_data if self.num_data is not None else b.data_size
        draws, factors = {}, {}
        for name, p in b.drop_rates.items():
            if p <= 0:
                continue
            d = b.mask_distribution(name)
            z = pyro.sample(mask_site(name), d)
            idx = d.index
            if d.last_draw is not None and d.last_draw[0] is z:  # our draw: 1 off M
                _, kept, dropped = d.last_draw
                f: torch.Tensor | DropFactor = DropFactor.of(z, idx, drop_scale(p, z.dtype))
            else:  # a handler gave the value
                kept, dropped = z.reshape(-1).index_select(0, idx) != 0, None
                f = torch.ones(z.shape, dtype=z.dtype, device=z.device)
                f.view(-1).index_copy_(0, idx, kept.to(z.dtype) / (1.0 - p))
            draws[name], factors[name] = (z, idx, kept, z._version, dropped), f
        out = b.forward_masked(x, {}, factors)
        lik = b.likelihood
        if not lik.is_classification:
            out = out.squeeze(-1)
        batch = out.shape[-2] if lik.is_classification else out.shape[-1]
        if n is not None and int(n) < batch:
            raise ValueError(f"data_size={int(n)} is smaller than the minibatch ({batch} points)")
        lik.check_targets(out, y)
        if type(lik) is CategoricalLikelihood:
            data = F.cross_entropy(out, y if y.dtype == torch.int64 else y.long())
        else:
            noise = lik.noise.to(out)
            data = (0.5 * ((y - out) / noise) ** 2 + noise.log()
                    + 0.5 * math.log(2 * math.pi)).mean()
        prior, decay = self._prior_term(draws, n or batch)
        return FastTerms(data, prior, decay, draws)

    @torch.no_grad()
    def _prior_term(self, draws: dict[str, Draw], n: int) -> tuple[torch.Tensor, float]:
        """``-sum_kept log N(U; 0, s) / n`` and ``lambda = 1 / (s^2 n)`` (0, 0: flat prior).

        ``sum_kept U^2`` is ``sum U^2`` over every weight (the weights off M are exactly 0,
        the invariant :meth:`FastTerms.add_prior_gradient` relies on too) less the dropped
        entries' (gathered by index where the draw has them, else masked on the active
        entries): a few multi-tensor calls instead of a gather and masked sum per layer.
        """
        b = self.bnn
        s = float(b.prior.scale)
        layers = list(b.layers.values())
        first = layers[0].weight
        if math.isinf(s):
            return first.new_zeros(()), 0.0
        norms = torch._foreach_norm([layer.weight for layer in layers])
        sq = torch.stack(norms).square().sum()
        count: int | torch.Tensor = sum(int(layer.active_index().numel()) for layer in layers)
        gathered = []
        for name, layer in b.layers.items():
            draw = draws.get(name)
            if draw is None:
                continue
            w, idx, kept, dropped = layer.weight.reshape(-1), draw[1], draw[2], draw[4]
            if dropped is not None:
                gathered.append(w.index_select(0, dropped))
                count = count - dropped.numel()
            else:  # no host sync for the count (CUDA), or Z given by a handler
                lost = kept.logical_not()
                sq = sq - w.index_select(0, idx).square().mul_(lost.to(w.dtype)).sum()
                count = count - lost.sum()
        if gathered:
            v = torch.cat(gathered)
            sq = sq - torch.dot(v, v)
        const = math.log(s) + 0.5 * math.log(2 * math.pi)
        return (sq / (2 * s * s) + count * const) / n, 1.0 / (s * s * n)
