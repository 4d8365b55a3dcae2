"""Recipes, prior, guide and objective are objects passed in; the flat API still works."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from hvgp.config import RunConfig
from hvgp.infer import (
    AveragingRecipe,
    CigL,
    GaussianPrior,
    NegativeELBO,
    OptimRecipe,
    PointMassGuide,
    RigL,
    SparseBNN,
    TopologyRecipe,
)
from hvgp.nn import build_model


def _data() -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(48, 6, generator=g), torch.randint(0, 3, (48,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=16)


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("mlp", (6,), 3, width=0.1)


def test_flat_keywords_and_recipe_objects_train_identically() -> None:
    flat = CigL(_net(), 0.5, 0.1, lr=0.05, delta_t=2, average_start=0.5, device="cpu")
    objs = CigL(_net(), 0.5, 0.1, topology=TopologyRecipe(delta_t=2),
                optim=OptimRecipe(lr=0.05), averaging=AveragingRecipe(start=0.5), device="cpu")
    for est in (flat, objs):
        est.fit(_data(), epochs=2)
    for a, b in zip(flat.model_.state_dict().values(), objs.model_.state_dict().values()):
        assert torch.equal(a, b)


def test_optimizer_factory_and_scheduler_callable_are_used() -> None:
    seen = {}

    def schedule(opt, total):
        seen["total"] = total
        return torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)

    optim = OptimRecipe(optimizer=partial(torch.optim.SGD, lr=0.2), schedule=schedule)
    est = RigL(_net(), 0.5, optim=optim, device="cpu").fit(_data(), epochs=1)
    assert isinstance(est.trainer.optimizer, torch.optim.SGD) and seen["total"] == 3
    assert est.trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.2 * 0.5 ** 3)
    assert est.config["optimizer"].startswith("partial") or "SGD" in est.config["optimizer"]


def test_renamed_and_unknown_keywords_say_what_to_use() -> None:
    with pytest.raises(TypeError, match="drop_fraction"):
        CigL(_net(), alpha=0.3)
    with pytest.raises(TypeError, match="recipe keywords"):
        CigL(_net(), learning_rate=0.1)


def test_recipes_from_config() -> None:
    cfg = RunConfig(sparse_init="er", delta_t=7, t_end=0.5, drop_fraction=0.2, lr=0.3,
                    optimizer="adam", lr_schedule="constant", averaging_start=0.6)
    assert TopologyRecipe.from_config(cfg) == TopologyRecipe(method="er", delta_t=7, t_end=0.5,
                                                             drop_fraction=0.2)
    assert OptimRecipe.from_config(cfg).optimizer == "adam"
    assert AveragingRecipe.from_config(cfg).start == 0.6


def test_a_prior_object_and_a_guide_class_plug_in_without_editing_the_model() -> None:
    class LaplacePrior:
        def distribution(self, name, shape, zero):
            import pyro.distributions as dist

            return dist.Laplace(zero, zero + 0.5).expand(shape)

    seen = []

    class CountingGuide(PointMassGuide):
        def __call__(self, *args, **kwargs):
            seen.append(1)
            return super().__call__(*args, **kwargs)

    net = _net()
    bnn = SparseBNN(net, "categorical", 0.1, prior=LaplacePrior(), guide=CountingGuide)
    x, y = next(iter(_data()))
    loss = NegativeELBO(bnn, num_data=48)(x, y)
    assert torch.isfinite(loss) and seen
    gauss = GaussianPrior.from_weight_decay(5e-4, 48)
    assert gauss.scale == pytest.approx(1 / (5e-4 * 48) ** 0.5)
    est = CigL(_net(), 0.5, prior=GaussianPrior(0.3), device="cpu").fit(_data(), epochs=1)
    assert est.bnn.prior.scale == 0.3  # a given prior is kept at fit


def test_likelihood_turns_outputs_into_predictive_samples() -> None:
    from hvgp.infer import GaussianLikelihood

    s = GaussianLikelihood(noise=0.5).predictive(torch.zeros(2, 4))
    assert s.loc.shape == (2, 4) and torch.all(s.scale == 0.5)
