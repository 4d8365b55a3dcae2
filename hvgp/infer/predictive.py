"""Predictive sampling over the random mask Z, returning :class:`hvgp.predict.PredictiveSamples`.

With the point-mass guide (the weights are the parameters themselves) the only random
sites are the masks: Z for S samples is drawn through the Pyro program's mask sites
(:meth:`SparseBNN.sample_masks`, one ``pyro.sample`` per layer in a ``samples`` plate,
active weights only), then the network is evaluated on those draws one of two ways:

- *vectorised*: one stacked pass over the S samples (stacked weights become batched
  matmuls / conv groups), in chunks of samples whose activations fit a memory budget;
- *looped*: a plain torch loop over the S samples, the mask applied inside the layers
  (no Pyro call, no ``functional_call`` per sample).

Both see the same Z for the same seed, so they agree to float rounding; which is faster
depends on the architecture, the device and the sizes (:func:`choose_vectorize`: CUDA, or
on the CPU a convolutional network whose stacked activations are small; see
``benchmarks/predict_vectorised.py``). Z is drawn in chunks bounded by
:data:`MASK_BUDGET_BYTES` too, chosen from the network's size and S only, so chunking never
changes the draws. Other guides run the full program (guide, then the model replayed on
its weights) per sample or in a plate, as before. Outer Pyro handlers do not see prediction's
sites (``poutine.block``); trace :meth:`SparseBNN.sample_masks` to see them.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import torch
from pyro import poutine
from torch import nn

from hvgp.infer.guide import PointMassGuide
from hvgp.infer.model import SparseBNN
from hvgp.nn.layers import weight_factors
from hvgp.predict import PredictiveSamples

__all__ = ["choose_vectorize", "predictive_samples", "sampled_predictive"]

#: at most this many bytes of random masks (and their factors) are drawn at once
MASK_BUDGET_BYTES = 256 * 2**20
#: activation bytes one vectorised pass may hold, on the CPU (CUDA: a quarter of free memory,
#: at most 4 GiB)
CPU_ACTIVATION_BUDGET_BYTES = 256 * 2**20
#: on the CPU a convolutional network is vectorised while its stacked activations fit this
CPU_VECTORISE_BYTES = 32 * 2**20


def _to_samples(bnn: SparseBNN, out: torch.Tensor) -> PredictiveSamples:
    """Network outputs ``(S, N, C)`` / ``(S, N)`` as the likelihood's PredictiveSamples."""
    return bnn.likelihood.predictive(out)


def choose_vectorize(bnn: SparseBNN, x: torch.Tensor, num_samples: int) -> bool:
    """Whether the stacked pass over ``num_samples`` masks is the faster one here.

    CUDA: vectorised. CPU (measured on a 2-core VM, ``benchmarks/predict_vectorised.py``):
    networks without convolutions (MLPs) loop, since S stacked weight copies leave the cache
    while one sample's stay in it (the loop was 1.2-1.5x faster at S = 32, N = 16-256);
    convolutional networks are vectorised only while the stacked activations are small
    (at most :data:`CPU_VECTORISE_BYTES`; the 1-D CNN at S = 32: 1.5x faster than the loop at
    N = 16, 0.4x at N = 256, where grouped convolutions and cache spills dominate).
    """
    if x.device.type == "cuda":
        return True
    if not any(isinstance(layer, nn.modules.conv._ConvNd) for layer in bnn.layers.values()):
        return False
    return _activation_bytes(bnn, x) * x.shape[0] * num_samples <= CPU_VECTORISE_BYTES


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
    :param vectorize: one stacked pass over the samples (``True``) or a loop; ``None``:
        :func:`choose_vectorize` picks by architecture and device.
    :param chunk: at most this many samples per vectorised pass (default: as many as fit
        the activation budget).
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
            return _squeeze(bnn, bnn.net(x)).unsqueeze(0)
        if not isinstance(num_samples, int) or isinstance(num_samples, bool) \
                or num_samples < 1:
            raise ValueError(f"num_samples must be None or a positive int, got {num_samples!r}")
        if chunk is not None and (not isinstance(chunk, int) or chunk < 1):
            raise ValueError(f"chunk must be None or a positive int, got {chunk!r}")
        if vectorize is None:
            vectorize = choose_vectorize(bnn, x, num_samples)
        if type(bnn.guide) is not PointMassGuide:
            return _program_outputs(bnn, x, num_samples, vectorize, chunk)
        if not bnn.mask_sites:  # no Z: S passes (the net may be random itself: MC dropout)
            return torch.stack([_squeeze(bnn, bnn.net(x)) for _ in range(num_samples)])
        parts, draw = [], _mask_chunk(bnn, num_samples)
        for start in range(0, num_samples, draw):
            s = min(draw, num_samples - start)
            with poutine.block():
                zs = bnn.sample_masks(s)
            parts.append(_evaluate(bnn, x, zs, vectorize, chunk))
        return torch.cat(parts, 0)
    finally:
        bnn.train(was_training)


def _squeeze(bnn: SparseBNN, out: torch.Tensor) -> torch.Tensor:
    """Regression outputs ``(..., N, 1)`` -> ``(..., N)``; logits unchanged."""
    return out if bnn.likelihood.is_classification else out.squeeze(-1)


def _mask_chunk(bnn: SparseBNN, num_samples: int) -> int:
    """Samples of Z drawn at once: Z and its factor for every layer within the budget."""
    per_sample = sum(2 * layer.weight.numel() * layer.weight.element_size()
                     for name, layer in bnn.layers.items() if bnn.drop_rates[name] > 0)
    return max(1, min(num_samples, MASK_BUDGET_BYTES // max(1, per_sample)))


def _evaluate(bnn: SparseBNN, x: torch.Tensor, zs: dict[str, torch.Tensor], vectorize: bool,
              chunk: int | None) -> torch.Tensor:
    """Outputs ``(S, N, ...)`` of the network under the stacked masks ``zs`` (``(S, *w)``)."""
    scaled, factors = _scaled_weights(bnn, zs)
    s = next(iter(zs.values())).shape[0]

    def used(rows: slice | int) -> dict[str, torch.Tensor]:
        """The weights of samples ``rows``: ``Z * U / (1 - p)`` (or ``U * factor``)."""
        out = {n: zs[n][rows] * w for n, w in scaled.items()}
        out.update({n: bnn.layers[n].weight * f[rows] for n, f in factors.items()})
        return out

    if not vectorize:
        outs = []
        for i in range(s):
            with weight_factors(bnn.layers, used(i), replace=True):
                outs.append(bnn.net(x))
        return _squeeze(bnn, torch.stack(outs))
    step = chunk if chunk is not None else _activation_chunk(bnn, x, s)
    parts = []
    for i in range(0, s, step):
        weights = used(slice(i, i + step))
        c = next(iter(weights.values())).shape[0]
        flat = x.unsqueeze(0).expand(c, *x.shape).reshape(c * x.shape[0], *x.shape[1:])
        with weight_factors(bnn.layers, weights, replace=True):
            out = bnn.net(flat)
        parts.append(out.reshape(c, x.shape[0], *out.shape[1:]))
    return _squeeze(bnn, torch.cat(parts, 0))


def _scaled_weights(bnn: SparseBNN, zs: dict[str, torch.Tensor],
                    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Per layer either ``U / (1 - p)`` (then a sample's weight is ``Z * U / (1 - p)``: exact
    when the inactive weights are 0, as the topology keeps them) or, where an inactive
    weight is not 0, the factors ``where(M, Z / (1 - p), 1)`` of every sample."""
    scaled, odd = {}, {}
    for name, z in zs.items():
        layer = bnn.layers[name]
        w, m = layer.weight, layer.weight_mask
        if bool(torch.where(m, 0.0, w).any()):
            odd[name] = z
        else:
            scaled[name] = w / (1.0 - bnn.drop_rates[name])
    return scaled, bnn.mask_factors(odd)


def _activation_chunk(bnn: SparseBNN, x: torch.Tensor, num_samples: int) -> int:
    """Samples per stacked pass whose activations fit the budget (of free memory on CUDA)."""
    if x.device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(x.device)
        budget = min(free // 4, 4 * 2**30)
    else:
        budget = CPU_ACTIVATION_BUDGET_BYTES
    per_sample = max(1, _activation_bytes(bnn, x) * x.shape[0])
    return max(1, min(num_samples, budget // per_sample))


@torch.no_grad()
def _activation_bytes(bnn: SparseBNN, x: torch.Tensor) -> int:
    """Bytes of every leaf module's output (and the input) for one example of ``x``, from
    one forward pass in eval mode (an upper bound on what a pass holds at once)."""
    total = x[:1].numel() * x.element_size()

    def count(_module: nn.Module, _inputs: object, out: object) -> None:
        nonlocal total
        if torch.is_tensor(out):
            total += out.numel() * out.element_size()

    was_training = bnn.net.training
    leaves = [m for m in bnn.net.modules() if next(m.children(), None) is None]
    hooks = [m.register_forward_hook(count) for m in leaves]
    try:
        bnn.net.eval()
        bnn.net(x[:1])
    finally:
        for h in hooks:
            h.remove()
        bnn.net.train(was_training)
    return total


def _program_outputs(bnn: SparseBNN, x: torch.Tensor, num_samples: int, vectorize: bool,
                     chunk: int | None) -> torch.Tensor:
    """The full program (guide, then the model replayed on its weights) per sample or in a
    ``samples`` plate: any guide, e.g. one whose weights are random too."""
    parts = []
    if vectorize:
        step = num_samples if chunk is None else chunk
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


def _run(bnn: SparseBNN, x: torch.Tensor) -> torch.Tensor:
    """Guide, then the model (up to the likelihood) replayed on the guide's weights (Z drawn
    afresh)."""
    guide_trace = poutine.trace(bnn.guide).get_trace(x)
    return poutine.replay(bnn.outputs, trace=guide_trace)(x)
