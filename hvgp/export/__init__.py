"""Sparse export: CSR inference twins of masked layers, and safe save / load of them."""

from hvgp.export.io import (
    ArchSpec,
    CorruptCheckpointError,
    UnsafeCheckpointError,
    load_model,
    load_posterior,
    read_weights_only,
    save_model,
)
from hvgp.export.sparse import (
    SparseConv1d,
    SparseConv2d,
    SparseLayer,
    SparseLinear,
    csr_from_mask,
    sparse_layers,
    to_sparse,
)

__all__ = [
    "ArchSpec",
    "CorruptCheckpointError",
    "SparseConv1d",
    "SparseConv2d",
    "SparseLayer",
    "SparseLinear",
    "UnsafeCheckpointError",
    "csr_from_mask",
    "load_model",
    "load_posterior",
    "read_weights_only",
    "save_model",
    "sparse_layers",
    "to_sparse",
]
