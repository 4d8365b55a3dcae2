"""benchmarks/step_attribution.py's probes switch off exactly one part and restore it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import step_attribution as A  # noqa: E402

import hvgp.infer.trainer as trainer_module  # noqa: E402
from hvgp.nn.layers import MaskedLayer  # noqa: E402


@pytest.mark.parametrize("part", A.PARTS)
def test_a_probe_patches_inside_the_block_only(part: str) -> None:
    before = (trainer_module.hold_dropped_step_indexed, MaskedLayer._drop_connect)
    with A.switched_off(part):
        inside = (trainer_module.hold_dropped_step_indexed, MaskedLayer._drop_connect)
        assert sum(a is not b for a, b in zip(inside, before, strict=True)) == 1
    assert (trainer_module.hold_dropped_step_indexed, MaskedLayer._drop_connect) == before


def test_an_unknown_part_is_refused_and_nothing_is_patched() -> None:
    before = MaskedLayer._drop_connect
    with pytest.raises(ValueError, match="unknown part"), A.switched_off("everything"):
        pass
    assert MaskedLayer._drop_connect is before
