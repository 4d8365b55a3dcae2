"""``compare(workers=N)`` / ``hvgp compare --workers``: same results as one process."""

from __future__ import annotations

from pathlib import Path

import pytest

from hvgp.config import RunConfig
from hvgp.experiment import compare

BASE = RunConfig(data="moons", arch="mlp", width=0.25, epochs=1, batch_size=64,
                 sparsity=0.5, device="cpu")


def test_workers_give_the_same_results_as_one_process(tmp_path: Path) -> None:
    one = compare(["rigl", "dense"], "moons", seeds=[0, 1], base=BASE)
    two = compare(["rigl", "dense"], "moons", seeds=[0, 1], base=BASE, workers=2,
                  out=tmp_path / "cmp", reference="dense")
    assert [(r.config.model, r.config.seed) for r in two] == \
        [(r.config.model, r.config.seed) for r in one]
    for a, b in zip(one, two):
        assert a.metrics["accuracy"] == b.metrics["accuracy"]
        assert a.metrics["nll"] == pytest.approx(b.metrics["nll"], rel=1e-6)
    table = (tmp_path / "cmp" / "table.md").read_text()
    assert "| model − dense |" in table and "model − rigl" not in table  # --reference kept
    assert (tmp_path / "cmp" / "rigl-s1" / "metrics.json").is_file()


@pytest.mark.parametrize("workers", [0, -1, 1.5])
def test_bad_worker_count_is_refused_before_anything_trains(tmp_path: Path,
                                                            workers: float) -> None:
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        compare(["rigl"], "moons", seeds=[0], base=BASE, workers=workers,  # type: ignore
                out=tmp_path / "cmp")
    assert not (tmp_path / "cmp" / "rigl-s0").exists()


def test_a_reference_that_is_not_compared_is_refused_before_anything_trains(tmp_path) -> None:
    with pytest.raises(ValueError, match="reference 'cigl' is not among the compared models"):
        compare(["rigl"], "moons", seeds=[0], base=BASE, out=tmp_path / "c", reference="cigl")
    assert not (tmp_path / "c" / "rigl-s0").exists()


def test_the_reference_may_be_spelled_as_the_registry_accepts_it(tmp_path: Path) -> None:
    """A reference in another case (or an alias) pairs against the canonical model."""
    compare(["rigl", "dense"], "moons", seeds=[0, 1], base=BASE, out=tmp_path / "c",
            reference="DENSE")
    assert "| model − dense |" in (tmp_path / "c" / "table.md").read_text()
