"""Sparse topology: which weights exist. Pure torch, no Pyro.

Masks are allocated per layer (ERK / ER / uniform, exact integer counts), stored as bool
buffers ``<param>_mask`` on the owning modules, and rewired by RigL / SET / Static updaters
that keep every layer's count fixed. This is the only place the topology changes.
"""

from .allocation import ALLOCATION_METHODS, allocate_counts, allocate_densities, check_sparsity
from .registry import (
    default_maskable_types,
    mask_buffer_name,
    maskable_parameters,
    register_maskable_type,
)
from .schedule import DropFractionSchedule
from .summary import mask_table
from .topology import SparseTopology
from .updaters import SET, UPDATERS, RigL, Static, TopologyUpdater, make_updater

__all__ = [
    "ALLOCATION_METHODS",
    "SET",
    "UPDATERS",
    "DropFractionSchedule",
    "RigL",
    "SparseTopology",
    "Static",
    "TopologyUpdater",
    "allocate_counts",
    "allocate_densities",
    "check_sparsity",
    "default_maskable_types",
    "make_updater",
    "mask_buffer_name",
    "mask_table",
    "maskable_parameters",
    "register_maskable_type",
]
