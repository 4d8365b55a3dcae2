"""The registry is the one list of models; every hvgp module imports alone, in any order."""

from __future__ import annotations

import json
import pkgutil
import random
import subprocess
import sys
from pathlib import Path

import pytest

import hvgp
from hvgp.cli import main
from hvgp.registry import get_model, model_names


def _modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(hvgp.__path__, "hvgp.")]
    return ["hvgp", *[n for n in names if n != "hvgp.__main__"]]


@pytest.mark.parametrize("seed", [0, 1])
def test_every_module_imports_in_a_fresh_interpreter_in_random_order(seed: int) -> None:
    order = _modules()
    random.Random(seed).shuffle(order)
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    done = subprocess.run([sys.executable, "-c", code, *order], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_lists_derive_from_the_registry() -> None:
    from hvgp.baselines.nn import ESTIMATORS
    from hvgp.config import MODELS
    from hvgp.experiment import GP_MODELS, WRAPPER_MODELS

    assert set(MODELS) == set(ESTIMATORS) | set(GP_MODELS)
    assert set(GP_MODELS) >= {"svgp", "nngp", "deepgp"}
    assert set(WRAPPER_MODELS) == {"ensemble", "ensemble-equal", "temperature"}
    assert MODELS == model_names()
    assert get_model("MC_Dropout").name == "mc-dropout"
    assert get_model("mixup").options == {"mixup_alpha": 0.2}


def test_a_model_option_flag_reaches_the_estimator_and_config_json(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["train", "--model", "mixup", "--mixup-alpha", "0.4", "--data", "moons",
                 "--arch", "mlp", "--epochs", "1", "--device", "cpu", "--quiet",
                 "--out", str(out)]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["model_options"] == {"mixup_alpha": 0.4} and "alpha" not in saved


def test_an_option_of_another_model_is_a_clear_cli_error(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]):
    assert main(["train", "--model", "cigl", "--mixup-alpha", "0.4", "--data", "moons",
                 "--arch", "mlp", "--epochs", "1", "--out", str(tmp_path / "x")]) == 2
    assert "mixup_alpha" in capsys.readouterr().err
