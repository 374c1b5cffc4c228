"""The fast Atari path: SB3's ``AtariWrapper`` protocol on ale-py's C++ emulator, in worker processes.

Each worker process steps its share of the games (:class:`lit_rl.envs.ale_game.AleGame`, one
``ALEInterface`` each) and writes their 84×84 frames and step results into shared memory; the parent
keeps the frame stacks (SB3's ``VecFrameStack``: zeros at every episode start), clips rewards and
reports episodes. Processes rather than threads: ale-py's ``act`` holds the GIL, so threads stepping
``ALEInterface`` objects do not run in parallel; and ale-py's threaded ``AtariVectorEnv`` cannot take
SB3's steps (1-30 single-frame no-ops, FIRE then action 2 as frame-skipped steps after every life
loss, time limits in frames). See README, "Atari protocol and backends".

``send(actions)`` returns at once and ``recv()`` waits, so :class:`lit_rl.envs.groups.EnvGroups` can
pipeline pools with the policy, as it does ale-py's vector env.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import signal
import weakref
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from lit_rl.envs.options import AtariOptions

# name -> (dtype, per-env shape given the frame size); the shared-memory layout of a pool
_FIELDS = {
    "actions": (np.int64, ()),
    "frames": (np.uint8, ("s", "s")),  # the newest frame (of the next episode where one ended)
    "final_frames": (np.uint8, ("s", "s")),  # the frame that ended an episode
    "rewards": (np.float64, ()),
    "terminated": (np.bool_, ()),
    "truncated": (np.bool_, ()),
    "game_ended": (np.bool_, ()),
    "episode_return": (np.float64, ()),
    "episode_length": (np.int64, ()),
    "lives": (np.int64, ()),
    "final_lives": (np.int64, ()),
    "episode_frame_number": (np.int64, ()),
}


def _views(buffer: Any, num_envs: int, size: int) -> dict[str, np.ndarray]:
    """Numpy views of each field in the shared ``buffer`` (see :data:`_FIELDS`)."""
    views, offset = {}, 0
    for name, (dtype, shape) in _FIELDS.items():
        full = (num_envs, *(size for _ in shape))
        count = int(np.prod(full))
        offset = -(-offset // 8) * 8  # 8-byte alignment
        views[name] = np.frombuffer(buffer, dtype=dtype, count=count, offset=offset).reshape(full)
        offset += count * np.dtype(dtype).itemsize
    return views


def _nbytes(num_envs: int, size: int) -> int:
    total = 0
    for dtype, shape in _FIELDS.values():
        total = -(-total // 8) * 8 + num_envs * size ** len(shape) * np.dtype(dtype).itemsize
    return total


def _worker(conn: Any, buffer: Any, rows: range, num_envs: int, rom: str, options: AtariOptions) -> None:
    """Step the games ``rows`` of the pool on command: ``"step"`` (actions in shared memory),
    ``("reset", seed)``, ``"close"``."""
    for name in ("SIGTERM", "SIGUSR1", "SIGINT"):  # the trainer, not its env workers, handles preemption
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    import cv2

    from lit_rl.envs.ale_game import AleGame

    cv2.setNumThreads(1)
    v = _views(buffer, num_envs, options.screen_size)
    games = {i: AleGame(rom, options) for i in rows}
    conn.send(len(games[rows[0]].actions))
    parent = os.getppid()
    while True:
        # Exit with the parent: forked siblings hold copies of this pipe's other end, so no EOF comes.
        while not conn.poll(1.0):
            if os.getppid() != parent:
                return
        try:
            command = conn.recv()
        except EOFError:
            return
        if command == "close":
            conn.close()
            return
        if command == "step":
            _step(games, v)
        else:
            _reset(games, v, seed=command[1])
        conn.send(None)


def _step(games: dict[int, Any], v: dict[str, np.ndarray]) -> None:
    """One agent step of each game (SAME_STEP autoreset), results into the shared views ``v``."""
    for i, game in games.items():
        reward, terminated, truncated = game.step(int(v["actions"][i]))
        v["rewards"][i], v["terminated"][i], v["truncated"][i] = reward, terminated, truncated
        v["game_ended"][i] = ended = game.game_ended
        if ended:
            v["episode_return"][i], v["episode_length"][i] = game.episode_return, game.episode_length
        if terminated or truncated:
            game.observe(v["final_frames"][i])
            v["final_lives"][i] = game.lives
            game.reset(None, v["frames"][i])
        else:
            game.observe(v["frames"][i])
        v["lives"][i] = game.lives
        v["episode_frame_number"][i] = game.ale.getEpisodeFrameNumber()


def _reset(games: dict[int, Any], v: dict[str, np.ndarray], seed: int | None) -> None:
    for i, game in games.items():
        game.reset(None if seed is None else seed + i, v["frames"][i])
        v["lives"][i] = game.lives
        v["episode_frame_number"][i] = game.ale.getEpisodeFrameNumber()


_OPEN_POOLS: weakref.WeakSet = weakref.WeakSet()


def _register_for_exit(pool: AlePool) -> None:
    """Close open pools at exit before multiprocessing's own exit hook (registered when the first worker
    started; hooks run last-registered first), which would wait forever for workers that ignore SIGTERM."""
    if not _OPEN_POOLS:
        atexit.unregister(_close_open_pools)
        atexit.register(_close_open_pools)
    _OPEN_POOLS.add(pool)


def _close_open_pools() -> None:
    for pool in list(_OPEN_POOLS):
        pool.close()


class AlePool(VectorEnv):
    """``num_envs`` games with SB3's Atari protocol, stepped by ``workers`` processes.

    Args:
        rom: ale-py ROM id (``"breakout"``).
        num_envs: Number of games.
        options: The protocol (every :class:`AtariOptions` field is supported).
        workers: Worker processes (at most ``num_envs``); games are split into contiguous near-equal parts.
    """

    def __init__(self, rom: str, num_envs: int, options: AtariOptions, workers: int = 1) -> None:
        self.num_envs, self.options = num_envs, options
        size, stack = options.screen_size, options.frame_stack
        # fork: starts in milliseconds and needs no `if __name__ == "__main__"` guard in the user's script
        # (as gymnasium's AsyncVectorEnv on Linux); the workers use numpy, OpenCV and ale-py only.
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        self._buffer = ctx.RawArray("b", _nbytes(num_envs, size))
        self._v = _views(self._buffer, num_envs, size)
        self._conns, self._procs = [], []
        for part in np.array_split(np.arange(num_envs), min(workers, num_envs)):
            parent, child = ctx.Pipe()
            rows = range(int(part[0]), int(part[-1]) + 1)
            proc = ctx.Process(target=_worker, args=(child, self._buffer, rows, num_envs, rom, options), daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        num_actions = {conn.recv() for conn in self._conns}.pop()
        _register_for_exit(self)
        self.single_observation_space = spaces.Box(0, 255, (stack, size, size), dtype=np.uint8)
        self.single_action_space = spaces.Discrete(num_actions)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}
        self.render_mode = None
        self._stacks = np.zeros((num_envs, stack, size, size), dtype=np.uint8)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset every game; env ``i`` gets ``seed + i``."""
        if seed is not None:
            self.action_space.seed(seed)
        for conn in self._conns:
            conn.send(("reset", seed))
        for conn in self._conns:
            conn.recv()
        self._stacks[:] = 0
        self._stacks[:, -1] = self._v["frames"]
        return self._stacks.copy(), {"lives": self._v["lives"].copy()}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        self.send(actions)
        return self.recv()

    def send(self, actions: np.ndarray) -> None:
        """Start a step of every game with ``actions`` ``[N]``; returns at once."""
        self._v["actions"][:] = np.asarray(actions).reshape(self.num_envs)
        for conn in self._conns:
            conn.send("step")

    def recv(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Wait for the step started by :meth:`send`; what ``step`` returns."""
        for conn in self._conns:
            conn.recv()
        v, stacks = self._v, self._stacks
        terminated, truncated = v["terminated"].copy(), v["truncated"].copy()
        ended = terminated | truncated
        info: dict[str, Any] = {"lives": v["lives"].copy(), "episode_frame_number": v["episode_frame_number"].copy()}
        if ended.any():
            final = np.zeros_like(stacks)
            final[ended, :-1] = stacks[ended, 1:]
            final[ended, -1] = v["final_frames"][ended]
            final_info = {"lives": v["final_lives"].copy(), "_lives": ended}
            info |= {"final_obs": final, "_final_obs": ended, "final_info": final_info}
        games = v["game_ended"].copy()
        if games.any():
            info["episode"] = {"r": v["episode_return"].copy(), "l": v["episode_length"].copy()}
            info["_episode"] = games
        stacks[:, :-1] = stacks[:, 1:].copy()
        stacks[ended, :-1] = 0  # SB3's VecFrameStack: a new episode starts from zeros
        stacks[:, -1] = v["frames"]
        rewards = v["rewards"].astype(np.float32)
        if self.options.clip_reward:
            rewards = np.sign(rewards)
        return stacks.copy(), rewards, terminated, truncated, info

    def close_extras(self, **kwargs: Any) -> None:
        _OPEN_POOLS.discard(self)
        for conn, proc in zip(self._conns, self._procs, strict=True):
            try:
                conn.send("close")
            except (BrokenPipeError, OSError):
                pass
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()


def make_ale_pool(rom: str, num_envs: int, options: AtariOptions, groups: int = 1, workers: int = 0) -> VectorEnv:
    """``num_envs`` games as one :class:`AlePool`, or as ``groups`` pools of near-equal size in an
    :class:`lit_rl.envs.groups.EnvGroups` (when ``groups > 1`` and ``num_envs >= groups``), which the
    collector pipelines with the policy.

    Args:
        workers: Worker processes per pool; 0: the CPU cores divided among the pools (at least 1).
    """
    from lit_rl.envs.groups import EnvGroups

    groups = groups if groups > 1 and num_envs >= groups else 1
    workers = workers or max(1, (os.cpu_count() or 1) // groups)
    if groups == 1:
        return AlePool(rom, num_envs, options, workers)
    sizes = [len(part) for part in np.array_split(np.arange(num_envs), groups)]
    return EnvGroups([AlePool(rom, n, options, workers) for n in sizes])
