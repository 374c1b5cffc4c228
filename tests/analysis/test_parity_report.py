"""lit-rl-analyze --parity end to end on fake run directories and a fake study pickle: the table, CSV and figure
with hand-computed values, and one clear line for each kind of bad input."""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

import numpy as np
import pytest

from lit_rl.analysis.parity import align
from lit_rl.analysis.report import main
from tests.analysis.conftest import OUR_STEPS, STUDY_STEPS, study_values

SEEDS = (0, 1, 42)


def our_runs(make_run, root: Path, game: str, agent: str, values: np.ndarray, steps=OUR_STEPS) -> list[Path]:
    env_id = f"{game}NoFrameskip-v4"
    return [
        make_run(root, f"{agent}/{game}_{seed}", env_id, agent, seed, steps, values[:, i])
        for i, seed in enumerate(SEEDS)
    ]


def test_table_csv_and_figure(tmp_path: Path, make_run, study_pickle: Path, capsys) -> None:
    # Breakout: ours are the study's seed columns 1, 2, 3, so both means are 2(e + 1) + 2: T = 0, p = 1.
    # Pong: ours 100 points above: at every step only the observed labelling puts the three high runs on one
    # side, which gives the largest T of all 56 relabellings at every statistic: p = 1/56 = 0.018, adjusted too.
    runs = our_runs(make_run, tmp_path / "runs", "Breakout", "NA", study_values("Breakout")[:, 1:4])
    runs += our_runs(make_run, tmp_path / "runs", "Pong", "NA", study_values("Pong")[:, 1:4] + 100.0)
    out = tmp_path / "parity"
    main(["--runs", *map(str, runs), "--parity", str(study_pickle), "--out", str(out)])
    assert capsys.readouterr().out.startswith("parity: Breakout/NA in, Pong/NA OUTSIDE; wrote")
    text = (out / "parity.md").read_text()
    assert "| Breakout | NA | 3 (0, 1, 42) | 5 (200,000–1,000,000) | in the study's distribution | 1.000 |" in text
    assert "| Pong | NA | 3 (0, 1, 42) | 5 (200,000–1,000,000) | **outside** at 200,000, 400,000, 600,000, " in text
    assert "| 0.018 |" in text and "exact size 2/56 = 3.6 %" in text
    # Breakout at 200 k: ours 3, 4, 5; the study 2..6, sample sd sqrt(2.5) = 1.58
    row = "| Breakout | NA | 200,000 / 200,704 | 3.0, 4.0, 5.0 | 4.0 | 4.0 [2.0, 6.0] (1.6) "
    row += "| 1.000 | 1.000 | 1.000 / 1.000 | in |"
    assert row in text
    assert "over these 2 tests the chance of at least one false rejection is up to 7.0 %" in text  # 1 - (54/56)^2
    rows = list(csv.DictReader((out / "parity.csv").read_text().splitlines()))
    assert len(rows) == 10
    pong = rows[5]
    assert (pong["game"], pong["study_step"], pong["our_step"], pong["seeds"]) == ("Pong", "200000", "200704", "0;1;42")
    assert [float(v) for v in pong["ours"].split(";")] == [82.0, 83.0, 84.0]  # 2 + j - 21 + 100
    assert float(pong["adj_mean"]) == pytest.approx(1 / 56) and pong["outside"] == "true"
    assert (out / "parity.png").stat().st_size > 10_000 and (out / "parity.pdf").is_file()


def run_cli(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lit-rl-analyze: error: "), err
    return err


def write_pickle(path: Path, data: object) -> Path:
    path.write_bytes(pickle.dumps(data))
    return path


def test_bad_input_is_one_clear_line(tmp_path: Path, make_run, study_pickle: Path, capsys) -> None:
    good = our_runs(make_run, tmp_path / "runs", "Breakout", "NA", study_values("Breakout")[:, :3])
    out = ["--out", str(tmp_path / "out")]

    def parity(runs: list[Path], pickle_path: Path = study_pickle) -> str:
        return run_cli(["--runs", *map(str, runs), "--parity", str(pickle_path), *out], capsys)

    (good[0] / "evaluations.npz").unlink()  # a run that never reached its first evaluation
    assert "Breakout_0 has no evaluations.npz: the run has not finished its first evaluation" in parity(good)
    good = our_runs(make_run, tmp_path / "runs2", "Breakout", "NA", study_values("Breakout")[:, :3])

    cartpole = make_run(tmp_path, "cartpole", "CartPole-v1", "NA", 0, OUR_STEPS, np.ones(5))
    assert "the study has no game 'CartPole'; it has 2: Breakout, Pong" in parity([cartpole])
    vit = our_runs(make_run, tmp_path / "runs3", "Breakout", "ViT", np.ones((5, 3)))
    assert "the study has no agent 'ViT' on Breakout; its agents are NA, CWRA" in parity(vit)

    early = our_runs(make_run, tmp_path / "runs4", "Breakout", "NA", np.ones((3, 3)), [50_176, 100_352, 150_528])
    assert (
        "Breakout/NA: no evaluation step of our runs (50,176, 100,352, 150,528) lies within 2,048 env steps after "
        "one of the study's (200,000, 400,000, 600,000, …, 1,000,000); evaluate at the study's steps "
        "(evaluation.every_n_env_steps=200000)"
    ) in parity(early)
    assert "1 run(s) against the study's 5 cannot be rejected at α = 0.05 (the smallest p-value is 1/6)" in parity(
        good[:1]
    )

    layout = "expected {'<Game>NoFrameskip-v4': {agent: {'timesteps': [E], 'mean_per_eval': [E, R], ...}}}"
    assert f"is not the study's results pickle: the top level is a list; {layout}" in parity(
        good, write_pickle(tmp_path / "list.pkl", [1, 2])
    )
    entry = {"timesteps": np.array(STUDY_STEPS[:4]), "mean_per_eval": np.ones((5, 5))}
    short = write_pickle(tmp_path / "short.pkl", {"BreakoutNoFrameskip-v4": {"NA": entry}})
    assert "'BreakoutNoFrameskip-v4'/'NA' has timesteps (4,) and mean_per_eval (5, 5)" in parity(good, short)
    no_evals = write_pickle(tmp_path / "keys.pkl", {"BreakoutNoFrameskip-v4": {"NA": {"timesteps": 1, "mean": 2}}})
    assert "'BreakoutNoFrameskip-v4'/'NA' holds ['mean', 'timesteps']" in parity(good, no_evals)
    text = tmp_path / "notes.pkl"
    text.write_text("not a pickle")
    assert "notes.pkl is not the study's results pickle (" in parity(good, text)
    assert "cannot read the study's pickle" in parity(good, tmp_path / "missing.pkl")
    argv = ["--runs", *map(str, good), "--parity", str(study_pickle), *out]
    assert "--alpha=1.5; expected a level between 0 and 1" in run_cli([*argv, "--alpha", "1.5"], capsys)
    assert "--step-tolerance=0; expected a positive number" in run_cli([*argv, "--step-tolerance", "0"], capsys)


def test_parity_needs_runs(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--study-pickle", "x.pkl", "--parity", "x.pkl", "--out", "o"])
    assert exit_info.value.code == 2
    assert "error: --parity compares run directories with the study: give them with --runs" in capsys.readouterr().err


@pytest.mark.parametrize("grid_name", ["parity.yaml", "parity_cwra.yaml"])
def test_evidence_grids_stop_just_past_1m_steps_on_the_studys_schedule(grid_name: str, monkeypatch) -> None:
    import yaml

    from lit_rl.sweep import Grid

    root = Path(__file__).parents[2]
    monkeypatch.chdir(root)  # grid paths are relative to the repository
    grid = Grid.load(root / "configs" / "sweeps" / grid_name)
    # The study's seeds only (0, 1, 10, 42, 1234), with the three of the evidence runs first.
    assert grid.seeds[:3] == [0, 1, 42] and set(grid.seeds) <= {0, 1, 10, 42, 1234}
    assert len(grid) == len(grid.seeds) * len(grid.games) * len(grid.agents)
    command = grid.run(0).command
    overrides = dict(o.removeprefix("--").split("=", 1) for o in grid.overrides)
    assert not any(o.startswith("--model.total_env_steps") for o in command)  # the 10 M schedule stays
    config = yaml.safe_load((root / grid.config.format(agent=grid.agents[0])).read_text())
    assert config["model"]["total_env_steps"] == 10_000_000 and config["model"]["anneal_clip"] is True
    rollout = config["data"]["num_envs"] * config["data"]["num_steps"]
    assert config["data"]["backend"] == "ale" and "data.backend" not in overrides  # SB3's protocol, fast
    stop, period = int(overrides["model.stop_at_env_steps"]), config["evaluation"]["every_n_env_steps"]
    epochs = -(-stop // rollout)  # the run ends with the rollout that reaches the stop
    # The Evaluation callback's rule: evaluate after the rollout that crosses a multiple of the period.
    steps = [k * rollout for k in range(1, epochs + 1) if (k * rollout) // period > ((k - 1) * rollout) // period]
    assert steps[-1] == epochs * rollout >= 1_000_000 > (epochs - 1) * rollout  # the last rollout is evaluated
    i_study, _ = align(np.arange(1, 51) * 200_000, np.array(steps), tolerance=2048)
    assert i_study.tolist() == [0, 1, 2, 3, 4]  # every evaluation lines up with one of the study's 200 k ... 1 M
    assert int(overrides["checkpoint.every_n_env_steps"]) == 100_000


def test_a_step_is_outside_when_either_adjusted_pvalue_reaches_alpha() -> None:
    from lit_rl.analysis.parity import Parity
    from lit_rl.analysis.parity_report import summary_markdown

    steps = np.array(STUDY_STEPS[:2])
    result = Parity(
        game="Assault", agent="CWRA", seeds=SEEDS, study_steps=steps, our_steps=steps + 704,
        ours=np.ones((2, 3)), study=np.ones((2, 5)), p_point=np.array([0.5, 0.3]), p_mean=np.array([0.5, 0.02]),
        adj_point=np.array([0.9, 0.6]), adj_mean=np.array([0.9, 0.04]), alpha=0.05,
    )  # fmt: skip
    assert result.outside.tolist() == [False, True]  # 400 k: only the mean up to the step is off
    assert "| **outside** at 400,000 | 0.040 |" in summary_markdown([result])
