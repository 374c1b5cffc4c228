"""lit-rl-analyze end to end on fake run directories: every table and figure, the values in them."""

from __future__ import annotations

from pathlib import Path

import pytest

from lit_rl.analysis.report import main, parse_args


def test_writes_every_table_and_figure(tmp_path: Path, make_run) -> None:
    runs = []
    for agent, offset in (("NA", 0.0), ("CWCA", 10.0)):
        for seed in (1, 2):
            for env_id, base in (("PongNoFrameskip-v4", -20.0), ("BreakoutNoFrameskip-v4", 2.0)):
                name = f"{agent}_{env_id}_{seed}"
                means = [base + offset, base + seed]
                runs.append(make_run(tmp_path / "runs", name, env_id, agent, seed, [1, 2], means))
    out = tmp_path / "out"
    main(["--runs", *map(str, runs), "--out", str(out), "--agents", "NA", "CWCA", "--reps", "200", "--poi-reps", "50"])
    names = {p.name for p in out.iterdir()}
    for stem in ("aggregates", "performance_profiles", "sample_efficiency", "learning_curves"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= names
        assert (out / f"{stem}.png").stat().st_size > 5_000
    per_game = (out / "per_game.md").read_text()
    # Pong, NA: run scores (-20 - 19) / 2 = -19.5 and (-20 - 18) / 2 = -19: mean -19.25, SE 0.25 / sqrt(2)
    assert "| Pong | -19.2 ± 0.2 | **-14.2 ± 0.2** |" in per_game  # CWCA: -14.5, -14 (Python rounds half to even)
    assert "| wins | 0 | 2 |" in per_game
    assert "| horizontal | 0 | 1 |" in (out / "wins_per_class.md").read_text()
    assert "| NA | CWCA | 0.000" in (out / "probability_of_improvement.md").read_text()  # every pair once
    rows = (out / "aggregates.csv").read_text().splitlines()
    assert rows[0] == "agent,metric,point,low,high" and len(rows) == 1 + 2 * 4


def test_agents_missing_from_the_first_game_are_named(tmp_path: Path, make_run) -> None:
    runs = [make_run(tmp_path, "na_pong", "PongNoFrameskip-v4", "NA", 1, [1], [0.0])]
    runs.append(make_run(tmp_path, "na_breakout", "BreakoutNoFrameskip-v4", "NA", 1, [1], [0.0]))
    runs.append(make_run(tmp_path, "swa_pong", "PongNoFrameskip-v4", "SWA", 1, [1], [0.0]))  # no Breakout run
    args = ["--runs", *map(str, runs), "--out", str(tmp_path / "out"), "--reps", "10", "--poi-reps", "10"]
    with pytest.warns(UserWarning, match=r"agents \['SWA'\] left out: they lack runs of Breakout"):
        main([*args, "--no-figures"])


def test_help_explains_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    options = ("--runs", "--study-pickle", "--out", "--agents", "--baseline", "--reps", "--poi-reps", "--curve-games")
    options += ("--parity", "--alpha", "--step-tolerance")
    for option in options:
        assert option in text
