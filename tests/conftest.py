"""Shared fixtures: small specs, a toy env with known returns, CPU-only determinism."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from lit_rl.specs import EnvSpec
from tests.study_data import ENV_VAR, study_data_dir, study_data_present

STUDY_SKIP = "the study's data is absent"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the ``study_data`` tests when the study's data is absent (the summary says so, below)."""
    if study_data_present():
        return
    skip = pytest.mark.skip(reason=f"{STUDY_SKIP} ({study_data_dir()})")
    for item in items:
        if item.get_closest_marker("study_data"):
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """One line on the study-data tests: how many ran on the study's data, or that it was absent."""
    stats = terminalreporter.stats
    reports = [r for key in ("passed", "failed", "skipped", "error") for r in stats.get(key, [])]
    study = [r for r in reports if getattr(r, "when", "") in ("call", "setup") and "study_data" in r.keywords]
    if not study:
        return
    skipped = [r for r in study if r.skipped]
    if skipped:
        terminalreporter.write_line(
            f"study data: NOT FOUND at {study_data_dir()}; {len(skipped)} tests of the study's published numbers "
            f"were skipped (put the data at ../shared/data/self-attention-rl or set {ENV_VAR})",
            yellow=True,
            bold=True,
        )
    else:
        ran = len({r.nodeid for r in study})
        terminalreporter.write_line(f"study data: {ran} tests read the study's data at {study_data_dir()}")


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
