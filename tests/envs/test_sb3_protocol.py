"""Both Atari backends take exactly SB3's steps: ``AtariWrapper`` (over ``Monitor``) + ``DummyVecEnv`` +
``VecFrameStack``, the study's env stack, is the reference, driven here with the same seed and actions.

On real ROMs, through several life losses, game overs and (with a short frame limit) truncations, every
step's observation (bitwise: both backends use SB3's OpenCV gray and ``INTER_AREA`` resize of the RGB
max-pool), reward, terminated, truncated, lives and final observation must equal SB3's. The no-op counts
are equal because both backends seed them as ``ale_py``'s ``AtariEnv`` does (checked through the
observations: a different count gives a different first frame).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from lit_rl.envs.atari import ensure_ale_registered
from lit_rl.envs.factory import make_vector_env
from lit_rl.envs.options import AtariOptions
from lit_rl.errors import ConfigError

pytestmark = pytest.mark.atari
sb3 = pytest.importorskip("stable_baselines3")

BACKENDS = ("gymnasium", "ale")
NUM_ENVS = 2


def sb3_env(env_id: str, seed: int, max_frames: int):
    """The study's env stack: SB3's make_atari_env (Monitor under AtariWrapper) with VecFrameStack(4)."""
    from stable_baselines3.common.atari_wrappers import AtariWrapper
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack

    ensure_ale_registered()
    make = [
        lambda: AtariWrapper(Monitor(gym.make(env_id, max_num_frames_per_episode=max_frames))) for _ in range(NUM_ENVS)
    ]
    env = VecFrameStack(DummyVecEnv(make), 4)
    env.seed(seed)
    return env


def channels_first(obs: np.ndarray) -> np.ndarray:
    return np.moveaxis(obs, -1, -3)


@pytest.mark.parametrize(
    ("env_id", "max_frames", "seed"),
    [
        ("BreakoutNoFrameskip-v4", 108_000, 0),  # FIRE game, 5 lives
        ("SpaceInvadersNoFrameskip-v4", 108_000, 1),  # FIRE game, 3 lives, rewards > 1
        ("QbertNoFrameskip-v4", 108_000, 2),  # 4 lives, stays at 0 lives for frames before the game over
        ("MsPacmanNoFrameskip-v4", 2_001, 3),  # no FIRE; a frame limit that ends games mid frame-skip
    ],
)
def test_backends_take_sb3s_steps(env_id: str, max_frames: int, seed: int) -> None:
    reference = sb3_env(env_id, seed, max_frames)
    options = AtariOptions(max_episode_frames=max_frames)
    envs = {b: make_vector_env(env_id, num_envs=NUM_ENVS, backend=b, atari=options, env_groups=1) for b in BACKENDS}
    expected = channels_first(reference.reset())
    for backend, env in envs.items():
        obs, _ = env.reset(seed=seed)
        np.testing.assert_array_equal(obs, expected, err_msg=f"{backend}: reset")
    actions = np.random.default_rng(seed).integers(reference.action_space.n, size=(5_000, NUM_ENVS))
    games, life_losses, truncations = np.zeros(NUM_ENVS, int), np.zeros(NUM_ENVS, int), 0
    for t, action in enumerate(actions):
        sb3_obs, sb3_reward, done, infos = reference.step(action)
        truncated = np.array([i.get("TimeLimit.truncated", False) for i in infos])
        terminated = done & ~truncated
        lives = np.array([i["lives"] for i in infos])
        for backend, env in envs.items():
            where = f"{backend}, step {t}"
            obs, reward, term, trunc, info = env.step(action)
            np.testing.assert_array_equal(obs, channels_first(sb3_obs), err_msg=where)
            np.testing.assert_array_equal(reward, sb3_reward, err_msg=where)
            np.testing.assert_array_equal(term, terminated, err_msg=where)
            np.testing.assert_array_equal(trunc, truncated, err_msg=where)
            # lives after the agent's step: the final step's for envs that ended (SB3 reports no reset info)
            ours = np.where(done, info.get("final_info", {}).get("lives", -1), info["lives"])
            np.testing.assert_array_equal(ours, lives, err_msg=where)
            for i in np.flatnonzero(done):
                final = channels_first(infos[i]["terminal_observation"])
                np.testing.assert_array_equal(info["final_obs"][i], final, err_msg=where)
            for i in np.flatnonzero(info.get("_episode", info.get("final_info", {}).get("_episode", []))):
                # The full-game raw score, as SB3's Monitor (under AtariWrapper) records it.
                episode = info["episode"] if "episode" in info else info["final_info"]["episode"]
                assert episode["r"][i] == infos[i]["episode"]["r"], where
        game_over = np.array(["episode" in i for i in infos])
        games += game_over
        life_losses += terminated & ~game_over
        truncations += truncated.sum()
        if games.min() >= 1 and life_losses.min() >= 3 and (max_frames > 100_000 or truncations >= 2):
            break
    else:
        pytest.fail(f"not every env had 3 life losses and a game over in {len(actions)} steps")
    for env in envs.values():
        env.close()


@pytest.mark.parametrize(
    ("env_id", "kwargs", "match"),
    [
        ("BreakotNoFrameskip-v4", {}, "unknown env id 'BreakotNoFrameskip-v4': did you mean"),
        ("CartPole-v1", {}, "backend='ale' needs an Atari env id"),
        ("MontezumaRevengeNoFrameskip-v4", {}, "backend='ale' does not report the rooms"),
        ("BreakoutNoFrameskip-v4", {"vectorization": "async"}, "vectorization='async' applies to backend='gymnasium'"),
    ],
)
def test_ale_backend_refuses_what_it_does_not_do(env_id: str, kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as error:
        make_vector_env(env_id, num_envs=2, backend="ale", **kwargs)
    assert "\n" not in str(error.value)


def test_one_ale_game_is_what_the_pool_shows_as_the_newest_frame() -> None:
    """``AleGame`` alone (no worker process) with env 0's seed gives the newest frame of the ``ale`` pool's
    first observation, and the same frames for the same seed and actions."""
    from lit_rl.envs.ale_game import AleGame

    env = make_vector_env("BreakoutNoFrameskip-v4", num_envs=1, backend="ale")
    try:
        obs, _ = env.reset(seed=3)
    finally:
        env.close()
    games = [AleGame("breakout", AtariOptions()) for _ in range(2)]
    first = [game.reset(seed=3).copy() for game in games]
    np.testing.assert_array_equal(first[0], np.asarray(obs)[0, -1])
    np.testing.assert_array_equal(first[0], first[1])
    frames = []
    for game in games:
        for action in (1, 2, 3, 2, 0):
            game.step(action)
        frames.append(game.observe().copy())
    np.testing.assert_array_equal(frames[0], frames[1])
    assert not np.array_equal(frames[0], first[0])  # the game moved
