"""Deep ensembles (Lakshminarayanan et al. 2017): M networks from different seeds, pooled.

Each member is an ordinary package estimator (by default :class:`hvgp.infer.RigL`, dense at
``sparsity=0``) built from a fresh network of the factory under seed ``seed + i`` (so
initialisation, shuffling order and random masks differ); ``predict`` stacks the members'
predictives along the sample axis, so a deterministic member contributes one sample and the
ensemble's S is M.

Two budgets: ``ensemble`` gives every member the run's sparsity s, so it holds M times the
non-zero weights of one network; ``ensemble-equal`` (:class:`EqualNonzeroEnsemble`) gives each
member sparsity ``1 - (1 - s) / M``, so the M members together hold as many active (masked-in)
weights as one network at s (Lakshminarayanan et al.'s ensembles at CigL's parameter budget).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from hvgp.baselines.nn._common import stack_samples
from hvgp.estimator import Estimator
from hvgp.predict import PredictiveSamples
from hvgp.registry import make_estimator, register_model
from hvgp.utils import seed_everything

__all__ = ["DeepEnsemble", "EqualNonzeroEnsemble", "member_sparsity"]


@register_model("ensemble", kind="wrapper", aliases=("deep-ensemble",),
                options=("num_members", "member"),
                help="M seeds, predictions pooled (M x the non-zero weights of one network)")
class DeepEnsemble(Estimator):
    """M independently trained members whose predictions form the samples of one predictive.

    :param factory: called with no arguments, returns a new network (one per member).
    :param num_members: M.
    :param member: the member estimator: a registry name (see :mod:`hvgp.registry`), e.g.
        ``"rigl"``, ``"dense"``, ``"cigl"``, or ``member(net, **kw)`` returning one.
    :param sparsity: sparsity passed to every member (0: dense members).
    :param seed: member ``i`` uses ``seed + i`` (network initialisation and training).
    :param kw: the member estimator's keywords (``lr``, ``weight_decay``, ``device``...).
    """

    def __init__(
        self,
        factory: Callable[[], nn.Module],
        num_members: int = 5,
        *,
        member: str | Callable[..., Estimator] = "rigl",
        sparsity: float = 0.0,
        seed: int = 0,
        **kw: Any,
    ) -> None:
        if isinstance(factory, nn.Module) or not callable(factory):
            raise TypeError("DeepEnsemble needs a network *factory* (a callable returning a new "
                            f"network per member), got {type(factory).__name__}")
        if isinstance(num_members, bool) or not isinstance(num_members, int) or num_members < 1:
            raise ValueError(f"num_members must be a positive int, got {num_members!r}")
        if isinstance(member, str):
            from hvgp.registry import get_model

            if get_model(member).kind != "network":
                raise ValueError(f"member={member!r} is not a single-network estimator")
            name = member

            def member(net: nn.Module, **kw: Any) -> Estimator:
                return make_estimator(name, net, **kw)
        if kw.get("checkpoint") is not None:
            raise ValueError("checkpoint= is per network; ensembles do not support it")
        self.seed = int(seed)
        self.members = []
        for i in range(num_members):
            seed_everything(self.seed + i)
            net = factory()
            if not isinstance(net, nn.Module):
                raise TypeError(f"the factory returned {type(net).__name__}, not an nn.Module")
            self.members.append(member(net, sparsity=sparsity, seed=self.seed + i, **kw))

    @property
    def num_members(self) -> int:
        return len(self.members)

    @property
    def history_(self) -> list[list[dict[str, Any]]]:
        """Per-member training histories."""
        return [m.history_ for m in self.members]

    def fit(self, train_loader: Any, epochs: int, val_loader: Any = None) -> DeepEnsemble:
        """Train every member in turn on ``train_loader`` for ``epochs`` epochs."""
        for m in self.members:
            m.fit(train_loader, epochs, val_loader=val_loader)
        return self

    def predict(self, x: torch.Tensor, num_samples: int | None = None,
                **kw: Any) -> PredictiveSamples:
        """Members' predictives stacked along S (S = M for deterministic members)."""
        return stack_samples([m.predict(x, num_samples, **kw) for m in self.members])

    def prediction_nets(self) -> list[nn.Module]:
        return [n for m in self.members for n in m.prediction_nets()]

    def state_dict(self) -> dict[str, Any]:
        return {"members": [m.state_dict() for m in self.members]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for m, s in zip(self.members, state["members"], strict=True):
            m.load_state_dict(s)

    def __repr__(self) -> str:
        return f"DeepEnsemble({self.num_members} x {self.members[0]!r})"


def member_sparsity(sparsity: float, num_members: int) -> float:
    """Per-member sparsity ``1 - (1 - s) / M`` at which M members hold one network's weights.

    >>> round(member_sparsity(0.9, 5), 6)
    0.98
    """
    from hvgp.sparsity import check_sparsity

    if isinstance(num_members, bool) or not isinstance(num_members, int) or num_members < 1:
        raise ValueError(f"num_members must be a positive int, got {num_members!r}")
    return 1.0 - (1.0 - check_sparsity(sparsity)) / num_members


@register_model("ensemble-equal", kind="wrapper", aliases=("deep-ensemble-equal",),
                options=("num_members", "member"),
                help="M seeds at sparsity 1-(1-s)/M: one network's non-zero weights in all")
class EqualNonzeroEnsemble(DeepEnsemble):
    """A :class:`DeepEnsemble` whose M members share one network's budget of active weights.

    Each member is trained at ``member_sparsity(sparsity, M)``. :meth:`sparsity` reports the
    single-network equivalent ``s`` (one minus the members' active weights over one network's
    maskable weights), so a comparison table lists it beside the model it matches. Biases and
    other unmasked parameters are per member (they are outside the mask budget).
    """

    def __init__(self, factory: Callable[[], nn.Module], num_members: int = 5, *,
                 member: str | Callable[..., Estimator] = "rigl", sparsity: float = 0.0,
                 **kw: Any) -> None:
        self.member_sparsity = member_sparsity(sparsity, num_members)
        super().__init__(factory, num_members, member=member, sparsity=self.member_sparsity,
                         **kw)

    def sparsity(self) -> float:
        """``1 - (active weights of all members) / (maskable weights of one member)``."""
        from hvgp.nn.layers import masked_layers

        layers = [list(masked_layers(n).values()) for n in self.prediction_nets()]
        total = sum(layer.weight_mask.numel() for layer in layers[0]) if layers else 0
        active = sum(int(layer.weight_mask.sum()) for group in layers for layer in group)
        return 1.0 - active / total if total else 0.0

    def __repr__(self) -> str:
        return (f"EqualNonzeroEnsemble({self.num_members} x {self.members[0]!r}, "
                f"member_sparsity={self.member_sparsity:.4f})")
