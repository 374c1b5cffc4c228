"""Score tables from lit_rl run directories and from the study's pickle, against hand computations."""

from __future__ import annotations

import csv
import math
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from lit_rl.analysis.scores import Runs, axis_classes, load_run_dirs, load_study_results
from lit_rl.analysis.tables import game_table, markdown, to_csv, wins_per_agent, wins_per_class
from lit_rl.errors import ConfigError
from tests.study_data import study_pickle

STUDY_AGENTS = ("NA", "SWA", "CWRA", "CWCA", "CWRCA")


def test_run_dirs_become_one_table(tmp_path: Path, make_run) -> None:
    runs = [
        make_run(tmp_path, "a", "PongNoFrameskip-v4", "CWRA", 42, [100, 200, 300], [1.0, 2.0, 6.0]),
        make_run(tmp_path, "b", "PongNoFrameskip-v4", "CWRA", 1, [100, 200], [0.0, 4.0]),
        make_run(tmp_path, "c", "ALE/Pong-v5", None, 1, [100, 200], [5.0, 5.0]),
    ]
    with pytest.warns(UserWarning) as record:  # run a's evaluation at 300 is not in b's: left out, said so
        scores = load_run_dirs(runs)
    assert [str(w.message) for w in record] == [
        "Pong/CWRA seed 42: evaluations at [300] env steps left out (not reached by every run of Pong/CWRA; "
        "the runs are compared at 2 shared evaluations)"
    ]
    assert set(scores) == {"Pong"} and set(scores["Pong"]) == {"CWRA", "logger_name"}
    cwra = scores["Pong"]["CWRA"]
    assert cwra.seeds == (1, 42)  # ordered by seed
    np.testing.assert_array_equal(cwra.timesteps, [100, 200])  # the evaluations both runs reached
    np.testing.assert_array_equal(cwra.evals, [[0.0, 1.0], [4.0, 2.0]])
    np.testing.assert_array_equal(cwra.run_scores, [2.0, 1.5])


def test_run_dirs_reject_duplicates_and_non_runs(tmp_path: Path, make_run) -> None:
    a = make_run(tmp_path, "a", "PongNoFrameskip-v4", "NA", 1, [100], [1.0])
    b = make_run(tmp_path, "b", "PongNoFrameskip-v4", "NA", 1, [100], [2.0])
    with pytest.raises(ValueError, match="same seed"):
        load_run_dirs([a, b])
    with pytest.raises(ValueError, match="not a lit_rl run directory"):
        load_run_dirs([tmp_path])


def test_tables_against_a_hand_computed_matrix() -> None:
    def runs(*scores: float) -> Runs:
        evals = np.array([scores, scores]) + np.array([[-1.0], [1.0]])  # two evaluations averaging to each score
        return Runs(np.array([1, 2]), evals, (None,) * len(scores))

    scores = {
        "Pong": {"NA": runs(1.0, 3.0), "CWCA": runs(4.0, 8.0)},
        "Breakout": {"NA": runs(10.0, 10.0), "CWCA": runs(2.0, 6.0)},
        "Hero": {"NA": runs(0.0, 2.0), "CWCA": runs(1.0, 2.0)},
    }
    rows = game_table(scores, ["NA", "CWCA"])
    assert [r.game for r in rows] == ["Breakout", "Hero", "Pong"]
    pong = rows[2]
    assert pong.mean == {"NA": 2.0, "CWCA": 6.0} and pong.winner == "CWCA"
    assert pong.se == pytest.approx({"NA": 1.0 / math.sqrt(2), "CWCA": 2.0 / math.sqrt(2)})  # ddof 0
    assert rows[0].se["NA"] == 0.0 and rows[0].winner == "NA"
    assert wins_per_agent(rows) == {"NA": 1, "CWCA": 2}
    classes = {"Pong": "horizontal", "Breakout": "vertical"}
    with pytest.warns(UserWarning, match=r"wins per class: \['Hero'\] left out \(no axis class"):
        per_class = wins_per_class(rows, classes)
    assert per_class == {"vertical": {"NA": 1, "CWCA": 0}, "horizontal": {"NA": 0, "CWCA": 1}}
    text = markdown(rows)
    assert "| Pong | 2.0 ± 0.7 | **6.0 ± 1.4** |" in text and "| wins | 1 | 2 |" in text
    lines = to_csv(rows).splitlines()
    assert lines[0] == "game,NA_mean,NA_se,CWCA_mean,CWCA_se,winner"
    assert lines[3].split(",")[0] == "Pong" and float(lines[3].split(",")[3]) == 6.0
    with pytest.raises(ValueError, match="Pong has no runs of"):
        game_table({"Pong": {"NA": runs(1.0)}}, ["NA", "SWA"])


def test_axis_classes_are_the_studys_56_games() -> None:
    classes = axis_classes()
    assert len(classes) == 56 and "Surround" not in classes
    counts = {c: list(classes.values()).count(c) for c in set(classes.values())}
    assert counts == {"horizontal": 12, "vertical": 18, "none": 5, "off_axis": 5, "several": 16}
    assert classes["Pong"] == "horizontal" and classes["Breakout"] == "vertical"


def test_the_restricted_unpickler_refuses_code(tmp_path: Path) -> None:
    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"PongNoFrameskip-v4": Exploit()}))
    with pytest.raises(ConfigError, match=r"evil.pkl is not the study's results pickle \(refusing to load"):
        load_study_results(path)


def _raw_study_results() -> dict:
    with open(study_pickle(), "rb") as f:
        return pickle.load(f)  # the trusted file, read the plain way for the reference


def _reference_table(raw: dict) -> dict[str, dict[str, tuple[float, float]]]:
    """``game -> agent -> (mean, se)`` of the run scores, in plain Python loops over the pickle."""
    table = {}
    for env_id, agents in raw.items():
        game = env_id.removesuffix("NoFrameskip-v4")
        table[game] = {}
        for agent, data in agents.items():
            per_eval = data["mean_per_eval"]  # [50 evaluations, 5 seeds]
            n_evals, n_seeds = len(per_eval), len(per_eval[0])
            seeds = [sum(float(per_eval[e][s]) for e in range(n_evals)) / n_evals for s in range(n_seeds)]
            mean = sum(seeds) / n_seeds
            se = math.sqrt(sum((x - mean) ** 2 for x in seeds) / n_seeds) / math.sqrt(n_seeds)
            table[game][agent] = (mean, se)
    return table


@pytest.mark.study_data
def test_the_studys_table_matches_values_computed_from_the_pickle() -> None:
    """All 56 games x 5 agents: mean and SE of the run score, the winner, the wins per agent and per axis
    class, against plain loops over the pickle and against the README's figures."""
    scores = load_study_results(study_pickle())
    reference = _reference_table(_raw_study_results())
    assert len(scores) == len(reference) == 56
    assert all(set(agents) == set(STUDY_AGENTS) for agents in scores.values())
    rows = {row.game: row for row in game_table(scores, list(STUDY_AGENTS))}
    assert set(rows) == set(reference)
    winners = {}
    for game, per_agent in reference.items():
        for agent, (mean, se) in per_agent.items():
            assert rows[game].mean[agent] == pytest.approx(mean, rel=1e-12, abs=1e-12), (game, agent)
            assert rows[game].se[agent] == pytest.approx(se, rel=1e-9, abs=1e-12), (game, agent)
        winners[game] = max(STUDY_AGENTS, key=lambda a: per_agent[a][0])
        assert rows[game].winner == winners[game], game
    wins = {agent: list(winners.values()).count(agent) for agent in STUDY_AGENTS}
    assert wins_per_agent(list(rows.values())) == wins
    assert wins == {"NA": 23, "SWA": 5, "CWRA": 8, "CWCA": 14, "CWRCA": 6}  # the README's table
    classes = axis_classes()
    per_class = wins_per_class(list(rows.values()), classes)
    for axis_class in set(classes.values()):
        games = [g for g in winners if classes[g] == axis_class]
        assert per_class[axis_class] == {a: [winners[g] for g in games].count(a) for a in STUDY_AGENTS}
    # The README's sentence on the wins per main axis of dynamics.
    assert per_class["horizontal"] == {"NA": 3, "SWA": 0, "CWRA": 1, "CWCA": 8, "CWRCA": 0}
    assert per_class["vertical"] == {"NA": 5, "SWA": 4, "CWRA": 4, "CWCA": 3, "CWRCA": 2}
    assert per_class["off_axis"]["NA"] == 5 and per_class["several"]["NA"] == 9


def _human_random_from_csv() -> dict[str, tuple[float, float]]:
    """The shipped Agent57 table, parsed here with the csv module (the data, not the code under test)."""
    path = Path(__file__).parents[2] / "lit_rl" / "analysis" / "data" / "atari_human_random.csv"
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return {r["game"]: (float(r["random"]), float(r["human"])) for r in csv.DictReader(lines)}


@pytest.mark.study_data
def test_the_studys_aggregate_points_match_the_readme() -> None:
    """The point estimates of the README's aggregate table (median, IQM, mean, optimality gap of the
    human-normalised run scores), recomputed with numpy from the pickle, and lit_rl's (normalised
    matrices, rliable's points) against them; the intervals need rliable's bootstrap (18 minutes) and are
    not recomputed here."""
    from lit_rl.analysis.aggregate import aggregate_estimates, normalized_matrix

    scores = load_study_results(study_pickle())
    reference = _reference_table(_raw_study_results())
    human_random = _human_random_from_csv()
    readme = {  # agent: median, IQM, mean, optimality gap (README, "The study's own results through it")
        "NA": (0.432, 0.442, 1.623, 0.536),
        "SWA": (0.366, 0.425, 1.514, 0.538),
        "CWRA": (0.401, 0.432, 1.640, 0.535),
        "CWCA": (0.416, 0.462, 1.625, 0.516),
        "CWRCA": (0.373, 0.410, 1.450, 0.540),
    }
    raw = _raw_study_results()
    games = sorted(reference)
    for agent, expected in readme.items():
        columns = []
        for game in games:
            per_eval = np.asarray(raw[f"{game}NoFrameskip-v4"][agent]["mean_per_eval"], dtype=np.float64)
            random, human = human_random[game]
            columns.append((per_eval.mean(axis=0) - random) / (human - random))
        x = np.stack(columns, axis=1)  # [5 runs, 56 games]
        pooled = np.sort(x.ravel())
        quarter = len(pooled) // 4  # 280 scores: 70 cut at each end
        median = float(np.median(x.mean(axis=0)))
        iqm = float(pooled[quarter : len(pooled) - quarter].mean())
        gap = float(1.0 - np.minimum(x, 1.0).mean())
        got = (median, iqm, float(x.mean()), gap)
        assert got == pytest.approx(expected, abs=5e-4), (agent, got)
        matrix = normalized_matrix(scores, agent)
        np.testing.assert_allclose(matrix, x, rtol=1e-12)
        points = aggregate_estimates({agent: matrix}, reps=10)[agent]
        lit = tuple(points[m].point for m in ("median", "iqm", "mean", "optimality_gap"))
        assert lit == pytest.approx(got, rel=1e-9), agent
