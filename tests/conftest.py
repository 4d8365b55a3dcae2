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


@pytest.fixture(scope="module")
def private_hvgp_cache(tmp_path_factory: pytest.TempPathFactory):
    """A module's generated data go to their own cache folder (never the user's)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HVGP_CACHE", str(tmp_path_factory.mktemp("hvgp-cache")))
        yield
