"""Dense network and W-DP (dropout on weights at train time): settings of the CigL estimator.

Both are the package's SVI trainer with some of CigL's parts switched off, so they share its
training loop, checkpoints and prediction code:

- :class:`Dense`: no deterministic mask (sparsity 0), no random mask, no averaging.
- :class:`WDP`: the random mask Z (DropConnect on the active weights, rate ``drop_rate``)
  during training only, no averaging; prediction is the deterministic network. At
  ``sparsity > 0`` it is RigL with weight dropout (the paper's W-DP row).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hvgp.baselines.nn._common import fix_kwargs
from hvgp.infer import CigL, RigL
from hvgp.predict import PredictiveSamples
from hvgp.registry import register_model

__all__ = ["WDP", "Dense"]


@register_model("dense", help="dense network (sparsity 0)")
class Dense(RigL):
    """A dense network trained by SVI with a point-mass guide (= SGD with weight decay).

    :param net: the network (masked :mod:`hvgp.nn` layers or plain torch layers).
    :param kw: any keyword of :class:`hvgp.infer.CigL` (``lr``, ``weight_decay``,
        ``schedule``, ``device``, ``seed``...); ``sparsity``, ``drop_rate`` and
        ``averaging`` are fixed to 0 / 0 / False.
    """

    def __init__(self, net: nn.Module, **kw: Any) -> None:
        fix_kwargs(kw, "Dense", sparsity=0.0, drop_rate=0.0, averaging=False)
        super().__init__(net, **kw)


@register_model("wdp", aliases=("w-dp",), reads={"drop_rate": "drop_rate"},
                help="weight dropout at train time only")
class WDP(CigL):
    """W-DP: weight dropout (CigL's random mask) while training, deterministic prediction.

    :param net: the network.
    :param sparsity: global sparsity of the RigL mask (0: dense network).
    :param kw: keywords of :class:`hvgp.infer.CigL`; ``drop_rate`` is the weight-dropout
        rate (CigL's default unless given); ``averaging`` is fixed to False.
    """

    def __init__(self, net: nn.Module, sparsity: float = 0.0, **kw: Any) -> None:
        fix_kwargs(kw, "WDP", averaging=False)
        super().__init__(net, sparsity, **kw)

    def predict(
        self, x: torch.Tensor, num_samples: int | None = None, **kw: Any
    ) -> PredictiveSamples:
        """The deterministic prediction (S = 1) whatever ``num_samples``: dropout is train-only."""
        return super().predict(x, None, **kw)
