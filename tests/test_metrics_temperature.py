"""Temperature scaling: recovers a known temperature, optimises NLL, keeps accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hvgp.metrics import TemperatureScaling, accuracy, ece, nll
from hvgp.predict import PredictiveSamples


def _overconfident(n: int, t_true: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits whose labels are drawn from ``softmax(logits / t_true)``."""
    g = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(n, 5, generator=g, dtype=torch.float64)
    labels = torch.multinomial((logits / t_true).softmax(-1), 1, generator=g).squeeze(1)
    return logits, labels


def test_fit_recovers_the_temperature_that_generated_the_labels() -> None:
    logits, labels = _overconfident(6000, 2.0, seed=0)
    assert TemperatureScaling().fit(logits, labels).temperature == pytest.approx(2.0, rel=0.08)


def test_fitted_temperature_minimises_validation_nll_on_a_grid() -> None:
    logits, labels = _overconfident(800, 1.7, seed=1)
    t = TemperatureScaling().fit(logits, labels).temperature
    grid = np.exp(np.linspace(-1, 2, 301))
    grid_nll = [nll((logits / g).softmax(-1), labels) for g in grid]
    best = float(grid[int(np.argmin(grid_nll))])
    assert t == pytest.approx(best, rel=0.02)
    assert nll((logits / t).softmax(-1), labels) <= min(grid_nll) + 1e-9


def test_probabilities_and_logits_give_the_same_temperature() -> None:
    logits, labels = _overconfident(500, 1.5, seed=2)
    t_logits = TemperatureScaling().fit(logits, labels).temperature
    t_probs = TemperatureScaling().fit(logits.softmax(-1).numpy(), labels.numpy()).temperature
    assert t_probs == pytest.approx(t_logits, rel=1e-5)


def test_held_out_ece_drops_and_accuracy_is_unchanged() -> None:
    logits, labels = _overconfident(4000, 2.5, seed=3)
    ts = TemperatureScaling().fit(logits[:2000], labels[:2000])
    before, after = logits[2000:].softmax(-1), ts.transform(logits[2000:])
    assert after.shape == before.shape
    assert torch.allclose(after.sum(-1), torch.ones(2000, dtype=after.dtype))
    assert accuracy(after, labels[2000:]) == accuracy(before, labels[2000:])
    assert ece(after, labels[2000:]) < 0.5 * ece(before, labels[2000:])


def test_predictive_samples_are_tempered_per_sample() -> None:
    logits, labels = _overconfident(300, 2.0, seed=4)
    g = torch.Generator().manual_seed(0)
    per_sample = (logits[None] + 0.5 * torch.randn(4, 300, 5, generator=g)).softmax(-1)
    samples = PredictiveSamples(probs=per_sample)
    ts = TemperatureScaling().fit(samples, labels)
    out = ts.transform(samples)
    assert isinstance(out, PredictiveSamples) and out.probs.shape == (4, 300, 5)
    expected = (per_sample.log() / ts.temperature).softmax(-1)
    assert torch.allclose(out.probs, expected, atol=1e-10)


def test_single_sample_predictive_fits_like_plain_probabilities() -> None:
    logits, labels = _overconfident(300, 2.0, seed=5)
    probs = logits.softmax(-1)
    t_plain = TemperatureScaling().fit(probs, labels).temperature
    t_samples = TemperatureScaling().fit(PredictiveSamples(probs=probs[None]), labels).temperature
    assert t_samples == pytest.approx(t_plain, rel=1e-5)


def test_kind_logits_forces_logit_interpretation_of_probability_like_rows() -> None:
    rows = torch.tensor([[0.6, 0.4], [0.3, 0.7]], dtype=torch.float64)
    ts = TemperatureScaling()
    ts.temperature = 1.0
    assert torch.allclose(ts.transform(rows, kind="probs"), rows)
    assert torch.allclose(ts.transform(rows, kind="logits"), rows.softmax(-1))


def test_uninformative_validation_set_warns_at_the_search_bound() -> None:
    g = torch.Generator().manual_seed(6)
    logits, labels = torch.randn(500, 3, generator=g), torch.randint(0, 3, (500,), generator=g)
    with pytest.warns(UserWarning, match="bound"):
        TemperatureScaling().fit(logits, labels)


def test_misuse_raises_clear_errors() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        TemperatureScaling().transform(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        TemperatureScaling().fit(torch.zeros(2, 3), [0, 3])
    with pytest.raises(ValueError, match="NaN"):
        TemperatureScaling().fit(torch.tensor([[float("nan"), 0.0]]), [0])
    with pytest.raises(ValueError, match="shape"):
        TemperatureScaling().fit(torch.zeros(3), [0, 1, 2])
    with pytest.raises(ValueError, match="kind"):
        TemperatureScaling().fit(torch.zeros(2, 3), [0, 1], kind="energies")
