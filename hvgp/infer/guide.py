"""The mask-structured guide: a point mass on each layer's weight (q's sigma -> 0 limit).

q(w | Z, U, M) = Z N(M U, s^2) + (1 - Z) N(0, s^2) with s -> 0. The deterministic mask M is
guide *structure*: it is applied to U by the topology engine (weights outside M are held at
exactly 0), so the point mass sits at ``U = layer.weight``. Z ~ Bernoulli(1 - p) has no free
parameters and q(Z) = p(Z), so it is drawn in the model (its log-densities cancel). The
guide's weight value is the nn.Parameter itself, so gradients of the ELBO flow straight
into the network (no global param store).
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
from torch import nn

from hvgp.nn.layers import masked_layers

__all__ = ["PointMassGuide", "weight_site"]


def weight_site(layer_name: str) -> str:
    """Pyro site name of a masked layer's weight."""
    return f"{layer_name}.weight" if layer_name else "weight"


class PointMassGuide:
    """``Delta(U).to_event(k)`` for every masked layer of ``net``.

    :param net: a network with :class:`hvgp.nn.MaskedLayer` layers.
    """

    def __init__(self, net: nn.Module) -> None:
        self.net = net
        self.layers = masked_layers(net)
        if not self.layers:
            raise TypeError("the network has no masked layers (build it with hvgp.nn)")

    def __call__(self, *args, **kwargs) -> None:
        for name, layer in self.layers.items():
            w = layer.weight
            pyro.sample(weight_site(name), dist.Delta(w, event_dim=w.dim()))
