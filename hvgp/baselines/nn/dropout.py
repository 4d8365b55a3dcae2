"""MC dropout (Gal & Ghahramani 2016): dropout on units, kept on at prediction, S samples.

Composed on top of any :mod:`hvgp.nn` network without changing it: :func:`add_mc_dropout`
wraps every masked layer except the first in :class:`DropoutBefore`, i.e. dropout is applied
to the input of every weight layer after the first. For a feed-forward net (MLP, CNN1d) that
is exactly "dropout after every hidden activation"; for residual nets it is dropout before
every convolution (shortcuts included) and before the classifier. The dropout ignores
``train()``/``eval()`` (always on), so each forward pass is one sample of the predictive.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hvgp.infer import RigL
from hvgp.nn import masked_layers, to_masked
from hvgp.predict import PredictiveSamples
from hvgp.registry import register_model

__all__ = ["DropoutBefore", "MCDropout", "add_mc_dropout"]


def _check_rate(p: float, what: str = "dropout") -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 < p < 1.0:
        raise ValueError(f"{what} rate must be a number in (0, 1), got {p!r}")
    return float(p)


class DropoutBefore(nn.Module):
    """``layer(dropout(x, p))`` with dropout on in training *and* evaluation mode.

    :param layer: the wrapped layer (its parameters keep their names under ``.layer``).
    :param p: probability of zeroing a unit (survivors scaled by ``1 / (1 - p)``).
    """

    def __init__(self, layer: nn.Module, p: float) -> None:
        super().__init__()
        self.p = _check_rate(p)
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(F.dropout(x, self.p, training=True))

    def extra_repr(self) -> str:
        return f"p={self.p}"


def add_mc_dropout(net: nn.Module, p: float) -> nn.Module:
    """Wrap every masked layer of ``net`` but the first in :class:`DropoutBefore` (in place).

    Plain torch layers are converted to masked ones first. Returns ``net``.

    >>> from hvgp.nn import build_model
    >>> net = add_mc_dropout(build_model("mlp", (4,), 2, width=0.1), 0.2)
    >>> type(net[3]).__name__, type(net[1]).__name__
    ('DropoutBefore', 'MaskedLinear')
    """
    p = _check_rate(p)
    if not isinstance(net, nn.Module):
        raise TypeError(f"net must be a torch.nn.Module, got {type(net).__name__}")
    if not masked_layers(net):
        net = to_masked(net)
    names = list(masked_layers(net))
    if any(isinstance(m, DropoutBefore) for m in net.modules()):
        raise ValueError("the network already has MC dropout layers")
    if len(names) < 2 or "" in names:
        raise ValueError("MC dropout needs a network with at least two weight layers "
                         f"(hidden units to drop); found {len(names)}")
    for name in names[1:]:
        parent_name, _, attr = name.rpartition(".")
        parent = net.get_submodule(parent_name)
        setattr(parent, attr, DropoutBefore(getattr(parent, attr), p))
    return net


@register_model("mc-dropout", aliases=("mcdropout",), options=("dropout",),
                help="unit dropout kept on at test, S passes")
class MCDropout(RigL):
    """MC dropout baseline: unit dropout in training and at prediction, averaged over S passes.

    :param net: the network; it is modified in place by :func:`add_mc_dropout`.
    :param dropout: unit-dropout rate in (0, 1).
    :param num_samples: S, the number of stochastic passes ``predict`` makes by default.
    :param sparsity: global sparsity of the RigL mask (0: dense network).
    :param kw: keywords of :class:`hvgp.infer.CigL` (RigL defaults: no weight dropout,
        no averaging).
    """

    def __init__(
        self,
        net: nn.Module,
        dropout: float = 0.1,
        num_samples: int = 32,
        *,
        sparsity: float = 0.0,
        **kw: Any,
    ) -> None:
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
        self.num_samples = num_samples
        self.dropout = _check_rate(dropout)
        super().__init__(add_mc_dropout(net, dropout), sparsity, **kw)

    def predict(
        self, x: torch.Tensor, num_samples: int | None = None, **kw: Any
    ) -> PredictiveSamples:
        """``num_samples`` (default: the constructor's S) dropout passes, as S samples.

        :param kw: :meth:`hvgp.infer.CigL.predict`'s other keywords (``vectorize``, ``current``).
        """
        s = self.num_samples if num_samples is None else num_samples
        return super().predict(x, s, **kw)

    def _samples_vary(self) -> bool:
        """Dropout makes every pass different (RigL's warning about identical draws is moot)."""
        return self.dropout > 0 or super()._samples_vary()
