"""The benchmark's arithmetic: every ratio is a median of ratios taken within one repeat."""

from __future__ import annotations

import pytest

from tools import benchmark


def test_ratios_pair_systems_within_each_repeat() -> None:
    # Repeat 2 ran on a slow machine for everyone: per-repeat ratios cancel it, ratios of medians do not.
    results = {
        "env_lit_rl": [2000.0, 1000.0, 1900.0],
        "network_only": [300.0, 150.0, 280.0],
        "lit_rl": [240.0, 126.0, 238.0],
        "plain_pytorch": [160.0, 90.0, 170.0],
        "sb3": [150.0, 60.0, 140.0],
    }
    summary = benchmark.summarise(results)
    lit = summary["lit_rl"]
    assert lit["median"] == 238.0 and (lit["min"], lit["max"]) == (126.0, 240.0)
    assert lit["vs_sb3"] == pytest.approx(sorted([240 / 150, 126 / 60, 238 / 140])[1])
    assert lit["vs_plain_pytorch"] == pytest.approx(sorted([240 / 160, 126 / 90, 238 / 170])[1])
    assert lit["of_network_ceiling"] == pytest.approx(sorted([240 / 300, 126 / 150, 238 / 280])[1])
    # Another system against SB3: the median of 160/150, 90/60, 170/140, not the ratio of the medians (160/140).
    assert summary["plain_pytorch"]["vs_sb3"] == pytest.approx(170 / 140)
    assert "vs_sb3" not in summary["network_only"]
    table = benchmark.markdown(summary, benchmark.parse_args(["--repeats", "3"]))
    assert "| PPO: lit_rl (NatureCNN, 32-true) | 238 | 126–240 | 1.70× | 1.40× | 84 % |" in table


def test_bad_arguments_are_refused_before_measuring(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--env-id", "CartPole-v1"])
    assert "CartPole-v1 is not an Atari game" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--rollouts", "0"])
    args = benchmark.parse_args(["--extractor", "lit_rl.models.extractors.small_cnn.SmallCNN"])
    assert args.only == ["lit_rl"]  # the peers have no small CNN
