"""Shared fixtures: small specs, a toy env with known returns, CPU-only determinism."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from lit_rl.specs import EnvSpec


@pytest.fixture(autouse=True)
def _seeded_in_tmp_dir(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seed the global RNGs and run in a temporary directory, so runs/ and config.yaml stay out of the repo."""
    torch.manual_seed(0)
    np.random.seed(0)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def small_spec() -> EnvSpec:
    return EnvSpec(obs_shape=(4,), obs_dtype="float32", num_actions=2, num_envs=2)


@pytest.fixture
def image_spec() -> EnvSpec:
    return EnvSpec(obs_shape=(4, 84, 84), obs_dtype="uint8", num_actions=6, num_envs=2)


class ConstantRewardEnv(gym.Env):
    """Reward 1 every step, never terminates; a TimeLimit truncates it. V = 1 / (1 - gamma)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 1.0, False, False, {}


gym.register("lit_rl_test/ConstantReward-v0", entry_point=ConstantRewardEnv, max_episode_steps=50)
