"""Predictive sampling over the random mask Z, returning :class:`hvgp.predict.PredictiveSamples`.

Vectorised: the guide and the model run once inside ``pyro.plate("samples", S, dim=-2)``,
so Z gets a leading sample axis and the masked layers evaluate S networks in one pass
(stacked weights become conv groups / batched matmuls). ``vectorize=False`` is the
Python-loop reference (same draws in distribution, less memory).
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import torch
from pyro import poutine

from hvgp.infer.model import SparseBNN
from hvgp.predict import PredictiveSamples

__all__ = ["predictive_samples", "sampled_predictive"]


def _to_samples(bnn: SparseBNN, out: torch.Tensor) -> PredictiveSamples:
    """Network outputs ``(S, N, C)`` / ``(S, N)`` as the likelihood's PredictiveSamples."""
    return bnn.likelihood.predictive(out)


@torch.no_grad()
def predictive_samples(
    bnn: SparseBNN,
    x: torch.Tensor,
    num_samples: int | None = None,
    vectorize: bool | None = None,
    chunk: int | None = None,
) -> PredictiveSamples:
    """Samples of the predictive distribution at inputs ``x``.

    :param bnn: the model whose network (current weights, masks, BatchNorm stats) is used.
    :param num_samples: ``None`` for the deterministic prediction (no random mask, the
        mean weights; S = 1), else the number S of random-mask draws.
    :param vectorize: one batched pass over all samples (``True``) or a Python loop;
        ``None`` vectorises on CUDA only (on CPU grouped convolutions made the batched pass
        slower than the loop: see ``benchmarks/predict_vectorised.py``).
    :param chunk: at most this many samples per vectorised pass (memory bound).
    """
    return _to_samples(bnn, _outputs(bnn, x, num_samples, vectorize, chunk))


@torch.no_grad()
def sampled_predictive(bnns: Sequence[SparseBNN], x: torch.Tensor) -> PredictiveSamples:
    """One draw of the random mask Z on each of ``bnns`` (e.g. SWAG weight samples, each
    with its own BatchNorm statistics), joined along the sample axis S = ``len(bnns)``."""
    if not bnns:
        raise ValueError("sampled_predictive needs at least one network")
    return _to_samples(bnns[0], torch.cat([_outputs(b, x, 1, False, None) for b in bnns]))


def _outputs(bnn: SparseBNN, x: torch.Tensor, num_samples: int | None,
             vectorize: bool | None, chunk: int | None) -> torch.Tensor:
    """Network outputs ``(S, N, ...)`` of :func:`predictive_samples` (before the likelihood)."""
    was_training = bnn.training
    bnn.eval()
    try:
        x = x.to(next(bnn.net.parameters()).device)
        if num_samples is None:
            out = bnn.net(x)
            out = out.squeeze(-1) if not bnn.likelihood.is_classification else out
            return out.unsqueeze(0)
        if not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be None or a positive int, got {num_samples!r}")
        parts = []
        if vectorize is None:
            vectorize = x.device.type == "cuda"
        if vectorize:
            step = num_samples if chunk is None else max(1, int(chunk))
            for start in range(0, num_samples, step):
                s = min(step, num_samples - start)
                with poutine.block(), pyro.plate("samples", s, dim=-2):
                    out = _run(bnn, x)
                parts.append(out if out.dim() == (3 if bnn.likelihood.is_classification else 2)
                             else out.unsqueeze(0))
        else:
            for _ in range(num_samples):
                with poutine.block():
                    parts.append(_run(bnn, x).unsqueeze(0))
        return torch.cat(parts, 0)
    finally:
        bnn.train(was_training)


def _run(bnn: SparseBNN, x: torch.Tensor) -> torch.Tensor:
    """Guide, then the model (up to the likelihood) replayed on the guide's weights (Z drawn
    afresh)."""
    guide_trace = poutine.trace(bnn.guide).get_trace(x)
    return poutine.replay(bnn.outputs, trace=guide_trace)(x)
