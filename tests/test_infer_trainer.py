"""SVI trainer and CigL estimator: held dropped weights, averaging, checkpoints, NaN stop."""

from __future__ import annotations

import os

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from hvgp.infer import (
    Callback,
    CigL,
    NonFiniteLossError,
    RigL,
    hold_dropped_step,
    load_checkpoint,
    mask_site,
)
from hvgp.infer.trainer import SiteRecorder
from hvgp.nn import build_model, masked_layers


def _data(n: int = 96, seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 40, generator=g)
    y = (x[:, :10].sum(1) > 0).long() + (x[:, 10:20].sum(1) > 0).long()
    return DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True,
                      generator=torch.Generator().manual_seed(seed))


def _cigl(**kw) -> CigL:
    torch.manual_seed(0)
    net = build_model("cnn1d", (40,), 3, width=0.25)
    kw.setdefault("drop_rate", 0.2)
    return CigL(net, kw.pop("sparsity", 0.8), device="cpu", delta_t=3, **kw)


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_hold_dropped_step_freezes_weights_and_their_optimizer_state(opt_name: str) -> None:
    w = torch.nn.Parameter(torch.randn(6, 5))
    opt = (torch.optim.SGD([w], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)
           if opt_name == "sgd" else torch.optim.Adam([w], lr=0.1))
    dropped = torch.rand(6, 5) < 0.3
    for _ in range(2):  # first step creates the state, second must leave dropped entries alone
        w.grad = torch.randn(6, 5)
        before = {k: v.clone() for k, v in opt.state[w].items()} if opt.state[w] else None
        w_before = w.detach().clone()
        hold_dropped_step(opt, [(w, dropped)])
        assert torch.equal(w[dropped], w_before[dropped])
        assert not torch.equal(w[~dropped], w_before[~dropped])
        if before is not None:
            for k, v in opt.state[w].items():
                if torch.is_tensor(v) and v.shape == w.shape:
                    assert torch.equal(v[dropped], before[k][dropped]), k


def test_weights_with_random_mask_zero_do_not_move_in_a_training_step() -> None:
    est = _cigl(drop_rate=0.3, schedule="constant")  # lr > 0 after fit
    loader = _data()
    est.fit(loader, epochs=1)
    trainer = est.trainer
    x, y = next(iter(loader))
    params = {n: layer.weight for n, layer in masked_layers(est.net).items()}
    before = {n: w.detach().clone() for n, w in params.items()}
    mom = {n: trainer.optimizer.state[w]["momentum_buffer"].clone() for n, w in params.items()}
    with SiteRecorder([mask_site(n) for n in params]) as rec:
        trainer.train_step(x, y)
    moved_any, n_dropped = False, 0
    for n, w in params.items():
        m = masked_layers(est.net)[n].weight_mask
        dropped = m & ~rec.values[mask_site(n)].bool()
        n_dropped += int(dropped.sum())
        assert torch.equal(w[dropped], before[n][dropped])
        assert torch.equal(trainer.optimizer.state[w]["momentum_buffer"][dropped], mom[n][dropped])
        assert torch.all(w[~m] == 0)
        moved_any |= not torch.equal(w[m & ~dropped], before[n][m & ~dropped])
    assert moved_any and n_dropped > 0


@pytest.mark.parametrize("masked", [False, True])
def test_averaged_cigl_has_exactly_the_target_sparsity(masked: bool) -> None:
    est = _cigl(sparsity=0.9, average_start=0.5, average_masked=masked).fit(_data(), epochs=4)
    topo = est.topology
    assert est.averaged_ is not None and est.averaged_ is not est.net
    for name, layer in masked_layers(est.averaged_).items():
        assert torch.all(layer.weight[~layer.weight_mask] == 0), name
    nnz = sum(int((layer.weight != 0).sum()) for layer in masked_layers(est.averaged_).values())
    if masked:  # a weight dropped by Z in every snapshot averages to 0 (p = 0.2, 2 snapshots:
        # ~4 %); the structural mask, and so est.sparsity(), is still exactly M
        assert 0.9 * sum(topo.counts.values()) < nnz <= sum(topo.counts.values())
    else:
        assert nnz == sum(topo.counts.values())
    assert abs(est.sparsity() - 0.9) <= 1.0 / topo.numel()
    assert not torch.equal(est.averaged_.classifier[1].weight, est.net.classifier[1].weight)
    bn = est.averaged_.features[1]
    assert not torch.equal(bn.running_mean, est.net.features[1].running_mean)  # re-estimated


def test_rigl_has_no_random_mask_and_no_averaging() -> None:
    est = RigL(build_model("mlp", (40,), 3, width=0.1), 0.8, device="cpu").fit(_data(), 2)
    assert est.bnn.mask_sites == [] and est.averaged_ is None
    ps = est.predict(torch.randn(7, 40))
    assert ps.probs.shape == (1, 7, 3)
    assert abs(est.sparsity() - 0.8) < 1e-3


def test_dense_network_is_sparsity_zero() -> None:
    est = CigL(build_model("mlp", (40,), 3, width=0.1), sparsity=0.0, drop_rate=0.0,
               averaging=False, device="cpu").fit(_data(), 1)
    assert est.topology is None and est.sparsity() < 0.01


def test_predict_and_evaluate_give_predictive_samples_and_metrics() -> None:
    est = _cigl().fit(_data(), epochs=2)
    ps = est.predict(torch.randn(9, 40), num_samples=5)
    assert ps.probs.shape == (5, 9, 3)
    report = est.evaluate(_data(48, seed=1))
    assert 0.0 <= report["accuracy"] <= 1.0 and report["ece"] >= 0.0
    assert len(est.history_) == 2 and est.history_[-1]["epoch"] == 2


class _Interrupt(Callback):
    def __init__(self, after: int) -> None:
        self.after = after

    def on_epoch_end(self, trainer) -> None:
        if trainer.epoch == self.after:
            raise KeyboardInterrupt


def test_resume_reproduces_the_uninterrupted_run(tmp_path) -> None:
    full = _cigl(checkpoint=tmp_path / "a.pt", average_start=0.5).fit(_data(), epochs=4)
    with pytest.raises(KeyboardInterrupt):
        _cigl(checkpoint=tmp_path / "b.pt", average_start=0.5,
              callbacks=[_Interrupt(2)]).fit(_data(), epochs=4)
    state = load_checkpoint(tmp_path / "b.pt")  # weights_only=True
    assert state["epoch"] == 2 and state["step"] == 2 * 6
    torch.manual_seed(123)  # a different fresh initialisation: the checkpoint must override it
    resumed = _cigl(checkpoint=tmp_path / "b.pt", average_start=0.5)
    resumed.fit(_data(), epochs=4, resume=tmp_path / "b.pt")
    for (k, a), (_, b) in zip(full.bnn.state_dict().items(), resumed.bnn.state_dict().items()):
        assert torch.equal(a, b), k
    for (k, a), (_, b) in zip(full.averaged_.state_dict().items(),
                              resumed.averaged_.state_dict().items()):
        assert torch.equal(a, b), k


def test_non_finite_loss_stops_naming_step_and_layer_keeping_checkpoint(tmp_path) -> None:
    path = tmp_path / "c.pt"

    class _Poison(Callback):
        def on_epoch_end(self, trainer) -> None:
            if trainer.epoch == 1:
                with torch.no_grad():
                    trainer.bnn.net.classifier[1].weight.fill_(float("nan"))

    est = _cigl(checkpoint=path, callbacks=[_Poison()])
    with pytest.raises(NonFiniteLossError, match=r"step 6.*classifier\.1\.weight") as err:
        est.fit(_data(), epochs=3)
    assert err.value.step == 6 and "classifier.1.weight" in err.value.layers
    state = load_checkpoint(path)
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["bnn"].values() if v.is_floating_point())


def test_checkpoint_write_is_atomic(tmp_path) -> None:
    path = tmp_path / "d.pt"
    _cigl(checkpoint=path).fit(_data(), epochs=1)
    assert sorted(os.listdir(tmp_path)) == ["d.pt"]  # no temp files left behind
    assert {"bnn", "optimizer", "scheduler", "callbacks", "rng", "step"} <= set(
        load_checkpoint(path))


def test_estimator_rejects_bad_arguments() -> None:
    net = build_model("mlp", (40,), 3, width=0.1)
    with pytest.raises(ValueError, match="sparsity"):
        CigL(net, sparsity=1.0, device="cpu")
    with pytest.raises(ValueError, match="optimizer"):
        CigL(net, optimizer="lbfgs", device="cpu")
    with pytest.raises(ValueError, match="epochs"):
        CigL(net, device="cpu").fit(_data(), epochs=0)
    with pytest.raises(FileNotFoundError):
        CigL(net, device="cpu").fit(_data(), epochs=1, resume="/nonexistent/ckpt.pt")
