"""``TuneResult.notes``: p = 0 chosen and choices at a grid edge are said, not only shown."""

from __future__ import annotations

import warnings

import pytest

from hvgp.tune import TuneResult, _choose, tune

GRID = {"drop_rate": [0.0, 0.005, 0.01, 0.05], "average_start": [0.75, 0.8, 0.9]}


def _result(scores: dict[tuple[float, float], float]) -> TuneResult:
    """A result whose single-seed trials have the given validation NLLs (others: 9)."""
    res = TuneResult({k: list(v) for k, v in GRID.items()}, [100], "val_nll")
    for p in GRID["drop_rate"]:
        for t in GRID["average_start"]:
            nll = scores.get((p, t), 9.0)
            res.trials.append({"params": {"drop_rate": p, "average_start": t}, "seed": 100,
                               "val_nll": nll, "val_brier": nll, "val_accuracy": 0.5,
                               "val_ece": 0.1, "val_ece_floor": 0.01, "val_ece_debiased": 0.1})
    res.best = _choose(res)
    return res


def test_an_interior_choice_has_no_note() -> None:
    res = _result({(0.01, 0.8): 1.0})
    assert res.best == {"drop_rate": 0.01, "average_start": 0.8}
    assert res.notes() == [] and "Note:" not in res.table()


def test_p_zero_is_said_to_mean_averaging_only() -> None:
    notes = _result({(0.0, 0.8): 1.0}).notes()
    assert len(notes) == 1 and "drop_rate = 0" in notes[0] and "averaging" in notes[0]


@pytest.mark.parametrize(("point", "words"), [((0.005, 0.8), ["drop_rate = 0.005", "lowest"]),
                                               ((0.05, 0.8), ["drop_rate = 0.05", "highest"]),
                                               ((0.01, 0.9), ["average_start = 0.9", "highest"])])
def test_a_choice_at_the_edge_says_to_extend_the_grid(point, words) -> None:
    res = _result({point: 1.0})
    (note,) = res.notes()
    assert all(w in note for w in words) and "extend" in note
    assert f"Note: {note}." in res.table() and res.to_dict()["notes"] == [note]


def test_tune_warns_with_the_notes() -> None:
    class Est:
        """Validation NLL grows with p: p = 0 wins."""

        user_callbacks: list = []
        averaged_ = None
        averaging_recipe = None

        def __init__(self, p: float) -> None:
            self.p = p

        def fit(self, *_a, **_k) -> Est:
            return self

        def evaluate(self, _val) -> dict[str, float]:
            return {"nll": 1.0 + self.p, "brier": 0.5}

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = tune(lambda params, seed: Est(params["drop_rate"]), [], [], 1,
                   {"drop_rate": [0.0, 0.01, 0.05]}, seeds=[100], progress=False)
    assert res.best == {"drop_rate": 0.0}
    assert any("drop_rate = 0 chosen" in str(w.message) for w in caught)
