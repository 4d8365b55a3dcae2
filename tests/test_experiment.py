"""The shared experiment path: every model name trains, predicts and is scored the same way."""

from __future__ import annotations

import math

import pytest

from hvgp.config import MODELS, RunConfig
from hvgp.experiment import GP_MODELS, compare, format_table, run

NEURAL = [m for m in MODELS if m not in GP_MODELS]
BASE = RunConfig(data="moons", arch="mlp", width=0.25, epochs=2, batch_size=64, device="cpu",
                 sparsity=0.0)


@pytest.mark.parametrize("model", NEURAL)
def test_every_neural_model_runs_through_the_same_path(model: str) -> None:
    sparse = model not in ("dense", "ensemble", "temperature")
    res = run(BASE.updated(model=model, sparsity=0.8 if sparse else 0.0), shift=False)
    m = res.metrics
    assert 0.0 <= m["accuracy"] <= 1.0 and 0.0 <= m["ece"] <= 1.0 and math.isfinite(m["nll"])
    assert res.sparsity == pytest.approx(0.8 if sparse else 0.0, abs=0.02)
    assert res.train_seconds > 0 and res.nonzero_params > 0


def test_rigl_in_a_comparison_has_no_random_mask_and_cigl_does() -> None:
    results = compare(["cigl", "rigl"], "moons", seeds=[0], base=BASE.updated(sparsity=0.5))
    cigl, rigl = (r.estimator for r in results)
    assert set(cigl.bnn.drop_rates.values()) == {BASE.drop_rate}
    assert set(rigl.bnn.drop_rates.values()) == {0.0}
    assert cigl.config["averaging"] and not rigl.config["averaging"]


def test_gp_models_go_through_the_same_path() -> None:
    res = run(BASE.updated(model="svgp", epochs=30), shift=False)
    assert res.metrics["accuracy"] > 0.7
    assert "| svgp |" in format_table([res])


def test_mnist1d_run_reports_shift_metrics() -> None:
    res = run(RunConfig(model="rigl", data="mnist1d", arch="mlp", width=0.25, epochs=1,
                        device="cpu", sparsity=0.5))
    assert {"shift_accuracy", "shift_ece", "ood_auroc"} <= set(res.metrics)
    assert 0.0 <= res.metrics["ood_auroc"] <= 1.0


def test_paired_comparison_pairs_by_seed_against_rigl_and_needs_two_seeds() -> None:
    from hvgp.experiment import default_reference, paired_comparison

    results = compare(["cigl", "rigl"], "moons", seeds=[0, 1], base=BASE.updated(sparsity=0.5))
    assert default_reference(results) == "rigl"
    table = paired_comparison(results)
    line = next(ln for ln in table.splitlines() if ln.startswith("| cigl |"))
    cigl = {r.config.seed: r.metrics["ece"] for r in results if r.config.model == "cigl"}
    rigl = {r.config.seed: r.metrics["ece"] for r in results if r.config.model == "rigl"}
    mean = sum(cigl[s] - rigl[s] for s in (0, 1)) / 2
    assert line.split("|")[2].strip() == "2"
    assert f"{abs(mean):.2g}"[:3] in line.split("|")[3].replace("−", "-")
    assert "Δ ece" in table and "Δ accuracy" in table
    assert paired_comparison([r for r in results if r.config.seed == 0]) == ""  # one seed
    # another reference on request
    assert "model − cigl" in paired_comparison(results, "cigl")


def test_a_regression_comparison_tables_rmse_crps_and_coverage() -> None:
    """Regression runs have no accuracy/ECE: their table shows the regression scores."""
    from hvgp.config import RunConfig
    from hvgp.experiment import compare, format_table, paired_comparison

    base = RunConfig(data="gap1d", arch="mlp", width=0.25, epochs=1, batch_size=32,
                     sparsity=0.5, device="cpu")
    res = compare(["rigl", "dense"], "gap1d", seeds=[0, 1], base=base)
    header = format_table(res).splitlines()[0]
    assert all(k in header for k in ("nll", "rmse", "crps", "coverage_90"))
    assert "accuracy" not in header
    assert "Δ rmse" in paired_comparison(res, "rigl") and "Δ crps" in paired_comparison(res)
