"""A test that proves memory and can fail: lit_rl/CueMemory-v0 through the real CLI.

The cue is visible at the first step only and the decision comes 10 steps later, so a policy without
memory succeeds with probability exactly 1/2 whatever it learns. LSTM and GTrXL must reach >= 95 %
success; the memoryless MLP must stay <= 60 %; and the trained memory agents, with their memory zeroed
at every step, must fall back to chance. Each training run is 30 k env steps (seconds to a minute on
2 cores).
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import lit_rl  # noqa: F401  (registers lit_rl/CueMemory-v0)
from lit_rl.cli import run
from lit_rl.models.actor_critic import ActorCritic

CONFIGS = Path(__file__).parents[2] / "configs" / "memory"
EPISODES = 400  # success-rate standard error <= 2.5 %


def train(config: str, tmp_path: Path) -> ActorCritic:
    cli = run(
        [
            "fit",
            "--config",
            str(CONFIGS / config),
            "--trainer.logger=false",
            "--trainer.enable_progress_bar=false",
            "--evaluation.every_n_env_steps=0",
            "--data.eval_episodes=1",
            "--checkpoint.save_last=false",
            f"--trainer.default_root_dir={tmp_path}",
        ]
    )
    return cli.model.policy.eval()


@torch.no_grad()
def success_rate(policy: ActorCritic, *, zero_memory: bool = False, seed: int = 123) -> float:
    """Fraction of ``EPISODES`` episodes (sampled actions) that end with reward +1.

    ``zero_memory``: the policy acts every step from an empty memory, as at an episode start.
    """
    env = gym.vector.SyncVectorEnv([lambda: gym.make("lit_rl/CueMemory-v0") for _ in range(EPISODES)])
    obs, _ = env.reset(seed=seed)
    memory, start = policy.initial_memory(EPISODES), torch.ones(EPISODES, dtype=torch.bool)
    torch.manual_seed(seed)
    outcome = np.zeros(EPISODES)
    done = np.zeros(EPISODES, dtype=bool)
    while not done.all():
        if zero_memory:
            memory, start = policy.initial_memory(EPISODES), torch.ones(EPISODES, dtype=torch.bool)
        out = policy.act(torch.as_tensor(obs), memory=memory, episode_start=start)
        obs, reward, terminated, truncated, _ = env.step(out.actions.numpy())
        outcome = np.where(done, outcome, reward)
        done |= terminated | truncated
        memory, start = out.memory, torch.as_tensor(terminated | truncated)
    env.close()
    return float((outcome == 1.0).mean())


@pytest.mark.parametrize("config", ["cue_lstm.yaml", "cue_gtrxl.yaml"])
def test_memory_agent_remembers_the_cue_and_forgets_it_without_memory(config: str, tmp_path: Path) -> None:
    policy = train(config, tmp_path)
    remembered = success_rate(policy)
    zeroed = success_rate(policy, zero_memory=True)
    assert remembered >= 0.95, remembered
    assert abs(zeroed - 0.5) <= 0.1, zeroed  # chance, whatever the memoryless behaviour is


def test_memoryless_policy_stays_at_chance(tmp_path: Path) -> None:
    rate = success_rate(train("cue_mlp.yaml", tmp_path))
    assert rate <= 0.60, rate
