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
    value = cli.model.policy.value(torch.zeros(1, 2)).item()
    assert value == pytest.approx(10.0, abs=0.5)
