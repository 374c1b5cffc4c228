"""Atari wrapper stacks: the gymnasium reference stack per env, or ale-py's C++ ``AtariVectorEnv``.

The gymnasium stack is Stable-Baselines3's ``AtariWrapper`` + ``VecFrameStack`` (the study's protocol;
README, "Atari protocol and backends"), step for step (:mod:`lit_rl.envs.atari_wrappers`); the fast ``ale`` backend
(:mod:`lit_rl.envs.ale_pool`) takes the same steps. The logged return is the raw score of the full
game, recorded below the life-loss wrapper.

The ``ale_vector`` backend runs ale-py's ``AtariVectorEnv`` with its own resets; life loss and reward
clipping are applied in numpy (:class:`AleVectorProtocol`), because ale-py's own ``episodic_life``
resets the whole game on a life loss, which shortens every game to one life.
"""

from __future__ import annotations

import os
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper

from lit_rl.envs.atari_wrappers import EpisodicLife, FireReset, MaxAndSkip, NoopReset, WarpFrame
from lit_rl.envs.options import AtariOptions


def ensure_ale_registered() -> None:
    """Register ale-py's ids with gymnasium (idempotent)."""
    import ale_py

    gym.register_envs(ale_py)


def ale_game(env_id: str) -> str | None:
    """The ROM id (``"pong"``) of an ALE env id, or ``None`` if the id is not an Atari game."""
    ensure_ale_registered()
    spec = gym.registry.get(env_id)
    if spec is None or spec.entry_point != "ale_py.env:AtariEnv":
        return None
    return spec.kwargs["game"]


class RoomTracker(gym.Wrapper):
    """Montezuma's Revenge rooms: ``info["room"]`` every step (RAM byte 3; README, "Exploration: the
    explorative-attention ViT with RND") and ``episode["rooms"]``, the number of distinct rooms of the game,
    beside ``RecordEpisodeStatistics``' return and length when a game ends.

    Sits directly above ``RecordEpisodeStatistics``, so an episode is a whole game.
    """

    ROOM_RAM_INDEX = 3

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._rooms: set[int] = set()

    def _room(self) -> int:
        return int(self.env.unwrapped.ale.getRAM()[self.ROOM_RAM_INDEX])

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        info["room"] = self._room()
        self._rooms = {info["room"]}
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["room"] = self._room()
        self._rooms.add(info["room"])
        if "episode" in info:
            info["episode"]["rooms"] = len(self._rooms)
        return obs, reward, terminated, truncated, info


def tracks_rooms(env_id: str) -> bool:
    """True for Montezuma's Revenge, whose room number lit_rl logs."""
    return ale_game(env_id) == "montezuma_revenge"


def needs_fire(env: gym.Env) -> bool:
    meanings = env.unwrapped.get_action_meanings()
    return len(meanings) >= 3 and meanings[1] == "FIRE"


def make_atari_env(env_id: str, options: AtariOptions) -> gym.Env:
    """One Atari env with the protocol of ``options``: the reference stack (gymnasium wrappers).

    SB3's ``make_atari_env`` + ``VecFrameStack`` in SB3's order (see :mod:`lit_rl.envs.atari_wrappers`):
    RGB frames of the raw game (frame skip 1), no-op starts, frame skip with max-pool, the episode
    statistics, life loss, FIRE reset, OpenCV gray and ``INTER_AREA`` resize, sign-clipped rewards,
    and a frame stack that starts every episode (a life, in training) from zeros. The statistics sit
    below the life loss: returns are full-game raw scores, lengths count the frame-skipped steps of
    the game, the hidden reset steps included.
    """
    ensure_ale_registered()
    env = gym.make(
        env_id,
        frameskip=1,
        repeat_action_probability=options.sticky_action_prob,
        full_action_space=options.full_action_space,
        max_num_frames_per_episode=options.max_episode_frames,
        max_episode_steps=None,
        obs_type="rgb",
    )
    if options.noop_max > 0:
        env = NoopReset(env, options.noop_max)
    if options.frame_skip > 1:
        env = MaxAndSkip(env, options.frame_skip)
    env = gym.wrappers.RecordEpisodeStatistics(env)
    if tracks_rooms(env_id):
        env = RoomTracker(env)
    if options.terminal_on_life_loss:
        env = EpisodicLife(env)
    if options.fire_reset and needs_fire(env):
        env = FireReset(env)
    env = WarpFrame(env, options.screen_size)
    if options.clip_reward:
        env = gym.wrappers.TransformReward(env, lambda r: float(np.sign(r)))
    # SB3's VecFrameStack: zeros, then the first frame, at every episode start.
    return gym.wrappers.FrameStackObservation(env, options.frame_stack, padding_type="zero")


class AleVectorProtocol(VectorWrapper):
    """Life-loss terminals, reward clipping and raw episode statistics over ``AtariVectorEnv``.

    The wrapped env runs with ``episodic_life=False`` and ``reward_clipping=False``; this wrapper
    marks a life loss as ``terminated`` for training while the game continues (no reset, no FIRE,
    the frame stack carries on), clips rewards to their sign, and reports the full-game raw return
    with the keys of gymnasium's ``RecordEpisodeStatistics``.
    """

    def __init__(self, env: VectorEnv, *, terminal_on_life_loss: bool, clip_reward: bool) -> None:
        super().__init__(env)
        self.terminal_on_life_loss = terminal_on_life_loss
        self.clip_reward = clip_reward
        n = env.num_envs
        self._returns = np.zeros(n, dtype=np.float64)
        self._lengths = np.zeros(n, dtype=np.int64)
        self._lives = np.zeros(n, dtype=np.int64)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._returns[:] = 0.0
        self._lengths[:] = 0
        self._lives[:] = info["lives"]
        return obs, info

    def step(self, actions: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        self.send(actions)
        return self.recv()

    def send(self, actions: np.ndarray) -> None:
        """Start stepping every env with ``actions`` ``[N]`` on ale-py's threads; returns at once."""
        self.env.unwrapped.send(np.asarray(actions))

    def recv(self) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Wait for the step started by :meth:`send`; the results of ``step``."""
        obs, rewards, terminated, truncated, info = self.env.unwrapped.recv()
        rewards = rewards.astype(np.float64)
        self._returns += rewards
        self._lengths += 1
        ended = terminated | truncated
        if ended.any():
            info["episode"] = {"r": self._returns.copy(), "l": self._lengths.copy()}
            info["_episode"] = ended.copy()
            info["_final_obs"] = ended.copy()
            self._returns[ended] = 0.0
            self._lengths[ended] = 0
        lives = info["lives"].astype(np.int64)
        if self.terminal_on_life_loss:
            # After a game over the lives of the new game are higher; only a drop counts.
            terminated = terminated | ((lives < self._lives) & ~ended)
        self._lives = lives
        if self.clip_reward:
            rewards = np.sign(rewards)
        return obs, rewards.astype(np.float32), terminated, truncated, info


def make_ale_vector_env(
    game: str, num_envs: int, options: AtariOptions, num_threads: int = 0, groups: int = 1
) -> VectorEnv:
    """``num_envs`` Atari games stepped by ale-py's C++ thread pool, with the protocol of ``options``.

    ``groups > 1`` (and at least as many envs) splits them into that many :class:`EnvGroups` of
    near-equal size, each with its own threads (``num_threads`` each; 0: the cores divided among the
    groups), so that the collector can overlap one group's stepping with another's inference.
    """
    from lit_rl.envs.groups import EnvGroups

    if groups > 1 and num_envs >= groups:
        sizes = [len(part) for part in np.array_split(np.arange(num_envs), groups)]
        threads = num_threads or max(1, (os.cpu_count() or 1) // groups)
        return EnvGroups([_ale_group(game, n, options, threads) for n in sizes])
    return _ale_group(game, num_envs, options, num_threads)


def _ale_group(game: str, num_envs: int, options: AtariOptions, num_threads: int) -> AleVectorProtocol:
    from ale_py.vector_env import AtariVectorEnv

    env = AtariVectorEnv(
        game,
        num_envs,
        num_threads=num_threads,
        max_num_frames_per_episode=options.max_episode_frames,
        repeat_action_probability=options.sticky_action_prob,
        full_action_space=options.full_action_space,
        autoreset_mode=AutoresetMode.SAME_STEP,
        img_height=options.screen_size,
        img_width=options.screen_size,
        stack_num=options.frame_stack,
        frameskip=options.frame_skip,
        noop_max=options.noop_max,
        episodic_life=False,
        reward_clipping=False,
        use_fire_reset=options.fire_reset,
    )
    return AleVectorProtocol(env, terminal_on_life_loss=options.terminal_on_life_loss, clip_reward=options.clip_reward)
