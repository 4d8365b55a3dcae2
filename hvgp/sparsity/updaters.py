"""Topology updaters: RigL (gradient grow), SET (random grow) and Static (no change).

Every update keeps each layer's count of active weights. Ties in |w| or |grad| are broken
by a random permutation drawn from the updater's own seeded generator, so a run is
reproducible from ``(seed, state_dict())`` and independent of the device's sort order.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .schedule import DropFractionSchedule
from .topology import SparseTopology, mask_multiplier

__all__ = ["SET", "UPDATERS", "RigL", "Static", "TopologyUpdater", "make_updater"]


def _ranked_top_k(
    scores: torch.Tensor | None, n: int, k: int, gen: torch.Generator, device: torch.device
) -> torch.Tensor:
    """Positions of the ``k`` largest ``scores`` (of ``n``), ties in random (seeded) order.

    ``scores=None`` means all tied, i.e. ``k`` positions uniformly at random. The tie-break
    permutation is drawn on the CPU and moved, so CPU and CUDA runs pick the same positions.
    """
    perm = torch.randperm(n, generator=gen).to(device)
    if scores is None:
        return perm[:k]
    order = torch.sort(scores[perm], descending=True, stable=True).indices[:k]
    return perm[order]


def _reset_optimizer_state_(
    optimizer: torch.optim.Optimizer | None, param: torch.Tensor, where: torch.Tensor
) -> None:
    """Zero every per-weight optimizer state tensor of ``param`` at ``where``.

    Covers SGD ``momentum_buffer``, Adam ``exp_avg``/``exp_avg_sq``/``max_exp_avg_sq`` and
    any other state tensor shaped like the parameter; scalars such as ``step`` are left alone.
    """
    if optimizer is None:
        return
    state = optimizer.state.get(param)
    if not state:
        return
    for value in state.values():
        if torch.is_tensor(value) and value.shape == param.shape:
            value.masked_fill_(where, 0)


class TopologyUpdater:
    """Base class: schedule, drop-by-magnitude, grow-by-score, count-preserving rewiring.

    Usage in a training step (RigL needs the *dense* gradient)::

        loss.backward()
        if updater.should_update(step):
            updater.update(step, optimizer)
        topology.mask_grads_()
        optimizer.step()
        topology.apply_()

    :param topology: the :class:`SparseTopology` to rewire.
    :param total_steps: length of training in optimizer steps.
    :param delta_t: steps between updates.
    :param t_end: fraction of ``total_steps`` after which the topology is frozen.
    :param alpha: initial drop fraction of the cosine schedule.
    :param seed: seed of the tie-break / random-grow generator.
    """

    name = "base"

    def __init__(
        self,
        topology: SparseTopology,
        total_steps: int,
        delta_t: int = 100,
        t_end: float = 0.75,
        alpha: float = 0.3,
        seed: int = 0,
    ) -> None:
        if not isinstance(topology, SparseTopology):
            raise TypeError(f"topology must be a SparseTopology, got {type(topology).__name__}")
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps <= 0:
            raise ValueError(f"total_steps must be a positive integer, got {total_steps!r}")
        if isinstance(delta_t, bool) or not isinstance(delta_t, int) or delta_t <= 0:
            raise ValueError(f"delta_t must be a positive integer, got {delta_t!r}")
        if not isinstance(t_end, (int, float)) or not 0.0 < float(t_end) <= 1.0:
            raise ValueError(f"t_end must be a fraction of total_steps in (0, 1], got {t_end!r}")
        self.topology = topology
        self.total_steps = total_steps
        self.delta_t = delta_t
        self.t_end = float(t_end)
        self.t_end_step = max(1, int(self.t_end * total_steps))
        self.schedule = DropFractionSchedule(alpha, self.t_end_step)
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def should_update(self, step: int) -> bool:
        """True on multiples of ``delta_t`` strictly between 0 and ``t_end * total_steps``."""
        return step % self.delta_t == 0 and 0 < step < self.t_end_step

    def drop_fraction(self, step: int) -> float:
        """The scheduled fraction ``alpha_t`` of active weights rewired at ``step``."""
        return self.schedule(step)

    def grow_scores(self, name: str, param: torch.Tensor) -> torch.Tensor | None:
        """Score of every weight for growing (larger grows first); ``None`` = random."""
        raise NotImplementedError

    @torch.no_grad()
    def update(self, step: int, optimizer: torch.optim.Optimizer | None = None) -> dict[str, Any]:
        """Rewire every sparse layer once; return counts dropped/grown per layer.

        Per layer with ``0 < nnz < numel``: drop the ``k = ceil(alpha_t * nnz)`` active weights
        of smallest ``|w|``, then activate the ``k`` best-scoring weights among those inactive
        after the drop (as google-research/rigl, a just-dropped weight may be re-grown; it then
        keeps its value, so the net number of changes can be below ``k``). Newly active weights
        are set to 0 and their optimizer state, like that of dropped weights, is zeroed. All
        masked weights are zero afterwards. Stats: ``k`` (candidates per layer), ``dropped``
        and ``grown`` (net connections removed / added; always equal).
        """
        alpha_t = self.drop_fraction(step)
        stats: dict[str, Any] = {"step": step, "drop_fraction": alpha_t,
                                 "k": {}, "dropped": {}, "grown": {}}
        for name, site in self.topology.sites.items():
            mask, param = site.mask, site.param
            numel = mask.numel()
            nnz = int(mask.sum())
            k = min(nnz, math.ceil(round(alpha_t * nnz, 9))) if 0 < nnz < numel else 0
            stats["k"][name] = k
            if k == 0:
                param.mul_(mask_multiplier(mask))
                stats["dropped"][name] = stats["grown"][name] = 0
                continue
            scores = self.grow_scores(name, param)
            old = mask.reshape(-1).clone()
            active = old.nonzero().squeeze(1)
            drop = active[_ranked_top_k(-param.reshape(-1)[active].abs(), nnz, k,
                                        self.generator, param.device)]
            new = old.clone()
            new[drop] = False
            inactive = (~new).nonzero().squeeze(1)
            grow_scores = None if scores is None else scores.reshape(-1)[inactive]
            new[inactive[_ranked_top_k(grow_scores, inactive.numel(), k, self.generator,
                                       param.device)]] = True
            born = (new & ~old).view(mask.shape)
            changed = (new ^ old).view(mask.shape)
            param.masked_fill_(born, 0)
            mask.copy_(new.view(mask.shape))
            param.mul_(mask_multiplier(mask))
            _reset_optimizer_state_(optimizer, param, changed)
            n_born = int(born.sum())
            stats["grown"][name] = n_born
            stats["dropped"][name] = n_born  # counts are preserved: one drop per growth
        return stats

    def state_dict(self) -> dict[str, Any]:
        """Generator state and configuration, for checkpoint/resume."""
        return {"name": self.name, "generator": self.generator.get_state(),
                "total_steps": self.total_steps, "delta_t": self.delta_t, "t_end": self.t_end,
                "alpha": self.schedule.alpha, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the generator state (the configuration must match)."""
        if state.get("name") != self.name:
            raise ValueError(f"state is for updater {state.get('name')!r}, not {self.name!r}")
        for key in ("total_steps", "delta_t", "t_end", "alpha"):
            mine = getattr(self, key) if key != "alpha" else self.schedule.alpha
            if state[key] != mine:
                raise ValueError(
                    f"updater {key} mismatch: state has {state[key]!r}, this has {mine!r}"
                )
        self.generator.set_state(state["generator"])

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(total_steps={self.total_steps}, delta_t={self.delta_t}, "
                f"t_end={self.t_end}, alpha={self.schedule.alpha}, seed={self.seed})")


class RigL(TopologyUpdater):
    """Grow the inactive weights of largest dense-gradient magnitude (Evci et al. 2020)."""

    name = "rigl"

    def grow_scores(self, name: str, param: torch.Tensor) -> torch.Tensor:
        grad = param.grad
        if grad is None:
            raise RuntimeError(
                f"RigL needs the dense gradient of {name!r} but its .grad is None; call "
                "loss.backward() before updater.update(...) and mask_grads_() only after it"
            )
        return grad.abs()


class SET(TopologyUpdater):
    """Grow uniformly random inactive weights (Mocanu et al. 2018)."""

    name = "set"

    def grow_scores(self, name: str, param: torch.Tensor) -> None:
        return None


class Static(TopologyUpdater):
    """Keep the initial topology: never updates."""

    name = "static"

    def should_update(self, step: int) -> bool:
        return False

    def update(self, step: int, optimizer: torch.optim.Optimizer | None = None) -> dict[str, Any]:
        zeros = dict.fromkeys(self.topology.sites, 0)
        return {"step": step, "drop_fraction": 0.0, "k": dict(zeros), "dropped": dict(zeros),
                "grown": dict(zeros)}


UPDATERS: dict[str, type[TopologyUpdater]] = {"rigl": RigL, "set": SET, "static": Static}


def make_updater(name: str, topology: SparseTopology, **kw: Any) -> TopologyUpdater:
    """Build an updater by name (``"rigl"``, ``"set"``, ``"static"``, case-insensitive)."""
    key = name.lower() if isinstance(name, str) else name
    if key not in UPDATERS:
        raise ValueError(f"unknown topology updater {name!r}; valid names: {', '.join(UPDATERS)}")
    return UPDATERS[key](topology, **kw)
