"""The install keeps the pinned CPU torch: laplace-torch came in without torchvision.

Why a test: laplace-torch (and backpack-for-pytorch) declare torchvision, whose wheel pulls a
newer CUDA torch that does not import beside the pinned CPU one; the Makefile installs them
with ``--no-deps`` and pyproject's ``laplace`` extra lists their real dependencies. A change
that lets pip resolve their declared dependencies fails here, not in a user's environment.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from pathlib import Path

import torch

ROOT = Path(__file__).parents[1]


def _make_variable(name: str) -> str:
    """The default of ``NAME ?= value`` in the Makefile."""
    match = re.search(rf"^{name} \?= (.+)$", (ROOT / "Makefile").read_text(), flags=re.M)
    assert match, f"{name} is not set in the Makefile"
    return match.group(1).strip()


def test_torch_is_the_makefile_pin_and_the_cpu_build() -> None:
    pinned = _make_variable("TORCH_SPEC").split("==")[1].split()[0]
    assert torch.__version__.split("+")[0] == pinned == "2.13.0"
    assert torch.version.cuda is None and torch.__version__.endswith("+cpu")
    assert importlib.metadata.version("torch") == torch.__version__


def test_torchvision_is_not_installed() -> None:
    assert importlib.util.find_spec("torchvision") is None
    names = {d.metadata["Name"].lower() for d in importlib.metadata.distributions()}
    assert "torchvision" not in names


def test_laplace_torch_and_its_backends_are_the_pinned_versions_and_import() -> None:
    for spec in _make_variable("LAPLACE_SPEC").split():
        name, version = spec.split("==")
        assert importlib.metadata.version(name) == version, spec
    from laplace import Laplace
    from laplace.curvature import AsdlGGN, BackPackGGN, CurvlinopsGGN

    assert callable(Laplace) and AsdlGGN and BackPackGGN and CurvlinopsGGN
    assert torch.__version__.split("+")[0] == "2.13.0"  # importing them changed nothing
