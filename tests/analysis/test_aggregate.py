"""Human-normalised matrices and rliable's aggregates against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from lit_rl.analysis.aggregate import (
    aggregate_estimates,
    human_random_scores,
    normalized_matrix,
    performance_profiles,
    probability_of_improvement,
)
from lit_rl.analysis.scores import Runs


def scores_of(**games: list[float]) -> dict:
    """One agent ``A`` whose runs have the given run scores (one evaluation each)."""
    return {g: {"A": Runs(np.array([1]), np.array([s], dtype=float), (None,) * len(s))} for g, s in games.items()}


def test_agent57_tables() -> None:
    table = human_random_scores()
    assert len(table) == 56
    assert table["VideoPinball"] == (0.0, 17667.9)  # Agent57's random score, not the DQN-era 16,256.9
    assert table["Pong"] == (-20.7, 14.6) and table["Defender"] == (2874.5, 18688.9)


def test_normalized_matrix_by_hand() -> None:
    scores = scores_of(Pong=[-20.7, 14.6, 50.0], Breakout=[1.7, 30.5, 16.1])
    matrix = normalized_matrix(scores, "A")  # games sorted: Breakout, Pong
    expected = [[0.0, 0.0], [1.0, 1.0], [(16.1 - 1.7) / 28.8, (50.0 + 20.7) / 35.3]]
    np.testing.assert_allclose(matrix, expected)
    with pytest.raises(ValueError, match="no random/human scores for \\['Surround2'\\]"):
        normalized_matrix(scores_of(Surround2=[1.0]), "A")


def test_point_estimates_by_hand_and_intervals_around_them() -> None:
    x = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 0.5], [6.0, 2.0]])  # 4 runs x 2 games
    pooled = np.sort(x.ravel())  # 0, .5, 1, 2, 2, 3, 4, 6: the IQM keeps the middle four
    estimates = aggregate_estimates({"A": x, "B": np.ones((4, 2))}, reps=300)
    a = estimates["A"]
    assert a["median"].point == pytest.approx(np.median([3.0, 1.625]))  # median of per-game means
    assert a["iqm"].point == pytest.approx(pooled[2:6].mean())
    assert a["mean"].point == pytest.approx(x.mean())
    assert a["optimality_gap"].point == pytest.approx(1 - np.minimum(x, 1).mean())
    for e in a.values():
        assert e.low <= e.point <= e.high and e.low < e.high
    b = estimates["B"]
    assert (b["iqm"].low, b["iqm"].point, b["iqm"].high) == (1.0, 1.0, 1.0)  # identical runs: no spread


def test_probability_of_improvement_by_hand() -> None:
    x = np.array([[1.0, 5.0], [3.0, 5.0]])
    y = np.array([[2.0, 5.0], [0.0, 4.0]])
    # game 0: pairs (1,2) lose, (1,0) win, (3,2) win, (3,0) win -> 3/4; game 1: ties 0.5 twice, wins twice -> 3/4
    est = probability_of_improvement({"X": x, "Y": y}, [("X", "Y")], reps=200)[("X", "Y")]
    assert est.point == pytest.approx(0.75)
    assert est.low <= 0.75 <= est.high


def test_performance_profile_by_hand() -> None:
    x = np.array([[0.0, 1.0], [2.0, 3.0]])
    _, profiles, bands = performance_profiles({"A": x}, taus=np.array([-1.0, 0.5, 2.5, 5.0]), reps=100)
    np.testing.assert_allclose(profiles["A"], [1.0, 0.75, 0.25, 0.0])  # fraction of runs above each tau
    assert bands["A"].shape == (2, 4)


def test_sample_efficiency_is_the_iqm_at_each_evaluation() -> None:
    from lit_rl.analysis.aggregate import sample_efficiency

    # Pong HNS = (x + 20.7) / 35.3: build scores whose normalised values are known.
    def pong(*hns_per_eval: list[float]) -> Runs:
        evals = np.array(hns_per_eval) * 35.3 - 20.7  # [E, R]
        return Runs(np.array([10, 20]), evals, (None,) * evals.shape[1])

    scores = {"Pong": {"A": pong([0.0, 1.0, 2.0, 3.0], [1.0, 1.0, 5.0, 9.0])}}
    steps, iqm, intervals = sample_efficiency(scores, ["A"], reps=100)
    np.testing.assert_array_equal(steps, [10, 20])
    np.testing.assert_allclose(iqm["A"], [1.5, 3.0])  # the middle two of four runs at each step
    assert intervals["A"].shape == (2, 2)


def test_sample_efficiency_names_the_evaluations_it_leaves_out() -> None:
    from lit_rl.analysis.aggregate import sample_efficiency

    def runs(steps: list[int]) -> Runs:
        return Runs(np.array(steps), np.zeros((len(steps), 2)), (None, None))

    scores = {"Pong": {"A": runs([10, 20, 30])}, "Breakout": {"A": runs([10, 20])}}
    with pytest.warns(UserWarning, match=r"sample efficiency: evaluations at \[30\] env steps left out"):
        steps, _, _ = sample_efficiency(scores, ["A"], reps=10)
    np.testing.assert_array_equal(steps, [10, 20])
    with pytest.raises(ValueError, match=r"Breakout/A has no evaluation at \[30\] env steps"):
        sample_efficiency(scores, ["A"], steps=[10, 30], reps=10)
