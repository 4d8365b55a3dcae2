"""Plots write real images, draw the numbers the metrics compute, and reject bad input."""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from hvgp.metrics import predictive_quantiles, reliability_bins
from hvgp.plots import (
    aggregate_records,
    calibration_vs_sparsity,
    regression_fan,
    reliability_diagram,
    reliability_grid,
)
from hvgp.predict import PredictiveSamples


def _classification(n: int = 400, c: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    probs = (2 * torch.randn(n, c, generator=g)).softmax(-1)
    labels = torch.randint(0, c, (n,), generator=g)
    return probs, labels


def _regression():
    g = torch.Generator().manual_seed(1)
    x = torch.linspace(-3, 3, 80)
    loc = torch.sin(x)[None] + 0.2 * torch.randn(10, 1, generator=g) * x[None]
    samples = PredictiveSamples(loc=loc, scale=0.1 * torch.ones_like(loc))
    return torch.randn(15, generator=g), torch.randn(15, generator=g), x, samples


def _records():
    return [
        {"method": m, "sparsity": s, "ece": base + 0.01 * s + 0.002 * k}
        for m, base in (("RigL", 0.04), ("CigL", 0.03))
        for s in (0.8, 0.9, 0.95)
        for k in range(3)
    ]


def _assert_real_png(path: Path, min_side: int = 200) -> None:
    img = mpimg.imread(path)
    assert img.ndim == 3 and min(img.shape[:2]) >= min_side
    rgb = img[..., :3]
    ink = (rgb < 0.9).any(-1).mean()  # fraction of pixels that are not (near) white
    assert 0.02 < ink < 0.9, f"image looks blank or flooded (ink fraction {ink:.3f})"
    assert np.unique(rgb.reshape(-1, 3), axis=0).shape[0] > 20  # more than a few flat colours


def test_png_check_rejects_a_blank_figure(tmp_path) -> None:
    fig = Figure(figsize=(4, 4))
    fig.add_subplot().set_axis_off()
    fig.savefig(tmp_path / "blank.png")
    with pytest.raises(AssertionError, match="blank"):
        _assert_real_png(tmp_path / "blank.png")


def test_reliability_grid_writes_a_nonblank_png_with_one_column_per_method(tmp_path) -> None:
    probs, labels = _classification()
    results = {"a": (probs, labels), "b": (PredictiveSamples(probs=probs[None]), labels),
               "c": (probs.numpy(), labels.numpy())}
    fig = reliability_grid(results, path=tmp_path / "grid.png")
    _assert_real_png(tmp_path / "grid.png")
    assert isinstance(fig, Figure) and len(fig.axes) == 6
    assert [ax.get_title() for ax in fig.axes[:3]] == ["a", "b", "c"]


def test_reliability_diagram_bars_are_the_binned_accuracies(tmp_path) -> None:
    probs, labels = _classification(seed=2)
    ax = reliability_diagram(probs, labels, n_bins=10, title="m")
    bins = reliability_bins(probs, labels, n_bins=10)
    full = bins["count"] > 0
    acc_bars = ax.containers[0]
    np.testing.assert_allclose([b.get_height() for b in acc_bars], bins["accuracy"][full])
    gap_bars = ax.containers[1]
    tops = [b.get_y() + b.get_height() for b in gap_bars]
    np.testing.assert_allclose(tops, bins["confidence"][full])
    assert any("ECE" in t.get_text() for t in ax.texts)
    ax.figure.savefig(tmp_path / "one.png")
    _assert_real_png(tmp_path / "one.png")


def test_reliability_diagram_draws_on_a_given_axes_without_a_histogram() -> None:
    fig = Figure()
    ax = fig.add_subplot()
    probs, labels = _classification(seed=3)
    assert reliability_diagram(probs, labels, ax=ax) is ax
    assert len(fig.axes) == 1


def test_calibration_vs_sparsity_plots_means_with_std_error_bars(tmp_path) -> None:
    fig = calibration_vs_sparsity(_records(), path=tmp_path / "sparsity.svg")
    text = (tmp_path / "sparsity.svg").read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text and len(text) > 5000
    ax = fig.axes[0]
    line = ax.lines[0]
    np.testing.assert_allclose(line.get_xdata(), [80, 90, 95])
    np.testing.assert_allclose(line.get_ydata(), [0.04 + 0.01 * s + 0.002 for s in (.8, .9, .95)])
    table = aggregate_records(_records())
    np.testing.assert_allclose(table["CigL"]["hi"] - table["CigL"]["value"], 0.002)  # std of 3
    fig.savefig(tmp_path / "sparsity.png")
    _assert_real_png(tmp_path / "sparsity.png")


def test_single_records_use_their_own_interval_for_error_bars() -> None:
    recs = [{"method": "m", "sparsity": 0.9, "ece": 0.05, "ece_lo": 0.04, "ece_hi": 0.07}]
    col = aggregate_records(recs)["m"]
    assert (col["lo"][0], col["value"][0], col["hi"][0]) == (0.04, 0.05, 0.07)


def test_regression_fan_draws_predictive_bands_and_training_points(tmp_path) -> None:
    x_train, y_train, x, samples = _regression()
    fig = regression_fan(x_train, y_train, x, samples, path=tmp_path / "fan.png")
    _assert_real_png(tmp_path / "fan.png")
    ax = fig.axes[0]
    band = ax.collections[0].get_paths()[0].vertices  # widest (90 %) band polygon
    q = predictive_quantiles(samples, [0.05, 0.95]).numpy()
    assert band[:, 1].min() == pytest.approx(q[0].min(), abs=1e-5)
    assert band[:, 1].max() == pytest.approx(q[1].max(), abs=1e-5)
    offsets = ax.collections[-1].get_offsets()
    np.testing.assert_allclose(offsets, np.stack([x_train.numpy(), y_train.numpy()], 1), rtol=1e-6)


def test_plots_do_not_register_pyplot_figures() -> None:
    probs, labels = _classification()
    reliability_grid({"a": (probs, labels)})
    calibration_vs_sparsity(_records())
    if "matplotlib.pyplot" in sys.modules:
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: reliability_grid({}), "non-empty"),
        (lambda: reliability_grid({"a": torch.eye(2)}), "pair"),
        (lambda: reliability_grid({"a": (torch.eye(2), [0, 1])}, path="out.jpg"), r"\.png"),
        (lambda: reliability_diagram([[0.5, 0.6]], [0]), "sum to 1"),
        (lambda: calibration_vs_sparsity([]), "empty"),
        (lambda: calibration_vs_sparsity([{"method": "m", "ece": 0.1}]), "'sparsity'"),
        (lambda: calibration_vs_sparsity([{"method": "m", "sparsity": 90, "ece": 0.1}]),
         "fraction"),
        (lambda: calibration_vs_sparsity(_records(), metric="mce"), "'mce'"),
        (lambda: regression_fan([0.0], [0.0, 1.0], torch.zeros(3), torch.zeros(2, 3)), "y_train"),
        (lambda: regression_fan([0.0], [0.0], torch.zeros(4), torch.zeros(2, 3)), "x_test"),
        (lambda: regression_fan([0.0], [0.0], torch.zeros(3, 2), torch.zeros(2, 3)), "1-D"),
    ],
)
def test_bad_plot_inputs_raise_value_errors(call, match) -> None:
    with pytest.raises(ValueError, match=match):
        call()
