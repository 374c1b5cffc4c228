"""Score tables from lit_rl run directories and from the study's pickle, against hand computations."""

from __future__ import annotations

import math
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from lit_rl.analysis.scores import Runs, axis_classes, load_run_dirs, load_study_results
from lit_rl.analysis.tables import game_table, markdown, to_csv, wins_per_agent, wins_per_class
from lit_rl.errors import ConfigError

# The study's files are not shipped with lit_rl: they are read from beside the repository, or from
# the folder LIT_RL_STUDY_DATA names.
STUDY_DATA = Path(
    os.environ.get("LIT_RL_STUDY_DATA", Path(__file__).resolve().parents[3] / "shared" / "data" / "self-attention-rl")
)
STUDY_PICKLE = STUDY_DATA / "post_processed_results_56.pkl"
needs_study_data = pytest.mark.skipif(
    not STUDY_PICKLE.is_file(), reason=f"the study's data is not at {STUDY_PICKLE} (not shipped with lit_rl)"
)


def test_run_dirs_become_one_table(tmp_path: Path, make_run) -> None:
    runs = [
        make_run(tmp_path, "a", "PongNoFrameskip-v4", "CWRA", 42, [100, 200, 300], [1.0, 2.0, 6.0]),
        make_run(tmp_path, "b", "PongNoFrameskip-v4", "CWRA", 1, [100, 200], [0.0, 4.0]),
        make_run(tmp_path, "c", "ALE/Pong-v5", None, 1, [100, 200], [5.0, 5.0]),
    ]
    scores = load_run_dirs(runs)
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
    assert wins_per_class(rows, classes) == {"vertical": {"NA": 1, "CWCA": 0}, "horizontal": {"NA": 0, "CWCA": 1}}
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


@needs_study_data
def test_the_studys_table_matches_values_computed_from_the_pickle() -> None:
    scores = load_study_results(STUDY_PICKLE)
    assert len(scores) == 56
    assert all(set(agents) == {"NA", "SWA", "CWRA", "CWCA", "CWRCA"} for agents in scores.values())
    rows = {row.game: row for row in game_table(scores)}
    with open(STUDY_PICKLE, "rb") as f:
        raw = pickle.load(f)  # the trusted file, read the plain way for the reference
    for game in ("Pong", "Breakout", "MontezumaRevenge", "VideoPinball"):
        for agent in ("NA", "CWCA"):
            per_eval = raw[f"{game}NoFrameskip-v4"][agent]["mean_per_eval"]  # [50 evaluations, 5 seeds]
            seeds = [sum(per_eval[e][s] for e in range(50)) / 50 for s in range(5)]
            mean = sum(seeds) / 5
            se = math.sqrt(sum((x - mean) ** 2 for x in seeds) / 5) / math.sqrt(5)
            assert rows[game].mean[agent] == pytest.approx(mean)
            assert rows[game].se[agent] == pytest.approx(se)
        best = max(rows[game].mean, key=rows[game].mean.get)
        assert rows[game].winner == best
