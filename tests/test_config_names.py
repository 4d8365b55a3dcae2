"""One name per setting: the RigL drop fraction and Mixup's Beta concentration never mix.

Issue 19's bug: ``build_estimator`` passed ``alpha=cfg.alpha`` (the RigL drop fraction) to
every estimator, and ``Mixup`` read it as its Beta concentration.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hvgp.config import RunConfig
from hvgp.data import get_loaders
from hvgp.experiment import build_estimator


def _info():
    return get_loaders("digits", batch_size=64, seed=0)[3]


def test_mixup_concentration_and_rigl_drop_fraction_are_separate_settings() -> None:
    cfg = RunConfig(model="mixup", data="digits", arch="mlp", drop_fraction=0.5,
                    model_options={"mixup_alpha": 0.7}, device="cpu")
    est = build_estimator(cfg, _info())
    assert est.mixup_alpha == 0.7
    assert est.topology_recipe.drop_fraction == 0.5


def test_mixup_concentration_defaults_to_the_estimator_default_not_the_drop_fraction() -> None:
    est = build_estimator(RunConfig(model="mixup", data="digits", arch="mlp", device="cpu"),
                          _info())
    assert est.mixup_alpha == 0.2
    assert est.topology_recipe.drop_fraction == RunConfig().drop_fraction == 0.3


def test_an_old_config_with_alpha_reads_as_the_drop_fraction(tmp_path: Path) -> None:
    old = RunConfig().to_dict()
    old["alpha"] = old.pop("drop_fraction") + 0.1
    old.pop("model_options")
    (tmp_path / "config.json").write_text(json.dumps(old))
    with pytest.warns(DeprecationWarning, match="drop_fraction"):
        cfg = RunConfig.from_dict(json.loads((tmp_path / "config.json").read_text()))
    assert cfg.drop_fraction == pytest.approx(0.4)


def test_an_option_the_model_does_not_have_is_refused() -> None:
    with pytest.raises(ValueError, match="mixup_alpha"):
        RunConfig(model="cigl", model_options={"mixup_alpha": 0.5})
