"""Steps a vector env with a policy and fills a preallocated :class:`Rollout`.

One host→device copy of the observations per step; actions, log-probs and values stay on the
policy's device; rewards and episode flags are gathered on the host and moved once per rollout.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv

from lit_rl.data.episodes import RolloutEpisodes
from lit_rl.data.protocol import Policy
from lit_rl.data.rollout import Rollout
from lit_rl.envs.episode_info import current_rooms, final_observations, finished_episode_rooms, finished_episodes
from lit_rl.envs.groups import EnvGroups


class RolloutCollector:
    """Collects ``num_steps`` transitions from each env of ``env`` per call.

    Args:
        env: A vector env from :func:`lit_rl.envs.factory.make_vector_env` (``SAME_STEP`` autoreset).
        num_steps: Steps per env per rollout (``T``).
        seed: Seed of the first reset (env ``i`` gets ``seed + i``).
        device: Where the rollout tensors live (the policy's device).
        next_obs_view: Records ``next_obs_view(s_{t+1})`` in ``Rollout.next_obs`` (the final
            observation where an episode ended): what an intrinsic-reward module sees (RND's newest
            frame). ``None`` records nothing.
    """

    def __init__(
        self,
        env: VectorEnv,
        num_steps: int,
        seed: int,
        device: torch.device,
        next_obs_view: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        mode = env.metadata.get("autoreset_mode")
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(f"the collector needs AutoresetMode.SAME_STEP, the env uses {mode!r}")
        self.env, self.num_steps, self.device = env, num_steps, device
        T, N = num_steps, env.num_envs
        space = env.single_observation_space
        obs_dtype = torch.uint8 if space.dtype == np.uint8 else torch.float32
        # T + 1 rows: row T holds the observation after the last step, the next rollout's row 0.
        self._obs = torch.zeros((T + 1, N, *space.shape), dtype=obs_dtype, device=device)
        self._actions = torch.zeros((T, N), dtype=torch.int64, device=device)
        self._log_probs = torch.zeros((T, N), device=device)
        self._values = torch.zeros((T, N), device=device)
        self._final_values = torch.zeros((T, N), device=device)
        self._int_values = torch.zeros((T, N), device=device)
        self.next_obs_view = next_obs_view
        self._next_obs: torch.Tensor | None = None  # [T, N, *view shape], allocated on first use
        self._rewards = np.zeros((T, N), dtype=np.float32)
        self._terminated = np.zeros((T, N), dtype=bool)
        self._truncated = np.zeros((T, N), dtype=bool)
        self._episode_starts = torch.zeros((T + 1, N), dtype=torch.bool, device=device)
        self._episode_starts[T] = True  # row T: flags of the next rollout's first observation
        # A recurrent policy's memory, carried from step to step and across rollouts.
        self._memory: torch.Tensor | None = None
        self.total_steps = 0
        self.reset(seed)

    def reset(self, seed: int) -> None:
        """Start fresh episodes in every env (env ``i`` seeded with ``seed + i``) and forget the memory."""
        obs, _ = self.env.reset(seed=seed)
        self.env.action_space.seed(seed)  # the random-policy warm-up draws from it
        self._obs[self.num_steps].copy_(torch.from_numpy(np.asarray(obs)))
        self._episode_starts[self.num_steps] = True
        self._memory = None

    @torch.inference_mode()
    def collect(self, policy: Policy) -> tuple[Rollout, RolloutEpisodes]:
        """One rollout of ``T × N`` transitions with ``policy`` (actions sampled).

        With an :class:`EnvGroups` env and a policy without memory, the groups are pipelined: while
        one group's games step on ale-py's threads, the policy computes the next actions of another.
        """
        T = self.num_steps
        self._obs[0].copy_(self._obs[T])
        self._episode_starts[0].copy_(self._episode_starts[T])
        self._final_values.zero_()
        memory_log = self._start_memory_log(policy)
        episodes = _EpisodeLog()
        if isinstance(self.env, EnvGroups) and not policy.recurrent:
            # The groups' threads and the policy's share the cores: on the CPU the policy gets its
            # share (1 torch thread + 1 thread per group; README, Performance).
            with _torch_threads(max(1, torch.get_num_threads() // len(self.env.groups)), self.device):
                self._collect_pipelined(policy, episodes)
        else:
            for t in range(T):
                if memory_log is not None and t % policy.seq_len == 0:
                    memory_log[t // policy.seq_len] = self._memory
                actions = self._act(policy, t, slice(None))
                self._record_step(policy, t, slice(None), *self.env.step(actions), episodes)
        last = policy.values(self._obs[T], memory=self._memory, episode_start=self._episode_starts[T])
        self.total_steps += T * self.env.num_envs
        rollout = Rollout(
            obs=self._obs[:T].clone(),
            actions=self._actions.clone(),
            log_probs=self._log_probs.clone(),
            values=self._values.clone(),
            rewards=torch.from_numpy(self._rewards.copy()).to(self.device),
            terminated=torch.from_numpy(self._terminated.copy()).to(self.device),
            truncated=torch.from_numpy(self._truncated.copy()).to(self.device),
            final_values=self._final_values.clone(),
            last_value=last.values,
            episode_starts=self._episode_starts[:T].clone(),
            memory=memory_log,
            next_obs=None if self._next_obs is None else self._next_obs.clone(),
            int_values=None if last.int_values is None else self._int_values.clone(),
            int_last_value=last.int_values,
        )
        return rollout, episodes.result()

    def _collect_pipelined(self, policy: Policy, episodes: _EpisodeLog) -> None:
        """Step ``T`` with each group acting as soon as its previous step is back (no memory).

        Order per step ``t``: receive group ``g``'s step ``t``, record it, compute and send its step
        ``t + 1``, then the next group; each group's games step while the others' actions are computed.
        """
        env, T = self.env, self.num_steps
        for group, rows in zip(env.groups, env.slices, strict=True):
            group.send(self._act(policy, 0, rows))
        for t in range(T):
            for group, rows in zip(env.groups, env.slices, strict=True):
                self._record_step(policy, t, rows, *group.recv(), episodes)
                if t + 1 < T:
                    group.send(self._act(policy, t + 1, rows))

    def _act(self, policy: Policy, t: int, rows: slice) -> np.ndarray:
        """Sample the actions of step ``t`` for the envs ``rows``, store them with their log-probs and
        values, and return them for the env (one device→host copy)."""
        out = policy.act(self._obs[t, rows], memory=self._memory, episode_start=self._episode_starts[t, rows])
        self._memory = out.memory
        self._actions[t, rows] = out.actions
        self._log_probs[t, rows] = out.log_probs
        self._values[t, rows] = out.values
        if out.int_values is not None:
            self._int_values[t, rows] = out.int_values
        return out.actions.cpu().numpy()

    def _record_step(
        self,
        policy: Policy,
        t: int,
        rows: slice,
        obs: np.ndarray,
        rewards: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        info: dict,
        episodes: _EpisodeLog,
    ) -> None:
        """Store what step ``t`` of the envs ``rows`` returned (``info`` indexes envs within ``rows``)."""
        self._obs[t + 1, rows].copy_(torch.from_numpy(np.asarray(obs)), non_blocking=True)
        self._rewards[t, rows] = rewards
        self._terminated[t, rows] = terminated
        self._truncated[t, rows] = truncated & ~terminated
        self._episode_starts[t + 1, rows].copy_(torch.from_numpy(terminated | truncated), non_blocking=True)
        if self._truncated[t, rows].any():
            self._bootstrap_truncated(policy, t, info, rows)
        if self.next_obs_view is not None:
            self._record_next_obs(t, info, rows)
        episodes.add(info)

    def _record_next_obs(self, t: int, info: dict, rows: slice) -> None:
        """``next_obs_view`` of the observation after step ``t`` of the envs ``rows``; the final one where
        the env was reset.

        Only envs that reset (``info["_final_obs"]``) have a final observation: a life loss of the C++
        Atari backend is ``terminated`` for training while the game, and its frames, go on.
        """
        view = self.next_obs_view(self._obs[t + 1, rows])
        if self._next_obs is None:
            shape = (self.num_steps, self.env.num_envs, *view.shape[1:])
            self._next_obs = torch.zeros(shape, dtype=view.dtype, device=self.device)
        self._next_obs[t, rows] = view
        reset = np.asarray(info.get("_final_obs", ()), dtype=bool)
        if reset.any():
            idx = np.flatnonzero(reset)
            final = torch.from_numpy(final_observations(info, idx)).to(self.device)
            env_rows = torch.from_numpy(idx + range(self.env.num_envs)[rows].start).to(self.device)
            self._next_obs[t, env_rows] = self.next_obs_view(final)

    @torch.inference_mode()
    def random_rollout(self) -> torch.Tensor:
        """``num_steps`` steps of every env with uniformly random actions (RND's observation warm-up).

        Returns ``next_obs_view`` of each new observation, ``[T, N, *view shape]``. The envs are reset
        afterwards (without a seed: their RNGs go on), so training starts from fresh episodes and no
        random-policy step reaches the episode statistics. Not counted in ``total_steps``.
        """
        if self.next_obs_view is None:
            raise ValueError("random_rollout() records next_obs_view; build the collector with one")
        views = []
        for _ in range(self.num_steps):
            obs, *_ = self.env.step(self.env.action_space.sample())
            views.append(self.next_obs_view(torch.from_numpy(np.asarray(obs)).to(self.device)).clone())
        obs, _ = self.env.reset()
        self._obs[self.num_steps].copy_(torch.from_numpy(np.asarray(obs)))
        self._episode_starts[self.num_steps] = True
        return torch.stack(views)

    def _start_memory_log(self, policy: Policy) -> torch.Tensor | None:
        """A fresh ``[S, N, *memory_shape]`` record of the memory before each chunk (recurrent only)."""
        if not policy.recurrent:
            self._memory = None
            return None
        if self._memory is None:
            self._memory = policy.initial_memory(self.env.num_envs)
        chunks = -(-self.num_steps // policy.seq_len)
        return self._memory.new_zeros((chunks, *self._memory.shape))

    def _bootstrap_truncated(self, policy: Policy, t: int, info: dict, rows: slice) -> None:
        """Store ``V(final observation)`` of the envs ``rows`` truncated at step ``t`` (``info`` is theirs).

        A recurrent policy sees it with the memory after step ``t``, in the same episode.
        """
        idx = np.flatnonzero(self._truncated[t, rows])
        final = torch.from_numpy(final_observations(info, idx)).to(self.device)
        env_rows = torch.from_numpy(idx + range(self.env.num_envs)[rows].start).to(self.device)
        memory = None if self._memory is None else self._memory[env_rows]
        self._final_values[t, env_rows] = policy.values(final, memory=memory).values

    def close(self) -> None:
        self.env.close()


@contextlib.contextmanager
def _torch_threads(num_threads: int, device: torch.device) -> Iterator[None]:
    """Run the block with ``num_threads`` torch threads when computing on the CPU."""
    before = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _EpisodeLog:
    """The finished episodes (and Montezuma's rooms) of one rollout, gathered step by step."""

    def __init__(self) -> None:
        self.returns: list[np.ndarray] = []
        self.lengths: list[np.ndarray] = []
        self.rooms: list[np.ndarray] = []
        self.rooms_seen: list[np.ndarray] = []

    def add(self, info: dict) -> None:
        idx, returns, lengths = finished_episodes(info)
        if idx.size:
            self.returns.append(returns)
            self.lengths.append(lengths)
            self.rooms.append(finished_episode_rooms(info))
        if "room" in info:  # Montezuma only: no per-step allocation for other games
            self.rooms_seen.append(current_rooms(info))

    def result(self) -> RolloutEpisodes:
        return RolloutEpisodes(
            _concat(self.returns, np.float64),
            _concat(self.lengths, np.int64),
            _concat(self.rooms, np.int64),
            np.unique(_concat(self.rooms_seen, np.int64)),
        )


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)
