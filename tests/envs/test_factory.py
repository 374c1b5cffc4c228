"""``make_vector_env`` / ``check_env_id``: id validation, backend choice, classic-control envs."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from lit_rl.envs.episode_info import final_observations, finished_episodes
from lit_rl.envs.factory import check_env_id, is_atari, make_vector_env
from lit_rl.errors import ConfigError

# CartPole-v1 terminates once |x| > 2.4 or |theta| > 12 degrees; resets draw every entry from ±0.05.
CART_LIMIT, POLE_LIMIT = 2.4, 12 * 2 * np.pi / 360


@pytest.mark.parametrize(
    "env_id",
    # ALE and lit_rl ids are registered by check_env_id itself
    ["CartPole-v1", "BreakoutNoFrameskip-v4", "ALE/Pong-v5", "lit_rl/StatelessCartPole-v1"],
)
def test_check_env_id_accepts_registered_ids(env_id: str) -> None:
    assert check_env_id(env_id) is None
    assert env_id in gym.registry
    assert gym.spec(env_id).id == env_id


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [("CartPol-v1", "'CartPole-v1'"), ("BreakoutNoFrameskp-v4", "'BreakoutNoFrameskip-v4'")],
)
def test_check_env_id_suggests_close_matches(typo: str, suggestion: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"unknown env id '{typo}'")) as error:
        check_env_id(typo)
    assert suggestion in str(error.value)


def test_check_env_id_without_close_match_points_to_the_registry() -> None:
    with pytest.raises(ConfigError, match="pprint_registry"):
        check_env_id("Zzqx-v9")


def test_make_vector_env_rejects_unknown_ids_and_bad_sizes() -> None:
    with pytest.raises(ConfigError, match="CartPole-v1"):
        make_vector_env("CartPol-v1", num_envs=1)
    with pytest.raises(ConfigError, match="num_envs=0"):
        make_vector_env("CartPole-v1", num_envs=0)


def test_ale_vector_backend_needs_an_atari_id() -> None:
    with pytest.raises(ConfigError, match=r"ale_vector.*CartPole-v1"):
        make_vector_env("CartPole-v1", num_envs=1, backend="ale_vector")


@pytest.mark.parametrize(
    ("env_id", "expected"),
    [
        ("CartPole-v1", False),
        ("PongNoFrameskip-v4", True),
        ("ALE/Breakout-v5", True),
        ("Pong-v0", True),
        ("Taxi-v3", False),
    ],
)
def test_is_atari(env_id: str, expected: bool) -> None:
    assert is_atari(env_id) is expected


@pytest.mark.parametrize("vectorization", ["sync", "async"])
def test_cartpole_float32_observations_and_raw_episode_statistics(vectorization: str) -> None:
    num_envs = 3
    env = make_vector_env("CartPole-v1", num_envs=num_envs, vectorization=vectorization, atari=None)
    try:
        assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
        assert env.single_observation_space.shape == (4,)
        obs, _ = env.reset(seed=0)
        assert obs.shape == (num_envs, 4)
        assert obs.dtype == np.float32
        actions = np.random.default_rng(0).integers(2, size=(500, num_envs))
        returns = np.zeros(num_envs)  # reference: raw rewards and steps since each env's reset
        steps = np.zeros(num_envs, dtype=np.int64)
        episodes = 0
        for action in actions:
            obs, reward, terminated, truncated, info = env.step(action)
            assert obs.shape == (num_envs, 4)
            assert obs.dtype == np.float32
            returns += reward
            steps += 1
            ended = terminated | truncated
            idx, ep_returns, ep_lengths = finished_episodes(info)
            np.testing.assert_array_equal(idx, np.flatnonzero(ended))
            np.testing.assert_array_equal(ep_returns, returns[idx])
            np.testing.assert_array_equal(ep_lengths, steps[idx])
            np.testing.assert_array_equal(ep_returns, ep_lengths)  # +1 per step
            if idx.size:
                assert not truncated[idx].any()  # a random policy falls long before 500 steps
                final = final_observations(info, idx)
                assert final.shape == (idx.size, 4)
                assert final.dtype == np.float32
                # The final observation is the fallen state; the returned one a fresh reset.
                assert np.all((np.abs(final[:, 0]) > CART_LIMIT) | (np.abs(final[:, 2]) > POLE_LIMIT))
                assert np.all(np.abs(obs[idx]) <= 0.05)
                returns[idx], steps[idx] = 0.0, 0
                episodes += idx.size
            if episodes >= 2 * num_envs:
                break
        assert episodes >= 2 * num_envs
    finally:
        env.close()


def test_cartpole_same_seed_same_observations() -> None:
    def observations(seed: int) -> np.ndarray:
        env = make_vector_env("CartPole-v1", num_envs=2, backend="gymnasium")
        obs = [env.reset(seed=seed)[0]]
        for action in np.random.default_rng(0).integers(2, size=(50, 2)):
            obs.append(env.step(action)[0])
        env.close()
        return np.stack(obs)

    np.testing.assert_array_equal(observations(0), observations(0))
    assert not np.array_equal(observations(0), observations(1))


@pytest.mark.atari
def test_auto_backend_uses_ale_vector_for_atari() -> None:
    # The C++ env's info carries "env_id"; gymnasium's Atari stack does not.
    env = make_vector_env("PongNoFrameskip-v4", num_envs=1)
    _, info = env.reset(seed=0)
    env.close()
    np.testing.assert_array_equal(info["env_id"], [0])
    env = make_vector_env("PongNoFrameskip-v4", num_envs=1, backend="gymnasium")
    _, info = env.reset(seed=0)
    env.close()
    assert "env_id" not in info
