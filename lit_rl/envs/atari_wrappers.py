"""The gymnasium reference stack's wrappers: Stable-Baselines3's ``AtariWrapper`` protocol, step for step.

Each wrapper does what the SB3 wrapper of the same name does (``stable_baselines3.common.atari_wrappers``),
including its corner cases, so that the reference stack and lit_rl's fast path
(:mod:`lit_rl.envs.ale_game`) can be checked against SB3 itself frame by frame
(tests/envs/test_sb3_protocol.py). :func:`lit_rl.envs.atari.make_atari_env` assembles them.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import cv2
import gymnasium as gym
import numpy as np
from gymnasium import spaces

Step = tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]


class NoopReset(gym.Wrapper):
    """1 to ``noop_max`` no-op frames after each reset of the game, drawn from the env's ``np_random``."""

    def __init__(self, env: gym.Env, noop_max: int) -> None:
        super().__init__(env)
        self.noop_max = noop_max

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        for _ in range(int(self.unwrapped.np_random.integers(1, self.noop_max + 1))):
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        return obs, info


class MaxAndSkip(gym.Wrapper):
    """Repeat the action ``skip`` frames (stopping at a game over), sum the rewards, and observe the
    max of the last two frames. As in SB3, the two-frame buffer is never cleared: a game that ends
    before the last frame returns a max involving the previous step's frames."""

    def __init__(self, env: gym.Env, skip: int) -> None:
        super().__init__(env)
        self._skip = skip
        self._buffer = np.zeros((2, *env.observation_space.shape), dtype=env.observation_space.dtype)

    def step(self, action: Any) -> Step:
        total, terminated, truncated, info = 0.0, False, False, {}
        for i in range(self._skip):
            obs, reward, terminated, truncated, info = self.env.step(action)
            if i >= self._skip - 2:
                self._buffer[i - self._skip + 2] = obs
            total += float(reward)
            if terminated or truncated:
                break
        return self._buffer.max(axis=0), total, terminated, truncated, info


class EpisodicLife(gym.Wrapper):
    """A life loss ends the training episode; the game goes on (SB3's ``EpisodicLifeEnv``).

    The reset after a life loss takes one no-op step from the lost-life state instead of resetting.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._lives = 0
        self._game_over = True

    def step(self, action: Any) -> Step:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._game_over = terminated or truncated
        lives = self.env.unwrapped.ale.lives()
        if 0 < lives < self._lives:
            terminated = True
        self._lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        if self._game_over:
            obs, info = self.env.reset(**kwargs)
        else:
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:  # the no-op itself ended the game
                obs, info = self.env.reset(**kwargs)
        self._lives = self.env.unwrapped.ale.lives()
        return obs, info


class FireReset(gym.Wrapper):
    """Press FIRE, then action 2, after each reset (SB3's ``FireResetEnv``).

    The observation is that of action 2's step, even where that step ended the game and the env was
    reset once more (as in SB3)."""

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self.env.reset(**kwargs)
        _, _, terminated, truncated, _ = self.env.step(1)
        if terminated or truncated:
            self.env.reset(**kwargs)
        obs, _, terminated, truncated, info = self.env.step(2)
        if terminated or truncated:
            _, info = self.env.reset(**kwargs)
        return obs, info


class WarpFrame(gym.ObservationWrapper):
    """OpenCV gray of the RGB frame, resized to ``size`` × ``size`` with ``INTER_AREA`` (SB3's ``WarpFrame``,
    without its trailing channel axis: lit_rl stacks frames on a leading axis)."""

    def __init__(self, env: gym.Env, size: int) -> None:
        super().__init__(env)
        self.size = size
        self.observation_space = spaces.Box(0, 255, (size, size), dtype=np.uint8)

    def observation(self, frame: np.ndarray) -> np.ndarray:
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        return cv2.resize(gray, (self.size, self.size), interpolation=cv2.INTER_AREA)
