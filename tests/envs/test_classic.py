"""StatelessCartPole and observation stacking."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from lit_rl.envs.classic import STATELESS_CARTPOLE_ID, register_envs
from lit_rl.envs.factory import make_vector_env
from lit_rl.errors import ConfigError

register_envs()


def test_passes_gymnasiums_env_checker() -> None:
    env = gym.make(STATELESS_CARTPOLE_ID)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.observation_space.shape == (2,)
    np.testing.assert_allclose(env.observation_space.high, [4.8, 0.4189])


def test_observes_position_and_angle_of_cartpole_v1() -> None:
    stateless, full = gym.make(STATELESS_CARTPOLE_ID), gym.make("CartPole-v1")
    obs, _ = stateless.reset(seed=3)
    state, _ = full.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(30):
        np.testing.assert_array_equal(obs, state[[0, 2]])
        action = int(rng.integers(2))
        obs, r1, term1, trunc1, _ = stateless.step(action)
        state, r2, term2, trunc2, _ = full.step(action)
        assert (r1, term1, trunc1) == (r2, term2, trunc2)
        if term1:
            break


def test_a_balanced_pole_is_truncated_at_500_steps() -> None:
    env = gym.make(STATELESS_CARTPOLE_ID)
    env.reset(seed=0)
    steps = 0
    truncated = False
    while not truncated:
        x, x_dot, theta, theta_dot = env.unwrapped.state  # a controller that sees the hidden velocities
        action = int(theta + 0.5 * theta_dot + 0.01 * x + 0.05 * x_dot > 0)
        _, _, terminated, truncated, _ = env.step(action)
        steps += 1
        assert not terminated and steps <= 500
    assert steps == 500


def test_stacking_keeps_the_last_k_observations_within_an_episode() -> None:
    plain = make_vector_env(STATELESS_CARTPOLE_ID, num_envs=2)
    stacked = make_vector_env(STATELESS_CARTPOLE_ID, num_envs=2, obs_stack=3)
    assert stacked.single_observation_space.shape == (3, 2)
    obs, _ = plain.reset(seed=5)
    stack, _ = stacked.reset(seed=5)
    history = [obs, obs, obs]  # gymnasium's "reset" padding repeats the first observation
    rng = np.random.default_rng(1)
    for _ in range(60):
        np.testing.assert_array_equal(stack, np.stack(history[-3:], axis=1))
        actions = rng.integers(2, size=2)
        obs, _, terminated, truncated, _ = plain.step(actions)
        stack, _, terminated_s, _, _ = stacked.step(actions)
        np.testing.assert_array_equal(terminated, terminated_s)
        done = terminated | truncated
        history.append(obs)
        for i in np.flatnonzero(done):  # a new episode: its stack holds only its own first observation
            for past in history[-3:]:
                past[i] = obs[i]
    plain.close()
    stacked.close()


def test_obs_stack_is_checked() -> None:
    with pytest.raises(ConfigError, match="obs_stack=0"):
        make_vector_env("CartPole-v1", num_envs=1, obs_stack=0)
    with pytest.raises(ConfigError, match=r"atari\.frame_stack"):
        make_vector_env("PongNoFrameskip-v4", num_envs=1, obs_stack=4)
