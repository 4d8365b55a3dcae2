"""SWAG on the sparse support: moments, exact masks, unchanged point posterior, resume, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _train_script import tiny_data
from torch.utils.data import DataLoader

from hvgp.infer import Callback, CigL, mask_site
from hvgp.infer.swag import SWAGMoments, parameter_supports
from hvgp.nn import build_model, masked_layers
from hvgp.registry import get_model


def _data() -> DataLoader:
    return DataLoader(tiny_data(), batch_size=16, shuffle=True,
                      generator=torch.Generator().manual_seed(0))


def _x() -> torch.Tensor:
    return next(iter(_data()))[0]


def _cigl(arch: str = "mlp", **kw) -> CigL:
    torch.manual_seed(0)
    kw.setdefault("average_start", 0.25)
    return CigL(build_model(arch, (40,), 3, width=0.25), 0.8, drop_rate=0.1, device="cpu",
                delta_t=3, schedule="constant", lr=0.05, **kw)


class _Snapshots(Callback):
    """Copies of the parameters at the end of each averaged epoch."""

    def __init__(self, start_epoch: int) -> None:
        self.start, self.taken = start_epoch, []

    def on_epoch_end(self, trainer) -> None:
        if trainer.epoch > self.start:  # the paper recipe's snapshot: U * Z / (1 - p)
            snap = {n: p.detach().clone() for n, p in trainer.bnn.net.named_parameters()}
            for name, layer in trainer.bnn.layers.items():
                z, p = trainer.last_masks[mask_site(name)], trainer.bnn.drop_rates[name]
                snap[f"{name}.weight"] = torch.where(layer.weight_mask, snap[f"{name}.weight"]
                                                     * z / (1 - p), 0.0)
            self.taken.append(snap)


@pytest.fixture(scope="module")
def swag_fit() -> tuple[CigL, list[dict[str, torch.Tensor]]]:
    snaps = _Snapshots(1)  # 4 epochs, average_start 0.25 -> snapshots after epochs 2, 3, 4
    est = _cigl(posterior="swag", swag_rank=2, callbacks=[snaps]).fit(_data(), epochs=4)
    return est, snaps.taken


def test_moments_equal_the_numpy_moments_of_the_snapshots(swag_fit) -> None:
    est, snaps = swag_fit
    post = est.swag_
    assert post.count == len(snaps) == 3 and post.rank == 2
    supports = parameter_supports(est.net)
    for name, mean in post.mean.items():
        supp = supports[name]
        stack = np.stack([(s[name] if supp is None else s[name][supp]).flatten().numpy()
                          for s in snaps]).astype(np.float64)
        dense = np.stack([s[name].numpy() for s in snaps]).astype(np.float64)
        np.testing.assert_allclose(mean.numpy(), dense.mean(0), atol=1e-6, err_msg=name)
        np.testing.assert_allclose(post.var[name].numpy(), stack.var(0), atol=1e-7, err_msg=name)
        running = np.cumsum(stack, 0) / np.arange(1, len(snaps) + 1)[:, None]
        np.testing.assert_allclose(post.dev[name].numpy(), (stack - running)[-2:], atol=1e-6,
                                   err_msg=name)
    # the masked weights' posterior is stored on the support only: (2 + K) x nnz numbers
    nnz = sum(int(layer.weight_mask.sum()) for layer in masked_layers(est.net).values())
    assert post.numel() == {"nnz": nnz, "mean": nnz, "var": nnz, "dev": 2 * nnz}
    assert post.var["1.weight"].numel() == int(est.net[1].weight_mask.sum()) < \
        post.mean["1.weight"].numel()


def test_inactive_weights_are_exactly_zero_in_every_sample(swag_fit) -> None:
    est, _ = swag_fit
    for bnn in est.swag_bnns(6):
        for name, layer in masked_layers(bnn.net).items():
            mean_mask = masked_layers(est.averaged_)[name].weight_mask
            assert torch.equal(layer.weight_mask, mean_mask), name
            assert torch.all(layer.weight[~layer.weight_mask] == 0), name
            assert (layer.weight[layer.weight_mask] != 0).float().mean() > 0.9, name
    assert est.predict(_x(), num_samples=3).probs.shape == (3, 16, 3)


def test_samples_differ_and_are_reproducible(swag_fit) -> None:
    est, _ = swag_fit
    weights = [b.net[1].weight for b in est.swag_bnns(4)]
    assert all(not torch.equal(weights[0], w) for w in weights[1:])
    torch.manual_seed(0)
    p = est.predict(_x(), num_samples=4).probs
    assert all(not torch.equal(p[0], p[i]) for i in range(1, 4))
    assert (p.std(0) > 0).any()
    # the same S weight samples for every call (and so for every test batch)
    again = _cigl(posterior="swag", swag_rank=2).fit(_data(), epochs=4)
    assert all(torch.equal(a.net[1].weight, b.net[1].weight)
               for a, b in zip(est.swag_bnns(4), again.swag_bnns(4)))


def test_point_posterior_is_unchanged_by_the_swag_moments(swag_fit) -> None:
    swag, _ = swag_fit
    point = _cigl().fit(_data(), epochs=4)
    assert point.swag_ is None and point.posterior == "point"
    for (k, a), (_, b) in zip(point.averaged_.state_dict().items(),
                              swag.averaged_.state_dict().items()):
        assert torch.equal(a, b), k  # same training, same mean network
    x = _x()
    assert torch.equal(point.predict(x).probs, swag.predict(x).probs)  # S = 1: the mean
    torch.manual_seed(3)
    a = point.predict(x, num_samples=5).probs
    torch.manual_seed(3)
    b = swag.predict(x, num_samples=5, posterior="point").probs
    assert torch.equal(a, b)


def test_batchnorm_is_refitted_per_sample_unless_told_not_to() -> None:
    est = _cigl("cnn1d", posterior="swag", swag_rank=0).fit(_data(), epochs=4)
    bn_mean = est.averaged_.features[1].running_mean
    refitted = [b.net.features[1].running_mean for b in est.swag_bnns(2)]
    assert not torch.equal(refitted[0], bn_mean) and not torch.equal(*refitted)
    est.swag_bn_batches, est._swag_nets = 0, []
    kept = [b.net.features[1].running_mean for b in est.swag_bnns(2)]
    assert all(torch.equal(k, bn_mean) for k in kept)
    assert est.predict(_x(), num_samples=2).probs.shape == (2, 16, 3)


class _Interrupt(Callback):
    def on_epoch_end(self, trainer) -> None:
        if trainer.epoch == 3:
            raise KeyboardInterrupt


def test_resume_with_swag_reproduces_the_uninterrupted_run(tmp_path) -> None:
    full = _cigl(posterior="swag", swag_rank=2).fit(_data(), epochs=4)
    with pytest.raises(KeyboardInterrupt):  # stopped after two of the three snapshots
        _cigl(posterior="swag", swag_rank=2, checkpoint=tmp_path / "c.pt",
              callbacks=[_Interrupt()]).fit(_data(), epochs=4)
    torch.manual_seed(99)
    resumed = _cigl(posterior="swag", swag_rank=2, checkpoint=tmp_path / "c.pt")
    resumed.fit(_data(), epochs=4, resume=tmp_path / "c.pt")
    a, b = full.swag_.state_dict(), resumed.swag_.state_dict()
    for part in ("mean", "var", "dev"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)
    torch.manual_seed(0)
    pa = full.predict(_x(), num_samples=3).probs
    torch.manual_seed(0)
    assert torch.equal(pa, resumed.predict(_x(), num_samples=3).probs)
    # a point checkpoint cannot silently resume into a SWAG run (its moments are missing)
    _cigl(checkpoint=tmp_path / "p.pt").fit(_data(), epochs=2)
    with pytest.raises(ValueError, match="SWAGMoments"):
        _cigl(posterior="swag").fit(_data(), epochs=2, resume=tmp_path / "p.pt")


def test_state_dict_round_trip_keeps_the_posterior(swag_fit) -> None:
    est, _ = swag_fit
    other = _cigl(posterior="swag", swag_rank=2)
    other.load_state_dict(est.state_dict())
    assert other.swag_.count == est.swag_.count
    torch.manual_seed(0)
    a = est.predict(_x(), num_samples=2).probs
    torch.manual_seed(0)
    assert torch.equal(a, other.predict(_x(), num_samples=2).probs)  # MLP: no BatchNorm


def test_bad_input_is_a_clear_value_error(swag_fit) -> None:
    est, _ = swag_fit
    net = build_model("mlp", (40,), 3, width=0.25)
    with pytest.raises(ValueError, match="posterior must be one of point, swag"):
        CigL(net, posterior="laplace")
    with pytest.raises(ValueError, match="needs weight averaging"):
        CigL(net, posterior="swag", averaging=False)
    with pytest.raises(ValueError, match="swag_rank"):
        CigL(net, posterior="swag", swag_rank=1)
    with pytest.raises(ValueError, match="swag_bn_batches"):
        CigL(net, posterior="swag", swag_bn_batches=-1)
    for bad in (0, -2, 1.5):
        with pytest.raises(ValueError, match="num_samples"):
            est.predict(_x(), num_samples=bad)
    with pytest.raises(ValueError, match="posterior must be one of"):
        est.predict(_x(), num_samples=2, posterior="bogus")
    with pytest.raises(ValueError, match="fit with posterior='swag'"):
        CigL(net, posterior="swag").predict(_x(), num_samples=2)
    with pytest.raises(ValueError, match="rank"):
        SWAGMoments(0, rank=-1)


def test_one_snapshot_warns_that_the_posterior_is_degenerate() -> None:
    with pytest.warns(UserWarning, match="1 snapshot"):
        _cigl(posterior="swag", average_start=0.5).fit(_data(), epochs=2)


def test_the_registry_exposes_the_posterior_as_a_cigl_option() -> None:
    from hvgp.config import RunConfig

    assert get_model("cigl").options == {"posterior": "point", "swag_rank": 10,
                                         "swag_bn_batches": 10, "sigma_init": 1e-3,
                                         "sigma_lr": 300.0, "analytic_kl": True}
    assert "posterior" not in get_model("rigl").options
    cfg = RunConfig(model="cigl", model_options={"posterior": "swag", "swag_rank": 0})
    assert cfg.options()["posterior"] == "swag"
