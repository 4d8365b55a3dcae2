"""Data-parallel training: 2 gloo ranks on CPU agree on masks and match one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from _train_script import spawn_worker, tiny_data, tiny_estimator

from hvgp.distributed import fit_distributed, init_distributed, rank_seed

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_two_ranks(tmp_path: Path, arch: str, drop_rate: float, epochs: int = 3) -> list[dict]:
    mp.spawn(spawn_worker, args=(2, _free_port(), str(tmp_path), arch, drop_rate, 8, epochs),
             nprocs=2, join=True)
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]


def _masks(state: dict) -> dict:
    return {k: v for k, v in state.items() if k.endswith("_mask")}


def test_two_ranks_match_one_process_with_the_same_global_batch(tmp_path: Path) -> None:
    ranks = _run_two_ranks(tmp_path, "mlp", drop_rate=0.0)
    # ranks are identical, bit for bit, after every topology update and at the end
    assert ranks[0]["digests"] == ranks[1]["digests"]
    assert len(ranks[0]["digests"]) >= 2, "the topology never changed: the test is vacuous"
    for k, v in ranks[0]["current"].items():
        assert torch.equal(v, ranks[1]["current"][k]), k
    # one process, global batch 16 = 2 ranks x 8, same order of points
    est, sync = fit_distributed(tiny_estimator("mlp", 0.0), tiny_data(), 3, 16, shuffle=False)
    single = {k: v.detach() for k, v in est.model_.state_dict().items()}
    assert [d for _, d in sync.digests] == [d for _, d in ranks[0]["digests"]]
    for k, v in single.items():
        if k.endswith("_mask"):
            assert torch.equal(v, ranks[0]["state"][k]), k
        else:
            torch.testing.assert_close(ranks[0]["state"][k], v, rtol=1e-4, atol=1e-5)


def test_two_ranks_with_random_masks_keep_identical_masks_and_weights(tmp_path: Path) -> None:
    ranks = _run_two_ranks(tmp_path, "cnn1d", drop_rate=0.2, epochs=2)
    assert ranks[0]["digests"] == ranks[1]["digests"]
    assert len(ranks[0]["digests"]) >= 2
    for k, v in _masks(ranks[0]["state"]).items():
        assert torch.equal(v, ranks[1]["state"][k]), k
    for k, v in ranks[0]["current"].items():  # held dropped weights agree too
        assert torch.equal(v, ranks[1]["current"][k]), k


def test_rank_seeds_differ_per_rank_and_epoch() -> None:
    seeds = {rank_seed(0, r, e) for r in range(4) for e in range(4)}
    assert len(seeds) == 16
    assert rank_seed(3, 1, 2) == rank_seed(3, 1, 2)


def test_nccl_without_cuda_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="CUDA"):
        init_distributed("nccl", "cpu")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        init_distributed("auto", "cuda")


def test_torchrun_entry_point_trains_and_exports(tmp_path: Path) -> None:
    port = _free_port()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(port),
           "-m", "hvgp.distributed", "--data", "moons", "--data-n", "160", "--arch", "mlp",
           "--width", "0.125", "--epochs", "2", "--batch-size", "32", "--delta-t", "2",
           "--drop-rate", "0.1", "--device", "cpu", "--out", str(tmp_path)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and 0.0 <= metrics["accuracy"] <= 1.0
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2))
    assert r0["digests"] == r1["digests"]
    assert (tmp_path / "model.pt").is_file() and (tmp_path / "checkpoint.pt").is_file()
