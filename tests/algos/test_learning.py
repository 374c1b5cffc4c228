"""Short learning runs through the real CLI: CartPole is solved, truncation is bootstrapped."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lit_rl.cli import run

CONFIGS = Path(__file__).parents[2] / "configs"


@pytest.mark.slow
def test_cartpole_reaches_475_within_100k_steps(tmp_path: Path) -> None:
    cli = run(
        [
            "fit",
            "--config",
            str(CONFIGS / "quickstart.yaml"),
            f"--trainer.logger.init_args.save_dir={tmp_path}",
            "--trainer.enable_progress_bar=false",
            "--evaluation.every_n_env_steps=0",
        ]
    )
    assert int(cli.model.env_steps) <= 100_096  # the budget, rounded up to whole rollouts
    evaluation = cli.trainer.callbacks[[type(c).__name__ for c in cli.trainer.callbacks].index("Evaluation")]
    steps, returns = evaluation.timesteps[-1], evaluation.results[-1]
    assert steps == int(cli.model.env_steps)
    assert returns.mean() >= 475, returns


@pytest.mark.slow
def test_endless_env_value_is_one_over_one_minus_gamma(tmp_path: Path) -> None:
    """Reward 1 forever, cut by a 50-step time limit: with truncation bootstrapped, V -> 1 / (1 - γ) = 10.

    Treating the time limit as a terminal state would instead give an average of
    (1 - γ^(50 - t)) / (1 - γ) ≈ 8.
    """
    cli = run(
        [
            "fit",
            "--config",
            str(CONFIGS / "quickstart.yaml"),
            "--trainer.logger=false",
            "--trainer.enable_progress_bar=false",
            "--data.env_id=lit_rl_test/ConstantReward-v0",
            "--model.gamma=0.9",
            "--model.gae_lambda=0.95",
            "--model.vf_coef=1.0",
            "--model.anneal_lr=false",
            "--model.total_env_steps=25600",
            "--evaluation.every_n_env_steps=0",
            "--data.eval_episodes=1",
            "--checkpoint.save_last=false",
            "--checkpoint.every_n_env_steps=0",
        ]
    )
    value = cli.model.policy.values(torch.zeros(1, 2)).values.item()
    assert value == pytest.approx(10.0, abs=0.5)


def test_stop_at_env_steps_ends_a_complete_run_with_the_longer_schedule(tmp_path: Path) -> None:
    """model.stop_at_env_steps: the run ends (final evaluation, DONE) at 2,048 env steps while the learning
    rate anneals over the 100 k budget, as the study's first million steps of its 10 M schedule."""
    cli = run(
        [
            "fit",
            "--config",
            str(CONFIGS / "quickstart.yaml"),
            f"--trainer.logger.init_args.save_dir={tmp_path}",
            "--trainer.enable_progress_bar=false",
            "--model.stop_at_env_steps=2048",  # 8 rollouts of 8 envs x 32 steps
            "--evaluation.every_n_env_steps=0",
            "--data.eval_episodes=1",
        ]
    )
    assert int(cli.model.env_steps) == 2048
    # The last update ran after 7 rollouts: lr = 1e-3 * (1 - 1,792 / 100,000), not 1e-3 * (1 - 1,792 / 2,048).
    lr = cli.model.optimizers().optimizer.param_groups[0]["lr"]
    assert lr == pytest.approx(1e-3 * (1 - 1792 / 100_000), rel=1e-9)
    log_dir = Path(cli.trainer.log_dir)
    assert (log_dir / "DONE").read_text() == "2048\n"
    evaluation = cli.trainer.callbacks[[type(c).__name__ for c in cli.trainer.callbacks].index("Evaluation")]
    assert evaluation.timesteps == [2048]  # the final evaluation, at the stop


def test_stop_at_env_steps_beyond_the_budget_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(["fit", "--config", str(CONFIGS / "quickstart.yaml"), "--model.stop_at_env_steps=200000"])
    assert exit_info.value.code == 2
    # Lightning's "Seed set to 1" may precede the error (when run alone): the error itself is one line.
    (line,) = [
        line for line in capsys.readouterr().err.splitlines() if line.strip() and not line.startswith("Seed set")
    ]
    assert "model.stop_at_env_steps=200000; expected a positive number of env steps up to" in line
