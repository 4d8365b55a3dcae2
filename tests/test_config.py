"""RunConfig resolution: defaults < file < overrides, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hvgp.config import RunConfig, load_config


def test_file_then_overrides_win_over_defaults(tmp_path: Path) -> None:
    f = tmp_path / "run.toml"
    f.write_text('[run]\nmodel = "rigl"\nsparsity = 0.95\nepochs = 3\n')
    cfg = load_config(f, epochs=7, seed=None)
    assert (cfg.model, cfg.sparsity, cfg.epochs, cfg.seed) == ("rigl", 0.95, 7, 0)


def test_saved_config_loads_back_identically(tmp_path: Path) -> None:
    cfg = RunConfig(model="dense", sparsity=0.0, lr=0.05)
    cfg.save(tmp_path / "config.json")
    assert load_config(tmp_path / "config.json") == cfg
    assert json.loads((tmp_path / "config.json").read_text())["lr"] == 0.05


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sparsity": 1.0}, "sparsity"),
        ({"sparsity": -0.1}, "sparsity"),
        ({"model": "lottery"}, "unknown model"),
        ({"epochs": 0}, "epochs"),
        ({"drop_rate": 1.5}, "drop_rate"),
    ],
)
def test_bad_values_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RunConfig(**kwargs)


def test_unknown_keys_and_missing_file_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sparsityy"):
        RunConfig.from_dict({"sparsityy": 0.9})
    with pytest.raises(FileNotFoundError, match="nope.toml"):
        load_config(tmp_path / "nope.toml")
