"""#14: named recipes (paper / legacy), no decay on 1-D parameters, masked averaging, tuning."""

from __future__ import annotations

import math

import pytest
import torch
from _train_script import tiny_data
from torch.utils.data import DataLoader

from hvgp import cli
from hvgp.config import MODELS, RunConfig, load_config
from hvgp.experiment import GP_MODELS, run
from hvgp.infer import Callback, CigL
from hvgp.infer.recipes import (
    PAPER_MILESTONES,
    RECIPES,
    OptimRecipe,
    decay_groups,
    get_recipe,
    milestone_step,
)
from hvgp.nn import build_model
from hvgp.tune import check_disjoint, tune_config

BASE = RunConfig(data="moons", arch="mlp", width=0.25, epochs=2, batch_size=64, device="cpu",
                 sparsity=0.0)


class _LR(Callback):
    """The learning rate each optimizer step used."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_after_backward(self, trainer) -> None:
        self.lrs.append(trainer.optimizer.param_groups[0]["lr"])


def _loader(seed: int = 0) -> DataLoader:
    return DataLoader(tiny_data(seed), batch_size=8, shuffle=True,
                      generator=torch.Generator().manual_seed(seed))


def _fit(recipe: str, epochs: int = 6, **kw) -> tuple[CigL, list[float]]:
    torch.manual_seed(0)
    lr = _LR()
    est = CigL(build_model("mlp", (40,), 3, width=0.1), 0.8, 0.1, recipe=recipe, device="cpu",
               delta_t=2, callbacks=[lr], **kw)
    return est.fit(_loader(), epochs=epochs), lr.lrs


def test_paper_recipe_lr_at_every_step_is_the_steplr_formula() -> None:
    est, lrs = _fit("paper", epochs=11)  # 8 steps/epoch -> 88 steps, milestones 30 and 60
    total = len(lrs)
    steps = [30, 60]  # StepLR every 30 000 of the released code's 88 000 steps
    assert total == 88 and [milestone_step(m, total) for m in PAPER_MILESTONES] == steps
    for step, lr in enumerate(lrs):
        assert lr == pytest.approx(0.1 * 0.5 ** sum(step >= s for s in steps), rel=1e-12), step
    # and torch's own MultiStepLR agrees step by step
    ref_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    ref = torch.optim.lr_scheduler.MultiStepLR(ref_opt, steps, gamma=0.5)
    for lr in lrs:
        assert lr == pytest.approx(ref_opt.param_groups[0]["lr"], rel=1e-12)
        ref_opt.step()
        ref.step()
    assert est.recipe == "paper" and est.config["average_masked"]


def test_warmup_is_linear_then_the_schedule() -> None:
    r = OptimRecipe(warmup=0.1)
    f = [r.lr_factor(s, 200) for s in range(200)]
    assert f[:20] == pytest.approx([(s + 1) / 20 for s in range(20)])
    assert f[20:68] == pytest.approx([1.0] * 48) and f[68] == pytest.approx(0.5)
    cos = OptimRecipe(schedule="cosine", warmup=0.0)
    assert cos.lr_factor(100, 200) == pytest.approx(0.5)


def test_legacy_recipe_is_hvgp_0x_cosine_with_decayed_1d_parameters() -> None:
    est, lrs = _fit("legacy", epochs=4)
    total = len(lrs)
    for step, lr in enumerate(lrs):
        assert lr == pytest.approx(0.05 * (1 + math.cos(math.pi * step / total)), abs=1e-12)
    decays = {id(p): g["weight_decay"] for g in est.trainer.optimizer.param_groups
              for p in g["params"]}
    biases = [p for n, p in est.net.named_parameters() if p.dim() == 1]
    assert biases and all(decays[id(p)] == 5e-4 for p in biases)
    assert not est.config["average_masked"]


def test_decay_groups_exempt_exactly_the_1d_parameters() -> None:
    net = build_model("cnn1d", (40,), 3, width=0.25)
    groups = decay_groups(net.parameters(), 1e-3)
    by = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    for name, p in net.named_parameters():
        assert by[id(p)] == (1e-3 if p.dim() > 1 else 0.0), name
    assert all(g["weight_decay"] == 1e-3 for g in decay_groups(net.parameters(), 1e-3, True))


@pytest.mark.parametrize("model", [m for m in MODELS if m not in GP_MODELS])
def test_no_model_decays_a_1d_parameter(model: str, monkeypatch) -> None:
    """Every network of ``hvgp list``: each optimizer group holding a 1-D tensor has no decay."""
    seen: list[dict] = []
    original = torch.optim.Optimizer.add_param_group

    def record(self, group):
        seen.append(group)
        return original(self, group)

    monkeypatch.setattr(torch.optim.Optimizer, "add_param_group", record)
    sparse = model not in ("dense", "ensemble", "temperature")
    run(BASE.updated(model=model, sparsity=0.8 if sparse else 0.0, epochs=1), shift=False)
    one_d = [(g, p) for g in seen for p in g["params"] if p.dim() <= 1]
    assert one_d, "the model has biases or normalisation parameters"
    for group, _ in one_d:
        assert group.get("weight_decay", 0.0) == 0.0


def test_old_run_configs_read_as_the_legacy_recipe() -> None:
    old = {k: v for k, v in RunConfig(lr_schedule="cosine").to_dict().items() if k != "recipe"}
    assert RunConfig.from_saved(old).recipe == "legacy"
    assert RunConfig.from_dict(old).recipe == "paper"  # a user's file: today's default


def test_bad_recipe_names_are_refused_clearly(capsys) -> None:
    with pytest.raises(ValueError, match="unknown recipe 'papr'; choose one of paper, legacy"):
        RunConfig(recipe="papr")
    with pytest.raises(ValueError, match="unknown recipe"):
        get_recipe("x")
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        RunConfig(lr_schedule="linear")
    assert cli.main(["train", "--recipe", "papr", "--out", "/nonexistent/x"]) == 2
    assert "unknown recipe 'papr'" in capsys.readouterr().err
    assert set(RECIPES) == {"paper", "legacy"}


def test_masked_averaging_mean_is_the_mean_of_u_times_z_over_keep() -> None:
    class Snaps(Callback):
        def __init__(self) -> None:
            self.taken = []

        def on_epoch_end(self, trainer) -> None:
            if trainer.epoch > 3:  # average_start 0.5 of 6 epochs
                layer = trainer.bnn.layers["3"]
                z = trainer.last_masks["3.weight_z"]
                self.taken.append(layer.weight.detach() * torch.where(layer.weight_mask,
                                                                      z / 0.9, 1.0))

    snaps = Snaps()
    torch.manual_seed(0)
    est = CigL(build_model("mlp", (40,), 3, width=0.1), 0.8, 0.1, device="cpu",
               average_start=0.5, callbacks=[snaps]).fit(_loader(), epochs=6)
    mean = torch.stack(snaps.taken).mean(0)
    assert len(snaps.taken) == 3
    torch.testing.assert_close(est.averaged_.get_parameter("3.weight"), mean)
    assert not torch.equal(mean, est.net.get_parameter("3.weight"))


class _Untouchable:
    """A test loader that fails the test if anything iterates it."""

    dataset = tiny_data()

    def __iter__(self):
        raise AssertionError("tuning read the test split")

    def __len__(self) -> int:
        return 8


def test_tune_never_reads_the_test_split_and_round_trips_through_config(
        monkeypatch, tmp_path) -> None:
    import hvgp.data

    real = hvgp.data.get_loaders

    def guarded(*a, **kw):
        train, val, _test, info = real(*a, **kw)
        return train, val, _Untouchable(), info

    monkeypatch.setattr(hvgp.data, "get_loaders", guarded)
    code = cli.main(["tune", "--data", "moons", "--arch", "mlp", "--width", "0.25",
                     "--epochs", "4", "--batch-size", "64", "--device", "cpu", "--sparsity",
                     "0.8", "--grid", "drop_rate=0,0.1", "--grid", "averaging_start=0.5,0.9",
                     "--seeds", "100", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    chosen = load_config(tmp_path / "chosen.toml")
    result = __import__("json").loads((tmp_path / "tune.json").read_text())
    assert {"drop_rate": chosen.drop_rate, "averaging_start": chosen.averaging_start} \
        == result["best"]
    assert chosen.seed == 0 and chosen.sparsity == 0.8 and chosen.data == "moons"
    nlls = {(t["params"]["drop_rate"], t["params"]["averaging_start"]): t["val_nll"]
            for t in result["trials"]}
    best = min(nlls, key=nlls.get)
    assert result["best"] == {"drop_rate": best[0], "averaging_start": best[1]}
    monkeypatch.setattr(hvgp.data, "get_loaders", real)
    out = tmp_path / "run"
    assert cli.main(["train", "--config", str(tmp_path / "chosen.toml"), "--out", str(out),
                     "--quiet"]) == 0
    assert RunConfig.from_saved(__import__("json").loads((out / "config.json").read_text())) \
        == chosen


def _tuned_vs_standalone(grid: dict, **kw):
    """``CigL.tune`` on one seed; assert every trial's validation NLL equals a standalone
    fit (fresh loader) at that trial's settings; returns the tuning result."""
    data, val = _loader(0), DataLoader(tiny_data(1), batch_size=32)

    def net():
        torch.manual_seed(0)
        return build_model("mlp", (40,), 3, width=0.1)

    res = CigL.tune(net, data, val, 8, grid=grid, seeds=[3], progress=False, sparsity=0.8,
                    delta_t=2, **kw)
    for trial in res.trials:
        settings = {**kw, "drop_rate": 0.1, **trial["params"]}
        est = CigL(net(), 0.8, seed=3, device="cpu", delta_t=2, **settings)
        est.fit(_loader(0), epochs=8)
        assert est.evaluate(val)["nll"] == pytest.approx(trial["val_nll"], rel=1e-6)
    return res


def test_a_shared_tuning_run_equals_the_standalone_runs() -> None:
    """Starts after t_end share a run; each start's score equals its own training run's."""
    res = _tuned_vs_standalone(grid={"drop_rate": [0.1], "average_start": [0.75, 0.9]})
    assert len({t["val_nll"] for t in res.trials}) == 2  # the two starts do differ


def test_starts_before_a_later_t_end_are_not_shared() -> None:
    """With ``t_end=0.95`` the mask still changes after T* = 0.75 / 0.9: two separate runs,
    each equal to its own standalone run."""
    from hvgp.tune import _jobs

    assert len(_jobs({"average_start": [0.75, 0.9]}, [0], "average_start", 0.95)) == 2
    assert len(_jobs({"average_start": [0.75, 0.9]}, [0], "average_start", None)) == 1
    _tuned_vs_standalone(grid={"average_start": [0.75, 0.9]}, t_end=0.95, drop_rate=0.1)


def test_tune_refuses_bad_requests() -> None:
    data = _loader()
    with pytest.raises(TypeError, match="factory"):
        CigL.tune(build_model("mlp", (40,), 3), data, data, 1)
    with pytest.raises(ValueError, match="cannot tune 'colour'"):
        CigL.tune(lambda: build_model("mlp", (40,), 3), data, data, 1, grid={"colour": [1]})
    with pytest.raises(ValueError, match="select_by must be one of"):
        CigL.tune(lambda: build_model("mlp", (40,), 3), data, data, 1, select_by="val_ece")
    with pytest.raises(ValueError, match="no values"):
        CigL.tune(lambda: build_model("mlp", (40,), 3), data, data, 1, grid={"drop_rate": []})
    with pytest.raises(ValueError, match=r"seeds \[0\] were used for tuning"):
        check_disjoint([0, 100], [0, 1])
    with pytest.raises(ValueError, match="seeds .* were used for tuning"):
        tune_config(BASE.updated(model="cigl", seed=100), seeds=[100])
    with pytest.raises(ValueError, match="does not average"):
        tune_config(BASE.updated(model="rigl"), {"averaging_start": [0.8]})
