"""Shared test set-up: headless plotting, one thread per test process, fixed seeds."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HVGP_QUICK", "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Every test starts from the same RNG state (torch, numpy, python, pyro)."""
    from hvgp.utils import seed_everything

    seed_everything(0)
