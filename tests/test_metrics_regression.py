"""Regression metrics: closed forms, scipy / netcal oracles and calibration behaviour."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from netcal.metrics import NLL as NetcalNLL
from netcal.metrics import PICP as NetcalPICP
from scipy import integrate
from scipy.stats import norm

import hvgp.metrics.regression as regression
from hvgp.metrics import (
    crps_samples,
    gaussian_nll,
    interval_coverage,
    pit_histogram,
    pit_values,
    predictive_quantiles,
    regression_report,
    rmse,
)
from hvgp.predict import PredictiveSamples


def _gaussian_data(n: int, seed: int, sd_ratio: float = 1.0):
    """Predictive N(mu, sd) per point; targets drawn with ``sd_ratio`` times that spread."""
    rng = np.random.default_rng(seed)
    mu, sd = rng.normal(size=n), rng.uniform(0.5, 2.0, n)
    y = mu + sd_ratio * sd * rng.normal(size=n)
    return mu, sd, y, PredictiveSamples(loc=torch.tensor(mu)[None], scale=torch.tensor(sd)[None])


def _mixture(seed: int, s: int = 4, n: int = 6):
    g = torch.Generator().manual_seed(seed)
    loc = torch.randn(s, n, generator=g, dtype=torch.float64)
    scale = 0.2 + torch.rand(s, n, generator=g, dtype=torch.float64)
    y = torch.randn(n, generator=g, dtype=torch.float64)
    return loc, scale, y


def test_rmse_matches_hand_computation_on_the_sample_mean() -> None:
    samples = PredictiveSamples(loc=torch.tensor([[1.0, 2.0], [3.0, 2.0]]))  # mean [2, 2]
    assert rmse(samples, [2.0, 4.0]) == pytest.approx(math.sqrt(2.0))
    assert rmse(torch.tensor([2.0, 2.0]), np.array([2.0, 4.0])) == pytest.approx(math.sqrt(2.0))


def test_gaussian_nll_agrees_with_netcal_scipy_and_torch() -> None:
    mu, sd, y, samples = _gaussian_data(400, seed=0)
    expected = -norm.logpdf(y, mu, sd).mean()
    assert gaussian_nll(samples, y) == pytest.approx(expected, rel=1e-10)
    assert gaussian_nll(samples, y, method="mixture") == pytest.approx(expected, rel=1e-10)
    assert gaussian_nll(samples, y) == pytest.approx(
        float(NetcalNLL().measure((mu, sd), y, kind="meanstd")[0]), rel=1e-8)
    torch_nll = torch.nn.functional.gaussian_nll_loss(
        torch.tensor(mu), torch.tensor(y), torch.tensor(sd) ** 2, full=True)
    assert gaussian_nll(samples, y) == pytest.approx(float(torch_nll), rel=1e-10)


def test_mixture_nll_is_the_log_of_the_averaged_density() -> None:
    loc, scale, y = _mixture(seed=1)
    dens = norm.pdf(y.numpy(), loc.numpy(), scale.numpy()).mean(0)
    assert gaussian_nll((loc, scale), y, method="mixture") == pytest.approx(-np.log(dens).mean())


def test_moment_nll_uses_epistemic_plus_noise_variance() -> None:
    loc, scale, y = _mixture(seed=2)
    mean, var = loc.mean(0), loc.var(0, unbiased=False) + (scale**2).mean(0)
    expected = -norm.logpdf(y.numpy(), mean.numpy(), var.sqrt().numpy()).mean()
    assert gaussian_nll((loc, scale), y) == pytest.approx(expected)


def test_degenerate_predictive_nll_is_an_error_and_nan_in_the_report() -> None:
    det = PredictiveSamples(loc=torch.zeros(1, 3))
    with pytest.raises(ValueError, match="variance is zero"):
        gaussian_nll(det, [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="scale > 0"):
        gaussian_nll(PredictiveSamples(loc=torch.zeros(2, 3)), [0.0, 1.0, 2.0], method="mixture")
    report = regression_report(det, [0.0, 1.0, 2.0])
    assert math.isnan(report["nll"]) and report["rmse"] == pytest.approx(math.sqrt(5 / 3))


def test_pit_of_a_gaussian_is_its_cdf_and_of_an_ensemble_the_fraction_below() -> None:
    mu, sd, y, samples = _gaussian_data(50, seed=3)
    np.testing.assert_allclose(pit_values(samples, y).numpy(), norm.cdf(y, mu, sd), atol=1e-12)
    ens = PredictiveSamples(loc=torch.tensor([[0.0], [1.0], [2.0], [3.0]]))
    assert pit_values(ens, [1.5]).item() == pytest.approx(0.5)
    assert pit_values(ens, [1.0]).item() == pytest.approx(1.5 / 4)  # a tie counts one half


def test_pit_histogram_is_flat_when_calibrated_and_u_shaped_when_over_confident() -> None:
    _, _, y, samples = _gaussian_data(5000, seed=4)
    flat = pit_histogram(samples, y)["count"]
    assert flat.sum() == 5000 and flat.min() > 400 and flat.max() < 600
    _, _, y, samples = _gaussian_data(5000, seed=4, sd_ratio=2.0)  # targets twice as spread
    u = pit_histogram(samples, y)["count"]
    assert u[0] > 2 * u[5] and u[-1] > 2 * u[4]


def test_predictive_quantiles_invert_the_mixture_cdf() -> None:
    mu, sd, _, samples = _gaussian_data(20, seed=5)
    q = predictive_quantiles(samples, [0.05, 0.5, 0.95]).numpy()
    np.testing.assert_allclose(q, norm.ppf([[0.05], [0.5], [0.95]], mu, sd), atol=1e-9)
    loc, scale, _ = _mixture(seed=6)
    qm = predictive_quantiles((loc, scale), [0.1, 0.7])
    cdf = norm.cdf(qm.numpy()[:, None, :], loc.numpy(), scale.numpy()).mean(1)
    np.testing.assert_allclose(cdf, [[0.1] * 6, [0.7] * 6], atol=1e-9)


def test_interval_coverage_agrees_with_netcal_picp_and_is_nominal_when_calibrated() -> None:
    mu, sd, y, samples = _gaussian_data(4000, seed=7)
    cov = interval_coverage(samples, y, levels=(0.5, 0.9))
    for level in (0.5, 0.9):  # netcal averages over several q, so ask one level at a time
        picp = NetcalPICP(bins=10).measure((mu, sd), y, q=[level], kind="meanstd").picp
        assert cov[level] == pytest.approx(float(picp[0]), abs=1e-12)
    assert cov[0.5] == pytest.approx(0.5, abs=0.03) and cov[0.9] == pytest.approx(0.9, abs=0.02)
    _, _, y2, s2 = _gaussian_data(4000, seed=7, sd_ratio=2.0)
    assert interval_coverage(s2, y2, levels=(0.9,))[0.9] < 0.7


def test_coverage_of_an_ensemble_uses_its_empirical_quantiles() -> None:
    ens = torch.arange(10.0)[:, None].expand(10, 3)  # 10 samples 0..9 at each of 3 points
    # 80 % interval: [inf{F >= 0.1}, inf{F >= 0.9}] = [0, 8]
    cov = interval_coverage(PredictiveSamples(loc=ens), [8.0, 8.5, -0.1], levels=(0.8,))
    assert cov[0.8] == pytest.approx(1 / 3)


def test_continuous_and_point_mass_coverage_paths_agree_for_tiny_noise() -> None:
    g = torch.Generator().manual_seed(13)
    loc, y = torch.randn(7, 500, generator=g, dtype=torch.float64), torch.randn(500, generator=g)
    exact = interval_coverage(PredictiveSamples(loc=loc), y)
    smooth = interval_coverage(PredictiveSamples(loc=loc, scale=torch.full_like(loc, 1e-9)), y)
    assert exact == smooth


def test_crps_of_one_gaussian_matches_the_closed_form() -> None:
    mu, sd, y, samples = _gaussian_data(100, seed=8)
    z = (y - mu) / sd
    closed = sd * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / math.sqrt(math.pi))
    np.testing.assert_allclose(crps_samples(samples, y, reduction="none").numpy(), closed,
                               rtol=1e-10)


def test_crps_of_an_ensemble_matches_the_energy_form() -> None:
    g = torch.Generator().manual_seed(9)
    x, y = torch.randn(7, 30, generator=g, dtype=torch.float64), torch.randn(30, generator=g)
    brute = (x - y).abs().mean(0) - 0.5 * (x[:, None] - x[None]).abs().mean((0, 1))
    assert crps_samples(PredictiveSamples(loc=x), y) == pytest.approx(float(brute.mean()))


def test_crps_of_a_mixture_matches_numerical_integration_of_the_cdf() -> None:
    loc, scale, y = _mixture(seed=10, s=3, n=2)
    scale[1] = 0.0  # one point-mass component per point as well
    ours = crps_samples((loc, scale), y, reduction="none")
    for j in range(2):
        def integrand(t, j=j):
            f = np.mean([norm.cdf(t, loc[s, j], scale[s, j]) if scale[s, j] > 0
                         else float(loc[s, j] <= t) for s in range(3)])
            return (f - float(t >= y[j])) ** 2
        kinks = sorted([float(y[j]), float(loc[1, j])])
        val = integrate.quad(integrand, -15, 15, points=kinks, limit=200)[0]
        assert float(ours[j]) == pytest.approx(val, abs=1e-6)


def test_crps_is_the_same_when_computed_in_chunks(monkeypatch) -> None:
    loc, scale, y = _mixture(seed=11, s=5, n=40)
    whole = crps_samples((loc, scale), y, reduction="none")
    monkeypatch.setattr(regression, "_CHUNK_ELEMENTS", 60)  # 2 points per chunk
    assert torch.allclose(crps_samples((loc, scale), y, reduction="none"), whole, atol=1e-14)


def test_regression_report_has_the_contract_keys() -> None:
    loc, scale, y = _mixture(seed=12, s=8, n=100)
    report = regression_report(PredictiveSamples(loc=loc, scale=scale), y)
    assert {"rmse", "nll", "crps", "coverage_50", "coverage_90", "coverage_95"} <= set(report)
    assert all(isinstance(v, float) and math.isfinite(v) for v in report.values())


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: rmse(torch.zeros(2, 3), [0.0, 1.0]), "3 points"),
        (lambda: rmse(torch.zeros(3), [0.0, float("nan"), 1.0]), "NaN"),
        (lambda: rmse(torch.zeros(3), torch.zeros(3, 2)), r"shape \(N,\)"),
        (lambda: rmse(torch.tensor([0.0, float("inf")]), [0.0, 1.0]), "NaN or inf"),
        (lambda: crps_samples((torch.zeros(3), -torch.ones(3)), torch.zeros(3)), "non-negative"),
        (lambda: interval_coverage(torch.zeros(3), torch.zeros(3), [1.2]), "levels"),
        (lambda: predictive_quantiles(torch.zeros(3), [0.0]), "quantile levels"),
        (lambda: pit_histogram(torch.zeros(3), torch.zeros(3), n_bins=0), "n_bins"),
        (lambda: gaussian_nll(torch.zeros(3), torch.zeros(3), method="laplace"), "method"),
        (lambda: rmse(PredictiveSamples(probs=torch.eye(2)[None]), [0.0, 1.0]), "regression"),
    ],
)
def test_bad_regression_inputs_raise_value_errors(call, match) -> None:
    with pytest.raises(ValueError, match=match):
        call()
