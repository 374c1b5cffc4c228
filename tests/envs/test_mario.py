"""Super Mario Bros (extra ``mario``): the wrapper stack, the factory wiring, the missing-extra error.

References are the raw NES frames and rewards of the env under test, recorded per emulator frame.
"""

from __future__ import annotations

import functools
import re
import sys

import cv2
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from lit_rl.envs.episode_info import finished_episodes
from lit_rl.envs.factory import check_env_id, make_vector_env
from lit_rl.envs.mario import ensure_mario_registered, is_mario, make_mario_env
from lit_rl.errors import ConfigError

pytest.importorskip("gymnasium_mariobros", reason="needs the mario extra: pip install 'lit_rl[mario]'")
from cynes import NES_INPUT_RIGHT  # the package's NES emulator, installed with it

pytestmark = pytest.mark.filterwarnings("ignore:.*is out of date:DeprecationWarning")  # -v0..-v3 are ROM looks

STAGE = "SuperMarioBros-1-1-v0"  # one stage: running right into the first Goomba ends it in 40 steps
RIGHT = 1  # SIMPLE_MOVEMENT[1] == ["right"]
GRAY = np.array([0.2125, 0.7154, 0.0721])  # gymnasium's GrayscaleObservation weights


def raw_env() -> gym.Env:
    ensure_mario_registered()
    return gym.make(STAGE).unwrapped


@pytest.fixture
def raw_steps(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, np.ndarray, float]]:
    """``(buttons, frame, reward)`` of every raw NES step taken in this process during the test.

    Recorded from the env under test itself: two emulator instances do not always start in the same
    state (the in-game clock's phase differs), so a second env is no reference.
    """
    from gymnasium_mariobros.nes_env import NESEnv

    steps: list[tuple[int, np.ndarray, float]] = []
    step = NESEnv.step

    def recording_step(self: NESEnv, action: int) -> tuple:
        result = step(self, action)
        steps.append((int(action), result[0], float(result[1])))
        return result

    monkeypatch.setattr(NESEnv, "step", recording_step)
    return steps


@pytest.mark.parametrize(
    ("env_id", "expected"),
    [
        (STAGE, True),
        ("SuperMarioBros-v0", True),
        ("SuperMarioBros2-v1", True),
        ("SuperMarioBrosRandomStages-v3", True),
        ("CartPole-v1", False),
        ("PongNoFrameskip-v4", False),
    ],
)
def test_is_mario_and_check_env_id_accept_the_package_ids(env_id: str, expected: bool) -> None:
    check_env_id(env_id)
    assert is_mario(env_id) is expected


def test_raw_env_passes_the_gymnasium_env_checker() -> None:
    env = raw_env()
    # The render check opens a pygame window for render_mode="human"; this machine is headless.
    check_env(env, skip_render_check=True)  # raises on a contract violation
    obs, _ = env.reset(seed=0)
    assert obs.shape == (240, 256, 3) and obs.dtype == np.uint8  # raw NES frames, RGB
    assert env.observation_space.contains(obs)
    step_obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
    assert np.isfinite(reward)
    assert env.observation_space.contains(step_obs) and isinstance(terminated, bool) and isinstance(truncated, bool)
    env.close()


def test_vector_env_stacks_84x84_uint8_frames_that_follow_mario() -> None:
    env = make_vector_env(STAGE, num_envs=2)
    try:
        assert env.single_observation_space.shape == (4, 84, 84)
        assert env.single_action_space == gym.spaces.Discrete(7)
        obs, _ = env.reset(seed=0)
        assert obs.shape == (2, 4, 84, 84)
        assert obs.dtype == np.uint8
        assert all(np.array_equal(obs[:, k], obs[:, -1]) for k in range(3))  # padded with the first frame
        for _ in range(6):
            previous = obs
            obs, _, terminated, truncated, _ = env.step(np.full(2, RIGHT))
            assert obs.shape == (2, 4, 84, 84)
            assert obs.dtype == np.uint8
            assert not (terminated | truncated).any()
            np.testing.assert_array_equal(obs[:, :-1], previous[:, 1:])  # the stack shifts by one
            for i in range(2):
                assert not np.array_equal(obs[i, -1], previous[i, -1])  # the newest frame is new
    finally:
        env.close()


def test_newest_frames_are_the_resized_gray_max_of_the_last_two_raw_frames(raw_steps: list) -> None:
    env = make_mario_env(STAGE)
    env.reset(seed=0)
    raw_steps.clear()
    for _ in range(3):
        obs, *_ = env.step(RIGHT)
    assert [button for button, _, _ in raw_steps] == [NES_INPUT_RIGHT] * 12  # 3 agent steps × frame skip 4
    frames = [frame for _, frame, _ in raw_steps]
    for k, last in ((-1, 12), (-2, 8)):
        rgb = np.maximum(frames[last - 2], frames[last - 1])
        gray = np.sum(rgb * GRAY, axis=-1).astype(np.uint8)
        np.testing.assert_array_equal(obs[k], cv2.resize(gray, (84, 84), interpolation=cv2.INTER_AREA))
    env.close()


def test_episode_return_is_the_raw_game_reward_and_length_counts_agent_steps(raw_steps: list) -> None:
    env = make_vector_env(STAGE, num_envs=1)  # sync: the raw steps are recorded in this process
    env.reset(seed=0)
    raw_steps.clear()
    rewards = []
    for _ in range(500):  # running right, Mario meets the first Goomba after ~40 steps
        _, reward, terminated, truncated, info = env.step(np.array([RIGHT]))
        rewards.append(float(reward[0]))
        idx, returns, lengths = finished_episodes(info)
        if idx.size:
            break
    env.close()
    assert terminated[0] and not truncated[0]
    np.testing.assert_array_equal(idx, [0])
    raw_rewards = [reward for _, _, reward in raw_steps]
    assert returns[0] == sum(rewards) == sum(raw_rewards) != 0.0
    assert lengths[0] == len(rewards) == -(-len(raw_rewards) // 4)  # the last step may end within its 4 frames


def test_async_workers_started_by_spawn_build_mario_envs(monkeypatch: pytest.MonkeyPatch) -> None:
    spawn = functools.partial(gym.vector.AsyncVectorEnv, context="spawn")
    monkeypatch.setattr(gym.vector, "AsyncVectorEnv", spawn)
    env = make_vector_env(STAGE, num_envs=1, vectorization="async")
    try:
        obs, _ = env.reset(seed=0)
        obs, *_ = env.step(np.array([RIGHT]))
        assert obs.shape == (1, 4, 84, 84)
        assert obs.dtype == np.uint8
    finally:
        env.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"backend": "ale_vector"}, "backend='ale_vector'"), ({"obs_stack": 2}, "obs_stack=2")],
)
def test_make_vector_env_rejects_atari_only_options_for_mario(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        make_vector_env(STAGE, num_envs=1, **kwargs)


def test_missing_extra_is_a_one_line_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gymnasium_mariobros", None)  # `import` now fails
    monkeypatch.delitem(gym.registry, STAGE)
    for call in (lambda: check_env_id(STAGE), lambda: make_vector_env(STAGE, num_envs=1), lambda: is_mario(STAGE)):
        with pytest.raises(ConfigError, match=re.escape("pip install 'lit_rl[mario]'")) as error:
            call()
        assert "\n" not in str(error.value)
    # Ids that do not look like Mario's still get the usual unknown-id message.
    assert is_mario("Zzqx-v9") is False
    with pytest.raises(ConfigError, match="unknown env id 'CartPol-v1'"):
        check_env_id("CartPol-v1")
