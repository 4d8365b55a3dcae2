"""Shared test set-up: headless plotting, one thread per test process, fixed seeds."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HVGP_QUICK", "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)  # faster than 2 on the shared 2-core CI machines


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Every test starts from the same RNG state (torch, numpy, python, pyro)."""
    from hvgp.utils import seed_everything

    seed_everything(0)
