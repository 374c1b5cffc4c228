"""One entry point that builds a vector env for any gymnasium id or Atari game.

Every env it returns follows the contract of :mod:`lit_rl.envs.episode_info`: gymnasium's
``SAME_STEP`` autoreset, ``terminated`` and ``truncated`` kept apart, raw episode statistics.
"""

from __future__ import annotations

import difflib
import functools
import re
import signal
from collections.abc import Callable
from typing import Literal

import gymnasium as gym
from gymnasium.vector import AutoresetMode, VectorEnv

from lit_rl.envs.ale_pool import make_ale_pool
from lit_rl.envs.atari import ale_game, ensure_ale_registered, make_ale_vector_env, make_atari_env, tracks_rooms
from lit_rl.envs.classic import register_envs, stack_observations
from lit_rl.envs.mario import is_mario, make_mario_env
from lit_rl.envs.options import AtariOptions
from lit_rl.errors import ConfigError

Backend = Literal["auto", "ale", "gymnasium", "ale_vector"]
Vectorization = Literal["sync", "async"]


def check_env_id(env_id: str) -> None:
    """Raise :class:`ConfigError` naming close matches if ``env_id`` is not registered.

    Super Mario Bros ids are registered on first use if the ``mario`` extra is installed, and
    raise a :class:`ConfigError` naming the extra if it is not."""
    ensure_ale_registered()
    register_envs()
    if env_id in gym.registry or is_mario(env_id):
        return
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else "see gymnasium.pprint_registry()"
    raise ConfigError(f"unknown env id {env_id!r}: {hint}")


def game_name(env_id: str) -> str:
    """The short name of an env id for file names: ``PongNoFrameskip-v4`` and ``ALE/Pong-v5`` → ``Pong``,
    ``CartPole-v1`` → ``CartPole``, ``lit_rl/StatelessCartPole-v0`` → ``StatelessCartPole``."""
    name = re.sub(r"-v\d+$", "", env_id.rsplit("/", 1)[-1])
    return re.sub(r"(NoFrameskip|Deterministic)$", "", name) or name


def is_atari(env_id: str) -> bool:
    """True if ``env_id`` is an ALE game."""
    return ale_game(env_id) is not None


def make_vector_env(
    env_id: str,
    *,
    num_envs: int,
    backend: Backend = "auto",
    atari: AtariOptions | None = None,
    vectorization: Vectorization = "sync",
    evaluation: bool = False,
    obs_stack: int = 1,
    env_groups: int = 1,
) -> VectorEnv:
    """Build and reset-ready ``num_envs`` copies of ``env_id``.

    Args:
        env_id: Any registered gymnasium id; ALE games get the Atari protocol of ``atari``; Super
            Mario Bros ids (extra ``mario``) the defaults of :func:`lit_rl.envs.mario.make_mario_env`.
        num_envs: Number of parallel environments.
        backend: ``"ale"`` (SB3's Atari protocol on ale-py's emulator in worker processes, Atari only;
            :mod:`lit_rl.envs.ale_pool`), ``"gymnasium"`` (wrappers per env; for Atari the reference
            stack of the same protocol), ``"ale_vector"`` (ale-py's threaded ``AtariVectorEnv``, its
            own reset protocol, Atari only) or ``"auto"`` (``ale_vector`` for Atari except Montezuma's
            Revenge, whose rooms only the gymnasium backend reports; else ``gymnasium``).
        atari: Atari protocol; ``None`` uses :class:`AtariOptions` defaults.
        vectorization: ``"sync"`` (one process) or ``"async"`` (one subprocess per env) for the
            gymnasium backend.
        evaluation: Raw (unclipped) rewards; see :meth:`AtariOptions.for_evaluation`.
        obs_stack: Observe the last ``obs_stack`` observations of a non-Atari env, stacked on a new
            leading axis (see :func:`lit_rl.envs.classic.stack_observations`); Atari games stack
            frames with ``atari.frame_stack`` instead.
        env_groups: ``ale`` and ``ale_vector`` only: step the envs as this many :class:`lit_rl.envs.groups.EnvGroups`,
            which the collector pipelines (one group steps while the policy acts for another); other
            backends ignore it.

    Returns:
        A gymnasium ``VectorEnv`` in ``SAME_STEP`` autoreset mode. Seed it with its first
        ``reset(seed=s)``: env ``i`` gets ``s + i`` (both backends).
    """
    check_env_id(env_id)
    if num_envs < 1:
        raise ConfigError(f"num_envs={num_envs}; expected a positive integer")
    game = ale_game(env_id)
    if obs_stack < 1 or (game is not None and obs_stack != 1):
        raise ConfigError(
            f"obs_stack={obs_stack}; expected a positive integer, and 1 for Atari games "
            "(they stack frames with atari.frame_stack)"
        )
    if is_mario(env_id):
        env_fns = _mario_env_fns(env_id, num_envs, backend, obs_stack)
    elif game is None:
        if backend in ("ale", "ale_vector"):
            raise ConfigError(f"backend={backend!r} needs an Atari env id, got {env_id!r}")
        env_fns = [lambda: _make_classic_env(env_id, obs_stack) for _ in range(num_envs)]
    else:
        options = atari or AtariOptions()
        if evaluation:
            options = options.for_evaluation()
        if backend == "ale":
            check_ale_backend(env_id, vectorization)
            return make_ale_pool(game, num_envs, options, groups=env_groups)
        # auto: the C++ vector env, except for Montezuma's Revenge, whose rooms (RAM) only the
        # gymnasium backend exposes.
        if backend == "ale_vector" or (backend == "auto" and not tracks_rooms(env_id)):
            return make_ale_vector_env(game, num_envs, options, groups=env_groups)
        env_fns = [lambda: make_atari_env(env_id, options) for _ in range(num_envs)]
    if vectorization == "async":
        env_fns = [functools.partial(_in_worker, fn) for fn in env_fns]
        return gym.vector.AsyncVectorEnv(env_fns, autoreset_mode=AutoresetMode.SAME_STEP)
    return gym.vector.SyncVectorEnv(env_fns, autoreset_mode=AutoresetMode.SAME_STEP)


def check_ale_backend(env_id: str, vectorization: Vectorization) -> None:
    """Refuse what the ``ale`` backend does not do, rather than fall back to another backend."""
    if tracks_rooms(env_id):
        raise ConfigError(
            f"backend='ale' does not report the rooms of {env_id!r}; use backend='gymnasium' (or 'auto') for it"
        )
    if vectorization != "sync":
        raise ConfigError(
            f"vectorization={vectorization!r} applies to backend='gymnasium'; backend='ale' runs its own "
            "worker processes (use vectorization='sync')"
        )


def _in_worker(make_env: Callable[[], gym.Env]) -> gym.Env:
    """Build an env in an async worker that ignores preemption signals: a scheduler signals every
    process of a job, and the trainer, not its env workers, decides when to stop (they exit with it)."""
    for name in ("SIGTERM", "SIGUSR1", "SIGINT"):
        if hasattr(signal, name):  # SIGUSR1 does not exist on Windows
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    return make_env()


def _make_classic_env(env_id: str, obs_stack: int) -> gym.Env:
    """One non-Atari env with episode statistics; registers lit_rl's ids first, since async workers
    started with ``spawn`` or ``forkserver`` do not inherit the parent's registry."""
    register_envs()
    return gym.wrappers.RecordEpisodeStatistics(stack_observations(gym.make(env_id), obs_stack))


def _mario_env_fns(env_id: str, num_envs: int, backend: Backend, obs_stack: int) -> list[Callable[[], gym.Env]]:
    """Factories of ``num_envs`` Mario envs for gymnasium's vector envs; ``make_mario_env`` registers the
    package's ids itself, so workers started with ``spawn`` can build them too."""
    if backend == "ale_vector":
        raise ConfigError(f"backend='ale_vector' needs an Atari env id, got the Mario id {env_id!r}")
    if obs_stack != 1:
        raise ConfigError(f"obs_stack={obs_stack}; expected 1 for Mario ids (they stack 4 frames themselves)")
    return [lambda: make_mario_env(env_id) for _ in range(num_envs)]
