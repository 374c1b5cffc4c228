"""Montezuma's Revenge as the RND configs run it: room tracking, the 4,500-step cap, the backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from gymnasium.vector import SyncVectorEnv

from lit_rl.envs.episode_info import current_rooms, finished_episode_rooms, finished_episodes
from lit_rl.envs.factory import make_vector_env
from lit_rl.envs.options import AtariOptions

MONTEZUMA = "MontezumaRevengeNoFrameskip-v4"
CONFIG = Path(__file__).parents[2] / "configs" / "rnd" / "montezuma_vit_explore.yaml"
NOOP = 0

pytestmark = pytest.mark.atari


def configured_atari_options(**overrides) -> AtariOptions:
    """The Atari protocol of the shipped Montezuma config."""
    options = yaml.safe_load(CONFIG.read_text())["data"]["atari"]
    return AtariOptions(**{**options, **overrides})


def test_rooms_come_from_ram_byte_3_and_count_per_game() -> None:
    env = make_vector_env(MONTEZUMA, num_envs=1, atari=configured_atari_options(max_episode_frames=400))
    assert isinstance(env, SyncVectorEnv)  # 'auto' picks the backend that exposes the RAM
    _, info = env.reset(seed=0)
    np.testing.assert_array_equal(info["room"], [1])  # the game starts in room 1
    ale = env.envs[0].unwrapped.ale
    seen: list[np.ndarray] = []
    for t in range(200):
        if t == 10:
            ale.setRAM(3, 5)  # move the room variable: the tracker must follow the RAM
        _, _, terminated, truncated, info = env.step(np.array([NOOP]))
        seen.append(current_rooms(info))
        if terminated[0] or truncated[0]:
            break
    else:
        pytest.fail("the 400-frame cap did not end the game")
    env.close()
    assert set(np.concatenate(seen).tolist()) == {1, 5}
    np.testing.assert_array_equal(finished_episode_rooms(info), [2])
    idx, _, _ = finished_episodes(info)
    np.testing.assert_array_equal(idx, [0])


def test_the_configured_cap_truncates_after_4500_agent_steps() -> None:
    """Standing still never loses a life; the 18,000-frame cap (4,500 steps of 4 frames, minus the
    random no-op start) then truncates the game without terminating it, sticky actions and all."""
    options = configured_atari_options()
    assert (options.max_episode_frames, options.frame_skip, options.sticky_action_prob) == (18_000, 4, 0.25)
    assert not options.terminal_on_life_loss
    env = make_vector_env(MONTEZUMA, num_envs=1, atari=options)
    env.reset(seed=1)
    steps = 0
    for steps in range(1, 5_001):  # noqa: B007 (the count is the result)
        _, _, terminated, truncated, info = env.step(np.array([NOOP]))
        assert not terminated[0]
        if truncated[0]:
            break
    env.close()
    assert truncated[0]
    assert 4_500 - options.noop_max <= steps <= 4_500
    _, _, lengths = finished_episodes(info)
    np.testing.assert_array_equal(lengths, [steps])
