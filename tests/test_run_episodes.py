"""run_episodes against an env whose returns are known: one full episode per env, raw returns, in env order."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from lit_rl.data.episodes import run_episodes
from lit_rl.envs.factory import make_vector_env
from lit_rl.models.actor_critic import ActorCritic
from lit_rl.models.extractors.mlp import MLP


class KnownReturnEnv(gym.Env):
    """Reward 2.5 per step whatever the action. An episode reset with seed ``s`` lasts ``3 + s % 4``
    steps (return ``2.5 · (3 + s % 4)``); an unseeded reset (gymnasium's autoreset) lasts 1 step, so
    counting a second episode of an env would show."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.length = 0, 1 if seed is None else 3 + seed % 4
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.full(2, self.t / 40, np.float32), 2.5, self.t >= self.length, False, {}


gym.register("lit_rl_test/KnownReturn-v0", entry_point=KnownReturnEnv)


@pytest.mark.parametrize("greedy", [True, False])
def test_run_episodes_returns_the_first_full_episode_of_every_env(greedy: bool) -> None:
    env = make_vector_env("lit_rl_test/KnownReturn-v0", num_envs=3, evaluation=True)
    policy = ActorCritic((2,), 3, MLP).train()
    try:
        results = run_episodes(policy, env, seed=10, greedy=greedy)
    finally:
        env.close()
    lengths = [3 + (10 + i) % 4 for i in range(3)]  # env i is reset with seed 10 + i: 5, 6, 3 steps
    np.testing.assert_array_equal(results.lengths, lengths)
    np.testing.assert_array_equal(results.returns, [2.5 * n for n in lengths])
    assert policy.training  # the caller's mode is restored
    assert results.summary() == "return 11.67 ± 3.12 (mean ± std over 3 episodes)"  # 12.5, 15, 7.5


def test_run_episodes_refuses_to_report_unfinished_episodes() -> None:
    env = make_vector_env("lit_rl_test/KnownReturn-v0", num_envs=2, evaluation=True)
    try:
        with pytest.raises(RuntimeError, match="did not end within 4 steps"):
            run_episodes(ActorCritic((2,), 3, MLP), env, seed=1, max_steps=4)  # 4 and 5 steps needed
    finally:
        env.close()
