"""Save / load a trained sparse network: arch spec + CSR weights + dense rest, weights-only.

Why this format: a file must rebuild the network on its own (so it stores *how* the network
was built, an :class:`ArchSpec`, not a pickled module), keep the masks exactly, be small
(only active weights are stored, as CSR row pointers / column indices / values), and be safe
to open: it holds tensors and plain containers only and is read with
``torch.load(..., weights_only=True)``, so opening a file never runs code from it. Writes are
atomic (temp file + rename): an interrupted save never leaves a half-written file.

File layout (``format = "hvgp-sparse"`` or ``"hvgp-masked"``, ``version = 1``)::

    {"format", "version", "arch": {arch, input_shape, num_classes, width},
     "sparse": {layer: {"shape", "crow", "col", "values"}}   # hvgp-sparse: masked layers
     "state": {...},                                         # every other state entry
     "posterior": {...}}   # optional (save_model(posterior=True)): the estimator's
                           # "variational_posterior" (σ of the active weights, flat in the
                           # CSR values' order) and / or "swag_posterior" (SWAG's moments)
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hvgp.export.sparse import csr_tensor, to_sparse
from hvgp.infer.checkpoint import (
    CorruptCheckpointError,
    UnsafeCheckpointError,
    read_weights_only,
    save_checkpoint,
)
from hvgp.nn import build_model, masked_layers
from hvgp.utils import resolve_device

__all__ = [
    "POSTERIOR_KEYS",
    "ArchSpec",
    "CorruptCheckpointError",
    "UnsafeCheckpointError",
    "load_model",
    "read_weights_only",
    "save_model",
]

FORMATS = ("hvgp-sparse", "hvgp-masked")
VERSION = 1


@dataclass(frozen=True)
class ArchSpec:
    """How to rebuild a network: the arguments of :func:`hvgp.nn.build_model`.

    >>> ArchSpec("mlp", (40,), 10, 0.25).build()[1]
    MaskedLinear(in_features=40, out_features=64, bias=True)
    """

    arch: str
    input_shape: tuple[int, ...]
    num_classes: int
    width: float = 1.0

    @classmethod
    def coerce(cls, spec: ArchSpec | Mapping[str, Any]) -> ArchSpec:
        """An ``ArchSpec`` from itself or a plain mapping (as stored in a file)."""
        if isinstance(spec, ArchSpec):
            return spec
        if not isinstance(spec, Mapping):
            raise TypeError(f"arch must be an ArchSpec or a mapping, got {type(spec).__name__}")
        unknown = set(spec) - {"arch", "input_shape", "num_classes", "width"}
        if unknown:
            raise ValueError(f"unknown arch spec keys {sorted(unknown)}")
        try:
            return cls(str(spec["arch"]), tuple(int(d) for d in spec["input_shape"]),
                       int(spec["num_classes"]), float(spec.get("width", 1.0)))
        except KeyError as err:
            raise ValueError(f"arch spec lacks {err.args[0]!r}") from None

    def build(self) -> nn.Module:
        """A freshly initialised network of this spec."""
        return build_model(self.arch, self.input_shape, self.num_classes, width=self.width)

    def to_plain(self) -> dict[str, Any]:
        """Plain-data form (lists, not tuples) for a weights-only file."""
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        return d


def _network(model: Any) -> nn.Module:
    """The network to export: a module, or an estimator's prediction network ``model_``."""
    if isinstance(model, nn.Module):
        return model
    net = getattr(model, "model_", None)
    if isinstance(net, nn.Module):
        return net
    raise TypeError(f"model must be an nn.Module or a fitted estimator, got {type(model).__name__}")


#: the parts of an estimator's ``state_dict`` that are its weight posterior (beyond the mean)
POSTERIOR_KEYS: tuple[str, ...] = ("variational_posterior", "swag_posterior")


def _posterior(model: Any) -> dict[str, Any]:
    """The weight posterior of a fitted estimator (its ``state_dict``'s posterior parts)."""
    state = model.state_dict() if not isinstance(model, nn.Module) else {}
    found = {k: state[k] for k in POSTERIOR_KEYS if k in state}
    if not found:
        raise ValueError("posterior=True needs an estimator fitted with posterior="
                         "'variational' or 'swag' (this model keeps no weight posterior)")
    return found


def load_posterior(path: str | os.PathLike) -> dict[str, Any]:
    """The weight posterior :func:`save_model` stored with ``posterior=True`` (``{}``: none);
    a variational posterior's ``scale[layer]`` lines up with that layer's CSR ``values``."""
    payload = read_weights_only(path)
    return dict(payload.get("posterior", {})) if isinstance(payload, dict) else {}


def _index_dtype(n: int) -> torch.dtype:
    return torch.int32 if n < 2**31 - 1 else torch.int64


def save_model(
    path: str | os.PathLike,
    model: Any,
    arch: ArchSpec | Mapping[str, Any] | None = None,
    sparse: bool = True,
    meta: Mapping[str, Any] | None = None,
    posterior: bool = False,
) -> Path:
    """Write ``model`` (masked network or fitted estimator) to ``path`` atomically.

    :param arch: how the network was built; defaults to the network's ``hvgp_arch``
        attribute when it has one.
    :param sparse: store masked layers as CSR (active weights only); ``False`` stores the
        dense weights and bool masks (the ``state_dict`` as is).
    :param meta: plain data (numbers, strings, lists, dicts) stored under ``"meta"``.
    :param posterior: also store a fitted estimator's weight posterior under ``"posterior"``
        (:data:`POSTERIOR_KEYS`; read back with :func:`load_posterior`); the network stored
        is the mean network either way.
    :returns: the path written.
    """
    net = _network(model)
    spec = getattr(net, "hvgp_arch", None) if arch is None else arch
    if spec is None:
        raise TypeError("pass arch=ArchSpec(arch, input_shape, num_classes, width): the network "
                        "does not record how it was built")
    spec = ArchSpec.coerce(spec)
    layers = masked_layers(net)
    if not layers:
        raise ValueError("the network has no masked layers (build it with hvgp.nn)")
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    payload: dict[str, Any] = {"format": FORMATS[0] if sparse else FORMATS[1],
                               "version": VERSION, "arch": spec.to_plain(),
                               "meta": dict(meta or {})}
    if sparse:
        blocks = {}
        for name in layers:
            prefix = f"{name}." if name else ""
            w, m = state.pop(prefix + "weight"), state.pop(prefix + "weight_mask")
            w2, m2 = w.reshape(w.shape[0], -1), m.reshape(m.shape[0], -1)
            rows, cols = m2.nonzero(as_tuple=True)
            crow = torch.zeros(w2.shape[0] + 1, dtype=torch.int64)
            crow[1:] = torch.cumsum(torch.bincount(rows, minlength=w2.shape[0]), 0)
            idx = _index_dtype(max(w2.shape[1], rows.numel()))
            blocks[name] = {"shape": list(w.shape), "crow": crow.to(idx), "col": cols.to(idx),
                            "values": w2[rows, cols].clone()}
        payload["sparse"] = blocks
    payload["state"] = state
    if posterior:
        payload["posterior"] = _posterior(model)
    return save_checkpoint(path, payload)


def _check_layers(net: nn.Module, blocks: Mapping[str, Any], path: Path) -> None:
    expected = {n: list(layer.weight.shape) for n, layer in masked_layers(net).items()}
    found = {n: list(b["shape"]) for n, b in blocks.items()}
    missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    shapes = [f"{n}: file {found[n]} vs network {expected[n]}"
              for n in sorted(set(found) & set(expected)) if found[n] != expected[n]]
    if missing or extra or shapes:
        raise ValueError(
            f"{str(path)!r} holds another architecture than its arch spec builds: missing "
            f"layers {missing}, unexpected layers {extra}, shape mismatches {shapes}"
        )


def _dense_from_csr(block: Mapping[str, Any], path: Path, name: str) -> tuple[torch.Tensor, ...]:
    shape = [int(d) for d in block["shape"]]
    rows, cols = shape[0], math.prod(shape[1:])
    values = block["values"]
    try:
        csr = csr_tensor(block["crow"].long(), block["col"].long(), values,
                                      (rows, cols), check_invariants=True)
        ones = csr_tensor(block["crow"].long(), block["col"].long(),
                                       torch.ones_like(values), (rows, cols),
                                       check_invariants=True)
    except (RuntimeError, ValueError, TypeError) as err:
        raise CorruptCheckpointError(
            f"{str(path)!r}: the CSR weights of layer {name!r} are invalid ({err})"
        ) from None
    return csr.to_dense().reshape(shape), (ones.to_dense() != 0).reshape(shape)


def load_model(
    path: str | os.PathLike, sparse: bool = True, map_location: Any = "cpu"
) -> nn.Module:
    """Rebuild the network saved by :func:`save_model` (weights-only load, masks exact).

    :param sparse: return the CSR inference network (:func:`~hvgp.export.to_sparse`);
        ``False`` returns the masked dense network (e.g. to fine-tune it).
    :param map_location: device of the returned network (``"cuda"`` without CUDA is an error).
    :raises ValueError: not an hvgp model file, or the weights do not fit its arch spec.
    """
    path = Path(path)
    device = resolve_device(map_location)  # fail before reading anything
    payload = read_weights_only(path)
    if isinstance(payload, dict) and "states" in payload and "config" in payload:
        raise ValueError(f"{str(path)!r} is the model.pt of an `hvgp train` run: load the run "
                         f"with hvgp.load_run({str(path.parent)!r}) (returns the estimator; "
                         "its .model_ is the prediction network)")
    if not isinstance(payload, dict) or payload.get("format") not in FORMATS:
        raise ValueError(f"{str(path)!r} is not an hvgp model file (expected format "
                         f"{' or '.join(FORMATS)}); training checkpoints resume with fit()")
    if payload.get("version") != VERSION:
        raise ValueError(f"{str(path)!r} has format version {payload.get('version')!r}; "
                         f"this hvgp reads version {VERSION}")
    net = ArchSpec.coerce(payload["arch"]).build()
    state = dict(payload["state"])
    if payload["format"] == "hvgp-sparse":
        _check_layers(net, payload["sparse"], path)
        for name, block in payload["sparse"].items():
            prefix = f"{name}." if name else ""
            state[prefix + "weight"], state[prefix + "weight_mask"] = _dense_from_csr(
                block, path, name)
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{str(path)!r} holds another architecture than its arch spec "
                         f"builds: {err}") from None
    net.hvgp_arch = ArchSpec.coerce(payload["arch"])  # type: ignore[assignment]
    net = net.to(device).eval()
    return to_sparse(net) if sparse else net
