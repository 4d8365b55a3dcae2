"""SWAG on the sparse support: a Gaussian posterior over the active weights of CigL.

CigL's weight averaging folds one snapshot per epoch from T* into a running mean, with the
mask frozen. :class:`SWAGMoments` keeps, at no extra training cost, the running second
central moment (Welford's update: a numerically stable form of SWAG's running E[θ²]) and
the last K deviation columns θ_i − θ̄_i (Maddox et al. 2019, "A Simple Baseline for
Bayesian Uncertainty in Deep Learning"), for the *active* entries of masked weights only
(and for every entry of the small unmasked parameters: biases, BatchNorm affine).

Memory of the masked weights: the dense mean (as plain averaging keeps it) plus (1 + K)
values per active weight, i.e. (2 + K) × nnz numbers of posterior. Samples
(:meth:`SWAGPosterior.sample`) are exactly zero outside the mask M.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from hvgp.infer.callbacks import WeightAveraging, loader_generators
from hvgp.nn.layers import masked_layers

__all__ = ["SWAGMoments", "SWAGPosterior", "bn_batches", "has_batchnorm", "parameter_supports",
           "refit_batchnorm"]


def parameter_supports(net: nn.Module) -> dict[str, torch.Tensor | None]:
    """Parameter name -> its boolean support (a masked layer's ``weight_mask``; None: all)."""
    masks = {(f"{n}." if n else "") + "weight": layer.weight_mask
             for n, layer in masked_layers(net).items()}
    return {name: masks.get(name) for name, _ in net.named_parameters()}


def _compress(t: torch.Tensor, support: torch.Tensor | None) -> torch.Tensor:
    """The entries of ``t`` on ``support`` as a flat vector (all of them for None)."""
    return t.detach().flatten() if support is None else t.detach()[support]


class SWAGMoments(WeightAveraging):
    """:class:`WeightAveraging` that also keeps SWAG's second moment and deviation columns.

    The running mean is the parent's, updated exactly as in plain averaging (so the mean
    network is bit-identical); the extra state is checkpointed with it.

    :param start_epoch: number of completed epochs after which snapshots are folded in.
    :param rank: K, the number of most recent deviation columns kept (0: diagonal only).
    """

    def __init__(self, start_epoch: int, rank: int = 0, masked: bool = False) -> None:
        super().__init__(start_epoch, masked)
        if not isinstance(rank, int) or isinstance(rank, bool) or rank < 0:
            raise ValueError(f"rank must be a non-negative int, got {rank!r}")
        self.rank = rank
        self.m2: dict[str, torch.Tensor] = {}
        self.dev: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def on_epoch_end(self, trainer: Any) -> None:
        if trainer.epoch <= self.start_epoch:
            return
        net = trainer.bnn.net
        supports = parameter_supports(net)
        old = {n: _compress(m, supports[n]).clone() for n, m in self.mean.items()}  # the
        # parent updates the mean in place; Welford needs the mean before this snapshot
        super().on_epoch_end(trainer)
        snap = self.snapshot(trainer)
        for name in snap:
            x, new = _compress(snap[name], supports[name]), _compress(self.mean[name],
                                                                       supports[name])
            if name in old:
                self.m2[name] += (x - old[name]) * (x - new)
            else:
                self.m2[name] = torch.zeros_like(x)
            if self.rank > 0:
                cols = self.dev.get(name, x.new_zeros((0, x.numel())))
                self.dev[name] = torch.cat([cols, (x - new).unsqueeze(0)])[-self.rank:]

    def posterior(self, net: nn.Module) -> SWAGPosterior:
        """The Gaussian posterior of the moments so far, on ``net``'s (frozen) supports."""
        if self.count == 0:
            raise ValueError("no snapshot was averaged: SWAG needs at least one epoch after "
                             "average_start")
        return SWAGPosterior(
            mean={n: m.clone() for n, m in self.mean.items()},
            var={n: (m / self.count).clamp_min(0.0) for n, m in self.m2.items()},
            dev={n: d.clone() for n, d in self.dev.items()},
            support=parameter_supports(net), count=self.count)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "rank": self.rank, "m2": dict(self.m2),
                "dev": dict(self.dev)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.rank = int(state["rank"])
        self.m2 = {k: v.clone() for k, v in state["m2"].items()}
        self.dev = {k: v.clone() for k, v in state["dev"].items()}


@dataclass
class SWAGPosterior:
    """N(θ̄, ½(Σ_diag + D Dᵀ/(K − 1))) on the supports (SWAG-diagonal N(θ̄, Σ_diag) if K < 2).

    :param mean: parameter name -> dense running mean (zero outside the support).
    :param var: name -> variance of the entries on the support (flat, clamped ≥ 0).
    :param dev: name -> ``(K, n_support)`` deviation columns (absent or K = 0: diagonal).
    :param support: name -> boolean support, None for a dense parameter.
    :param count: number of snapshots the moments are over.
    """

    mean: dict[str, torch.Tensor]
    var: dict[str, torch.Tensor]
    dev: dict[str, torch.Tensor]
    support: dict[str, torch.Tensor | None]
    count: int

    @property
    def rank(self) -> int:
        """K, the number of deviation columns (0: diagonal)."""
        return min((d.shape[0] for d in self.dev.values()), default=0)

    def numel(self) -> dict[str, int]:
        """Stored numbers of the masked weights' posterior: active entries of the mean, the
        variance and the K deviation columns ((2 + K) × nnz together)."""
        masked = [n for n, s in self.support.items() if s is not None]
        nnz = sum(int(self.support[n].sum()) for n in masked)  # type: ignore[union-attr]
        return {"nnz": nnz, "mean": nnz, "var": nnz, "dev": self.rank * nnz}

    @torch.no_grad()
    def sample(self, generator: torch.Generator, scale: float | None = None
               ) -> dict[str, torch.Tensor]:
        """One draw of every parameter (dense, exactly 0 outside the support).

        :param generator: a CPU generator (draws are the same on every device).
        :param scale: multiplies the covariance; default ½ with K ≥ 2 deviation columns
            (Maddox et al.), 1 for the diagonal-only posterior.
        """
        k = self.rank
        scale = (0.5 if k >= 2 else 1.0) if scale is None else float(scale)
        if scale < 0:
            raise ValueError(f"scale must be >= 0, got {scale!r}")
        z2 = torch.randn(k, generator=generator) if k >= 2 else None
        out = {}
        for name, mu in self.mean.items():
            var, supp = self.var[name], self.support[name]
            noise = var.sqrt() * torch.randn(var.shape, generator=generator).to(var)
            if z2 is not None:
                noise = noise + z2.to(var) @ self.dev[name][-k:] / math.sqrt(k - 1)
            vals = _compress(mu, supp) + math.sqrt(scale) * noise
            out[name] = (vals.reshape(mu.shape) if supp is None
                         else torch.zeros_like(mu).masked_scatter_(supp, vals))
        return out

    def state_dict(self) -> dict[str, Any]:
        """Plain tensors and containers (for ``torch.save`` / ``weights_only`` loading)."""
        return {"mean": dict(self.mean), "var": dict(self.var), "dev": dict(self.dev),
                "support": dict(self.support), "count": self.count}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> SWAGPosterior:
        """The posterior :meth:`state_dict` saved."""
        return cls(**{k: (dict(v) if isinstance(v, dict) else int(v)) for k, v in state.items()})


def has_batchnorm(net: nn.Module) -> bool:
    """Whether ``net`` has BatchNorm layers (their statistics depend on the weights)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())


@contextmanager
def _rng_preserved(loader: Any) -> Iterator[None]:
    """Leaves torch's global RNG and the loader's shuffle generators as they were."""
    gens = loader_generators(loader)
    saved = {k: g.get_state() for k, g in gens.items()}
    with torch.random.fork_rng(devices=[]):
        yield
    for k, g in gens.items():
        g.set_state(saved[k])


def bn_batches(loader: Any, n: int) -> list[torch.Tensor]:
    """The inputs of the first ``n`` batches of ``loader`` (RNG states left untouched), for
    re-estimating BatchNorm statistics of each weight sample on the same data."""
    with _rng_preserved(loader):
        return [x for x, *_ in islice(iter(loader), n)]


def refit_batchnorm(net: nn.Module, batches: list[torch.Tensor]) -> nn.Module:
    """``net`` with BatchNorm statistics recomputed on ``batches`` (cumulative average), in
    eval mode."""
    update_bn(batches, net, device=next(net.parameters()).device)
    return net.eval()
