"""The reliability grid is laid out in rows of at most ``max_cols`` panels, not one long row."""

from __future__ import annotations

import pytest
import torch

from hvgp.plots.reliability import grid_shape, reliability_grid


def _results(n: int) -> dict:
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(3 * torch.randn(200, 3, generator=g), -1)
    labels = torch.randint(0, 3, (200,), generator=g)
    return {f"m{i}": (probs, labels) for i in range(n)}


@pytest.mark.parametrize("n, rows, cols", [(1, 1, 1), (4, 1, 4), (9, 3, 3)])
def test_grid_size_axes_count_and_positions(n, rows, cols, tmp_path) -> None:
    fig = reliability_grid(_results(n), path=tmp_path / "grid.png")
    assert grid_shape(n) == (rows, cols)
    assert tuple(fig.get_size_inches()) == pytest.approx((3.2 * cols, 4.6 * rows))
    assert len(fig.axes) == 2 * n  # a histogram and a diagram per method, no empty axes
    hists, diagrams = fig.axes[:n], fig.axes[n:]
    assert [h.get_title() for h in hists] == [f"m{i}" for i in range(n)]
    fig.canvas.draw()  # constrained layout places the axes
    for j, (h, ax) in enumerate(zip(hists, diagrams)):
        r, c = divmod(j, cols)
        box, top = ax.get_position(), h.get_position()
        assert top.y0 >= box.y1 - 1e-6 and abs(top.x0 - box.x0) < 1e-6  # histogram on top
        assert box.x0 == pytest.approx((c + 0.08) / cols, abs=0.1 / cols)  # column c
        assert box.y1 < 1 - r / rows + 1e-6 and box.y0 > 1 - (r + 1) / rows - 1e-6  # row r
        assert (ax.get_ylabel() == "accuracy") == (c == 0)
        assert ax.get_xlabel() == "confidence" and ax.xaxis.get_ticklabels()[0].get_visible()


def test_grid_shape_fills_at_most_max_cols_and_rejects_bad_counts() -> None:
    assert grid_shape(5) == (2, 3) and grid_shape(8, max_cols=5) == (2, 4)
    assert grid_shape(12, max_cols=5) == (3, 4)
    for n in range(1, 30):
        rows, cols = grid_shape(n, 5)
        assert cols <= 5 and rows * cols >= n > (rows - 1) * cols
    with pytest.raises(ValueError, match="max_cols"):
        grid_shape(3, max_cols=0)
    with pytest.raises(ValueError, match="max_cols"):
        reliability_grid(_results(2), max_cols=0)
