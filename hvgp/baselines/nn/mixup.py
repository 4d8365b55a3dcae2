"""Mixup (Zhang et al. 2018): train on convex combinations of pairs of points and labels.

The least machinery that reuses the package's trainer unchanged: a loader wrapper,
:class:`MixupLoader`, turns each batch ``(x, y)`` into ``(lam x + (1 - lam) x[perm],
lam onehot(y) + (1 - lam) onehot(y[perm]))`` with one ``lam ~ Beta(a, a)`` per batch
(``a`` = ``mixup_alpha``)
and a random pairing ``perm``; the likelihood is the soft-target cross-entropy
(:class:`~hvgp.baselines.nn.smoothing.SoftTargetLikelihood`), whose loss on a mixed target
is exactly mixup's ``lam CE(y) + (1 - lam) CE(y[perm])``. ``mixup_alpha = 0`` gives ``lam = 1``:
the plain model, draw for draw. The wrapper uses its own seeded generator, so mixing never
shifts the global random stream that shuffling, dropout and the random mask use.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hvgp.baselines.nn.smoothing import SoftTargetLikelihood
from hvgp.infer import RigL
from hvgp.nn import masked_layers, to_masked
from hvgp.registry import register_model

__all__ = ["Mixup", "MixupLoader"]


def _check_alpha(alpha: float) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not (
        alpha >= 0 and math.isfinite(alpha)
    ):
        raise ValueError(f"mixup alpha must be a finite number >= 0, got {alpha!r}")
    return float(alpha)


class MixupLoader:
    """Wraps a loader of ``(x, y)`` class-label batches; yields mixed inputs, soft targets.

    Every other attribute (``dataset``, ``batch_size``, the shuffling ``generator``...) and
    ``len`` are the wrapped loader's, so the trainer sees the same data-set size, number of
    steps and (for checkpoints) shuffling state; the mixing draws come from the wrapper's own
    NumPy / torch generators, which checkpoints do not hold (a resumed mixup run re-draws).

    :param loader: the training loader (integer labels).
    :param num_classes: C, the width of the soft targets.
    :param alpha: Beta(alpha, alpha) concentration; 0 disables mixing (one-hot targets).
    :param seed: seed of the wrapper's own generator (lam and the pairing).
    """

    def __init__(self, loader: Iterable, num_classes: int, alpha: float, seed: int = 0) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        self.loader, self.num_classes = loader, num_classes
        self.alpha = _check_alpha(alpha)
        self._rng = np.random.default_rng(int(seed))  # lam
        self._perm = torch.Generator().manual_seed(int(seed))  # pairing

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:
        if name == "loader":  # not set yet (e.g. during unpickling)
            raise AttributeError(name)
        return getattr(self.loader, name)

    def mix(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One mixed batch: inputs and ``(B, C)`` soft targets."""
        if y.is_floating_point() or y.dim() != 1:
            raise ValueError(f"mixup needs integer class labels of shape (B,), got {y.dtype} "
                             f"{tuple(y.shape)}")
        target = F.one_hot(y.long(), self.num_classes).to(x.dtype if x.is_floating_point()
                                                          else torch.float32)
        if self.alpha == 0:
            return x, target
        lam = float(self._rng.beta(self.alpha, self.alpha))
        perm = torch.randperm(x.shape[0], generator=self._perm).to(x.device)
        return lam * x + (1 - lam) * x[perm], lam * target + (1 - lam) * target[perm]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.loader:
            yield self.mix(x, y)


@register_model("mixup", options=("mixup_alpha",), help="train on mixed pairs of points")
class Mixup(RigL):
    """Mixup baseline: the network trained on mixed pairs with soft-target cross-entropy.

    :param net: the network.
    :param mixup_alpha: Beta(a, a) concentration ``a`` of the mixing weight (0: no mixing);
        not the RigL drop fraction (``drop_fraction``).
    :param num_classes: C; default: the output width of the network's last masked layer.
    :param sparsity: global sparsity of the RigL mask (0: dense network).
    :param kw: keywords of :class:`hvgp.infer.CigL`; ``likelihood`` is fixed (soft targets).
    """

    def __init__(
        self,
        net: nn.Module,
        mixup_alpha: float = 0.2,
        num_classes: int | None = None,
        *,
        sparsity: float = 0.0,
        **kw: Any,
    ) -> None:
        self.mixup_alpha = _check_alpha(mixup_alpha)
        if isinstance(net, nn.Module) and not masked_layers(net):
            net = to_masked(net)
        if num_classes is None and isinstance(net, nn.Module):
            last = list(masked_layers(net).values())[-1]
            num_classes = getattr(last, "out_features", None) or last.out_channels
        self.num_classes = num_classes
        if "likelihood" in kw and not isinstance(kw["likelihood"], SoftTargetLikelihood):
            raise ValueError(f"Mixup trains a soft-target likelihood; got likelihood="
                             f"{kw['likelihood']!r}")
        kw.setdefault("likelihood", SoftTargetLikelihood())
        super().__init__(net, sparsity, **kw)
        MixupLoader([], num_classes, self.mixup_alpha)  # validates num_classes now, not at fit

    def fit(self, train_loader: Any, epochs: int, resume: Any = None,
            val_loader: Any = None) -> Mixup:
        """Train on mixed batches of ``train_loader`` (see :class:`MixupLoader`)."""
        mixed = MixupLoader(train_loader, self.num_classes, self.mixup_alpha, seed=self.seed)
        super().fit(mixed, epochs, resume=resume, val_loader=val_loader)
        return self
