"""Readable table of a topology: per-layer shape, size, active weights, density."""

from __future__ import annotations

from collections.abc import Mapping

import torch

__all__ = ["mask_table"]


def mask_table(masks: Mapping[str, torch.Tensor]) -> str:
    """Format name -> bool mask as a fixed-width table with a global total row.

    >>> print(mask_table({"fc.weight": torch.tensor([[True, False], [False, False]])}))
    layer      shape   numel  nnz  density
    ---------  ------  -----  ---  -------
    fc.weight  (2, 2)      4    1   0.2500
    ---------  ------  -----  ---  -------
    total                  4    1   0.2500
    global sparsity: 0.7500 (3 of 4 weights masked)
    """
    rows = []
    total = active = 0
    for name, mask in masks.items():
        n, k = mask.numel(), int(mask.sum())
        total, active = total + n, active + k
        rows.append([name, str(tuple(mask.shape)), str(n), str(k), f"{k / max(n, 1):.4f}"])
    header = ["layer", "shape", "numel", "nnz", "density"]
    footer = ["total", "", str(total), str(active), f"{active / max(total, 1):.4f}"]
    widths = [max(len(r[i]) for r in [header, footer, *rows]) for i in range(len(header))]

    def fmt(r: list[str]) -> str:
        left = [r[0].ljust(widths[0]), r[1].ljust(widths[1])]
        right = [c.rjust(w) for c, w in zip(r[2:], widths[2:])]
        return "  ".join(left + right).rstrip()

    rule = "  ".join("-" * w for w in widths)
    lines = [fmt(header), rule, *(fmt(r) for r in rows), rule, fmt(footer)]
    sp = 1.0 - active / max(total, 1)
    lines.append(f"global sparsity: {sp:.4f} ({total - active} of {total} weights masked)")
    return "\n".join(lines)
