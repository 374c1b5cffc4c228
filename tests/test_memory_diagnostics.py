"""tools.memory_diagnostics.episode_end: why a StatelessCartPole episode ended, read off the simulator."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

import lit_rl  # noqa: F401  (registers the env)
from tools.memory_diagnostics import episode_end


def run_from(state: tuple[float, float, float, float], action: int) -> str:
    env = gym.make("lit_rl/StatelessCartPole-v1")
    env.reset(seed=0)
    env.unwrapped.state = np.array(state, dtype=np.float64)
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
    return episode_end(env)


def test_a_cart_running_off_the_edge_is_off_track():
    # 2.38 m from the centre at 2 m/s outwards: past 2.4 m within two steps, the pole still upright.
    assert run_from((2.38, 2.0, 0.0, 0.0), action=1) == "off track"
    assert run_from((-2.38, -2.0, 0.0, 0.0), action=0) == "off track"


def test_a_falling_pole_near_the_centre_is_pole_fell():
    # 0.2 rad and falling at 2 rad/s, the cart at rest in the middle: 12 degrees is 0.2094 rad.
    assert run_from((0.0, 0.0, 0.2, 2.0), action=0) == "pole fell"


def test_an_episode_cut_by_the_time_limit():
    env = gym.make("lit_rl/StatelessCartPole-v1", max_episode_steps=3)
    env.reset(seed=0)
    for _ in range(3):
        _, _, terminated, truncated, _ = env.step(0)
    assert truncated and not terminated
    assert episode_end(env) == "time limit"
