"""Learned σ (issue 18): the ELBO by hand, the σ -> 0 limit, sparsity, resume, grown σ,
errors, the generic path, sampled predictions, export."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.poutine.messenger import Messenger
from test_infer_swag import _data, _x  # the same tiny data and batches as SWAG's tests
from torch import nn

from hvgp.export import ArchSpec, load_model, load_posterior, save_model
from hvgp.infer import Callback, CigL, NegativeELBO, SparseBNN, mask_site
from hvgp.infer.guide import weight_site
from hvgp.infer.variational import (
    SparseNormal,
    SparseNormalGuide,
    VariationalELBO,
    sparse_normal_kl,
)
from hvgp.nn import MaskedLinear, build_model

P, S0, N_DATA = 0.3, 0.7, 50


def _cigl(arch: str = "mlp", **kw) -> CigL:
    torch.manual_seed(0)
    kw.setdefault("average_start", 0.25)
    kw.setdefault("posterior", "variational")
    return CigL(build_model(arch, (40,), 3, width=0.25), 0.8, drop_rate=kw.pop("p", 0.1),
                device="cpu", delta_t=3, schedule="constant", lr=0.05, **kw)


def _tiny_bnn(rho: float | None = None) -> tuple[SparseBNN, torch.Tensor, torch.Tensor]:
    """MLP 3 -> 4 -> 2 with half its weights masked, random σ, and 10 data points."""
    torch.manual_seed(0)
    net = nn.Sequential(MaskedLinear(3, 4), nn.ReLU(), MaskedLinear(4, 2))
    with torch.no_grad():
        for layer in (net[0], net[2]):
            layer.weight_mask.copy_(torch.rand(layer.weight.shape) < 0.6)
            layer.weight.mul_(layer.weight_mask)
    bnn = SparseBNN(net, "categorical", P, prior_scale=S0,
                    guide=SparseNormalGuide.builder(P, init_scale=0.3))
    with torch.no_grad():
        for r in bnn.guide.rho:
            r.copy_(torch.randn(r.shape) * 0.5 - 1.0 if rho is None else torch.full_like(r, rho))
    return bnn, torch.randn(10, 3), torch.randint(0, 2, (10,))


def _hand_loss(bnn: SparseBNN, x: torch.Tensor, y: torch.Tensor, draws: int
               ) -> torch.Tensor:
    """``-ELBO / N`` by hand: ``draws`` vectorised draws of Z and ε for the likelihood, the
    analytic KL on the kept weights (expectation over Z: (1 - p) x KL per active weight)."""
    h = x
    kl = torch.zeros(())
    scales = bnn.guide.scales()
    for i, (name, layer) in enumerate(bnn.layers.items()):
        m, u, s = layer.weight_mask, layer.weight.detach(), torch.zeros(layer.weight.shape)
        s[m] = scales[name].detach()
        z = (torch.rand(draws, *m.shape) < 1 - P).float()
        w = (u + s * torch.randn(draws, *m.shape)) * m * z / (1 - P)
        h = torch.einsum("dni,doi->dno", h.expand(draws, *h.shape) if h.dim() == 2 else h, w)
        h = h + layer.bias.detach()
        if i == 0:
            h = h.relu()
        kl_w = torch.log(S0 / s[m]) + (s[m] ** 2 + u[m] ** 2) / (2 * S0 ** 2) - 0.5
        kl = kl + (1 - P) * kl_w.sum()
    nll = -torch.distributions.Categorical(logits=h).log_prob(y).mean(0).sum()
    return (nll * N_DATA / x.shape[0] + kl) / N_DATA


@pytest.mark.parametrize("analytic_kl", [True, False])
def test_elbo_with_learned_sigma_matches_a_monte_carlo_estimate_by_hand(analytic_kl) -> None:
    bnn, x, y = _tiny_bnn()
    objective = VariationalELBO(bnn, N_DATA, analytic_kl=analytic_kl)
    torch.manual_seed(1)
    with torch.no_grad():
        losses = torch.stack([objective(x, y) for _ in range(250)])
    torch.manual_seed(2)
    hand = _hand_loss(bnn, x, y, 100_000)
    se = losses.std() / math.sqrt(losses.numel())
    assert abs(losses.mean() - hand) < 4 * se + 1e-3, (losses.mean(), hand, se)


def test_one_draw_of_the_monte_carlo_elbo_is_log_p_minus_log_q_at_the_sampled_weights() -> None:
    bnn, x, y = _tiny_bnn()
    torch.manual_seed(3)
    loss = VariationalELBO(bnn, N_DATA, analytic_kl=False)(x, y)
    torch.manual_seed(3)  # the guide runs first: the same Z and ε
    tr = poutine.trace(bnn.guide).get_trace(x)
    h, log_p_minus_q = x, torch.zeros(())
    for i, (name, layer) in enumerate(bnn.layers.items()):
        w, z = tr.nodes[weight_site(name)]["value"], tr.nodes[mask_site(name)]["value"]
        m = layer.weight_mask
        keep = m & z.bool()
        assert torch.equal(w[~m], torch.zeros(int((~m).sum())))  # point mass at 0 off M
        sigma = torch.zeros(m.shape)
        sigma[m] = bnn.guide.scales()[name]
        log_p = torch.distributions.Normal(0.0, S0).log_prob(w)[keep].sum()
        log_q = torch.distributions.Normal(layer.weight, sigma.clamp_min(1e-30)).log_prob(w)
        log_p_minus_q = log_p_minus_q + log_p - log_q[keep].sum()
        h = F.linear(h, w * torch.where(m, z / (1 - P), 1.0), layer.bias)
        h = h.relu() if i == 0 else h
    ll = torch.distributions.Categorical(logits=h).log_prob(y).sum() * N_DATA / x.shape[0]
    torch.testing.assert_close(loss, -(ll + log_p_minus_q) / N_DATA)


def test_the_analytic_kl_equals_the_monte_carlo_kl() -> None:
    torch.manual_seed(0)
    loc = torch.randn(3, 5) * (torch.rand(3, 5) < 0.5)
    idx = loc.reshape(-1).nonzero().squeeze(1)
    keep = torch.rand(idx.numel()) < 0.7
    scale = torch.rand(idx.numel()) * 0.5 + 0.1
    q = SparseNormal(loc, scale, idx, keep)
    prior_mask = torch.zeros(15, dtype=torch.bool)
    prior_mask[idx[keep]] = True
    p = torch.distributions.Normal(torch.zeros(()), torch.tensor(S0)).expand((3, 5))
    import pyro.distributions as dist

    p = dist.Normal(torch.zeros(()), torch.tensor(S0)).expand((3, 5)).mask(
        prior_mask.view(3, 5)).to_event(2)
    w = q.rsample((200_000,))
    mc = (q.log_prob(w) - p.log_prob(w))
    torch.testing.assert_close(sparse_normal_kl(q, p), mc.mean(), atol=4 * float(mc.std()) / 447,
                               rtol=0)
    direct = torch.distributions.kl_divergence(
        torch.distributions.Normal(loc.reshape(-1)[idx], scale), torch.distributions.Normal(
            0.0, S0))[keep].sum()
    torch.testing.assert_close(sparse_normal_kl(q, p), direct)


class _FixMasks(Messenger):
    """Gives the random-mask sites fixed values, as latent (not observed) samples."""

    def __init__(self, values: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.values = values

    def _pyro_sample(self, msg) -> None:
        if msg["name"] in self.values:
            msg["value"], msg["done"] = self.values[msg["name"]], True


def test_sigma_to_zero_recovers_the_point_mass_loss_and_gradients() -> None:
    bnn, x, y = _tiny_bnn(rho=-30.0)  # σ = softplus(-30) ~ 1e-13
    point = SparseBNN(bnn.net, "categorical", P, prior_scale=S0)
    torch.manual_seed(5)
    zs = {mask_site(n): (torch.rand(layer.weight.shape) < 1 - P).float()
          for n, layer in bnn.layers.items()}
    entropy = sum(float((torch.log(s.detach()) + 0.5 + 0.5 * math.log(2 * math.pi))[
        zs[mask_site(n)].reshape(-1)[bnn.layers[n].active_index()].bool()].sum())
        for n, s in bnn.guide.scales().items())
    grads = []
    for b, objective in ((point, NegativeELBO(point, N_DATA)),
                         (bnn, VariationalELBO(bnn, N_DATA))):
        b.zero_grad()
        with _FixMasks(zs):  # the same Z for both (drawn by the guide, replayed in the model)
            loss = objective(x, y)
        loss.backward()
        grads.append([layer.weight.grad.clone() for layer in b.layers.values()])
        if b is point:
            ref = loss.detach()
        else:
            torch.testing.assert_close(loss.detach() + entropy / N_DATA, ref)
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)


@pytest.fixture(scope="module")
def var_fit() -> CigL:
    return _cigl().fit(_data(), epochs=4)


def test_mean_network_has_exactly_the_target_sparsity(var_fit) -> None:
    est = var_fit
    point = _cigl(posterior="point").fit(_data(), epochs=1)
    for name, layer in est.bnn.layers.items():  # the same per-layer counts as point CigL
        assert int(layer.weight_mask.sum()) == int(point.bnn.layers[name].weight_mask.sum())
    for layer in est.model_.modules():
        if isinstance(layer, MaskedLinear):
            assert not layer.weight[~layer.weight_mask].any()
    assert est.sparsity() == pytest.approx(point.sparsity(), abs=0) and \
        est.sparsity() == pytest.approx(0.8, abs=1e-3)
    assert est.bnn.guide.numel()["scale"] == est.bnn.guide.numel()["nnz"]


def test_training_runs_the_generic_pyro_path(var_fit) -> None:
    assert var_fit.trainer.last_path == "generic"
    assert not VariationalELBO(var_fit.bnn, 64).fast_exact()
    assert not VariationalELBO(var_fit.bnn, 64, analytic_kl=False).fast_exact()
    assert NegativeELBO(_cigl(posterior="point").bnn, 64).fast_exact()


def test_sigma_learns_without_momentum_at_its_own_rate(var_fit) -> None:
    """ρ's group: lr x sigma_lr, no decay, and no momentum with SGD (with it, the same
    sigma_lr diverged on MNIST-1D); every other group keeps the recipe's momentum."""
    opt = var_fit.trainer.optimizer
    rho = {id(p) for p in var_fit.bnn.guide.parameters()}
    (group,) = [g for g in opt.param_groups if {id(p) for p in g["params"]} <= rho]
    assert group["momentum"] == 0.0 and not group["nesterov"] and group["weight_decay"] == 0
    assert group["lr"] == pytest.approx(0.05 * var_fit.sigma_lr)  # constant schedule
    assert all(g["momentum"] > 0 for g in opt.param_groups if g is not group)


class _Interrupt(Callback):
    def on_epoch_end(self, trainer) -> None:
        if trainer.epoch == 3:
            raise KeyboardInterrupt


def test_resume_is_bit_identical(tmp_path, var_fit) -> None:
    with pytest.raises(KeyboardInterrupt):
        _cigl(checkpoint=tmp_path / "c.pt", callbacks=[_Interrupt()]).fit(_data(), epochs=4)
    torch.manual_seed(99)
    resumed = _cigl(checkpoint=tmp_path / "c.pt").fit(_data(), epochs=4,
                                                      resume=tmp_path / "c.pt")
    for a, b in zip(var_fit.bnn.guide.rho, resumed.bnn.guide.rho, strict=True):
        assert torch.equal(a, b)
    for (n, a), b in zip(var_fit.model_.state_dict().items(),
                         resumed.model_.state_dict().values(), strict=True):
        assert torch.equal(a, b), n
    torch.manual_seed(0)
    pa = var_fit.predict(_x(), num_samples=3).probs
    torch.manual_seed(0)
    assert torch.equal(pa, resumed.predict(_x(), num_samples=3).probs)


class _GrownScales(Callback):
    """After the built-in callbacks: ρ of each newly grown weight, and its value before."""

    def __init__(self) -> None:
        self.masks: dict[str, torch.Tensor] = {}
        self.rho: list[torch.Tensor] = []
        self.grown, self.stale = 0, 0

    def on_fit_start(self, trainer) -> None:
        self.masks = {n: layer.weight_mask.clone() for n, layer in trainer.bnn.layers.items()}
        self.rho = [r.detach().clone() for r in trainer.bnn.guide.rho]

    def on_after_backward(self, trainer) -> None:
        guide = trainer.bnn.guide
        for i, (name, layer) in enumerate(trainer.bnn.layers.items()):
            born = layer.weight_mask & ~self.masks[name]
            assert torch.all(guide.rho[i][born] == guide.init_rho)
            self.grown += int(born.sum())
            self.stale += int((self.rho[i][born] != guide.init_rho).sum())
            self.masks[name] = layer.weight_mask.clone()

    def on_step_end(self, trainer, loss) -> None:
        self.rho = [r.detach().clone() for r in trainer.bnn.guide.rho]


def test_grown_weights_start_again_at_the_initial_sigma() -> None:
    probe = _GrownScales()
    _cigl(callbacks=[probe], average_start=0.75).fit(_data(), epochs=4)
    assert probe.grown > 0 and probe.stale > 0  # some grown weights had a learned σ before


def test_bad_input_is_a_clear_value_error(var_fit) -> None:
    net = build_model("mlp", (40,), 3, width=0.25)
    with pytest.raises(ValueError, match="point, swag, variational; got 'bogus'"):
        CigL(net, posterior="bogus")
    with pytest.raises(ValueError, match="builds its own guide"):
        CigL(net, posterior="variational", guide=SparseNormalGuide)
    with pytest.raises(ValueError, match="sigma_lr"):
        CigL(net, posterior="variational", sigma_lr=0)
    with pytest.raises(ValueError, match="init_scale"):
        CigL(net, posterior="variational", sigma_init=-1.0)
    point = _cigl(posterior="point")
    with pytest.raises(ValueError, match="fit with posterior='variational'"):
        point.predict(_x(), num_samples=2, posterior="variational")
    with pytest.raises(ValueError, match="posterior='variational'"):
        point.load_state_dict(var_fit.state_dict())
    with pytest.raises(ValueError, match="num_samples"):
        var_fit.predict(_x(), num_samples=0)


def test_samples_draw_weights_as_well_as_z() -> None:
    var = _cigl(p=0.0).fit(_data(), epochs=3)  # no random mask: only the weights vary
    point = _cigl(p=0.0, posterior="point").fit(_data(), epochs=3)
    x = _x()
    for vectorize in (False, True):
        ps = var.predict(x, num_samples=4, vectorize=vectorize)
        assert ps.probs.shape == (4, 16, 3)
        assert float(ps.mutual_information().mean()) > 1e-6
        assert len({tuple(p.flatten().tolist()) for p in ps.probs}) == 4
    same = point.predict(x, num_samples=4).probs
    assert torch.equal(same, same[:1].expand_as(same))
    mean = var.predict(x).probs  # the mean network, deterministic, = point-mass prediction
    torch.testing.assert_close(mean, var.predict(x, num_samples=1, posterior="point").probs)


def test_state_dict_and_export_keep_the_mean_network_and_sigma(tmp_path, var_fit) -> None:
    other = _cigl()
    other.load_state_dict(var_fit.state_dict())
    for n, s in var_fit.bnn.guide.scales().items():
        torch.testing.assert_close(other.bnn.guide.scales()[n], s)
    torch.manual_seed(0)
    a = var_fit.predict(_x(), num_samples=2).probs
    torch.manual_seed(0)
    torch.testing.assert_close(a, other.predict(_x(), num_samples=2).probs)
    arch = ArchSpec("mlp", (40,), 3, 0.25)
    save_model(tmp_path / "m.pt", var_fit, arch, posterior=True)
    post = load_posterior(tmp_path / "m.pt")["variational_posterior"]
    for n, s in var_fit.bnn.guide.scales().items():
        torch.testing.assert_close(post["scale"][n], s)
    net = load_model(tmp_path / "m.pt", sparse=False)
    torch.testing.assert_close(net(_x()), var_fit.model_(_x()))
    with pytest.raises(ValueError, match="posterior=True"):
        save_model(tmp_path / "p.pt", _cigl(posterior="point").fit(_data(), epochs=1), arch,
                   posterior=True)


@pytest.mark.parametrize(("text", "value"), [("false", False), ("True", True), ("0", False)])
def test_the_cli_passes_the_variational_options(text: str, value: bool) -> None:
    from hvgp.cli import _config, build_parser

    args = build_parser().parse_args(["train", "--model", "cigl", "--posterior", "variational",
                                      "--analytic-kl", text, "--sigma-lr", "50", "--out", "x"])
    opts = _config(args).options()
    assert (opts["posterior"], opts["analytic_kl"], opts["sigma_lr"]) == \
        ("variational", value, 50.0)


def test_a_bad_yes_no_flag_is_a_usage_error(capsys) -> None:
    from hvgp.cli import build_parser

    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["train", "--analytic-kl", "maybe", "--out", "x"])
    assert e.value.code == 2 and "expected true or false" in capsys.readouterr().err
