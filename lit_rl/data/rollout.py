"""One on-policy rollout as a frozen dataclass of time-major tensors."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

_TIME_MAJOR = ("actions", "log_probs", "values", "rewards", "terminated", "truncated", "final_values")
_OPTIONAL_TIME_MAJOR = ("advantages", "returns", "episode_starts", "mask", "int_values", "int_returns")
_PER_ENV = ("last_value", "int_last_value")  # [N]: dropped by flatten(), to_sequences() and minibatches
_BOOL = ("terminated", "truncated", "episode_starts", "mask")


@dataclass(frozen=True)
class Rollout:
    """Transitions of ``N`` envs over ``T`` steps, collected with one policy.

    Args:
        obs: Observations ``s_t`` (uint8 images stay uint8).
        actions: Actions taken (int64).
        log_probs: ``log π(a_t|s_t)`` at collection time.
        values: ``V(s_t)`` at collection time.
        rewards: Training rewards ``r_t`` (clipped where the env clips).
        terminated: The episode ended in a terminal state at step ``t``.
        truncated: The episode was cut at step ``t`` (time limit) and not terminated.
        final_values: ``V(final observation)`` where ``truncated``, 0 elsewhere.
        last_value: ``V(s_T)`` of the observation after the last step.
        advantages: Added by the algorithm (``None`` until then).
        returns: Added by the algorithm (``None`` until then).
        episode_starts: ``s_t`` is the first observation of an episode.
        memory: A recurrent policy's memory before steps ``0, L, 2L, ...`` (``L`` its ``seq_len``),
            recorded while acting; ``None`` for feed-forward policies.
        mask: Real (``True``) or padding (``False``) transitions; ``None``: all real.
        next_obs: What an intrinsic-reward module sees of ``s_{t+1}`` (the final observation where the
            episode ended), e.g. RND's newest frame; ``None`` without one.
        int_values: ``V^int(s_t)`` of an intrinsic value head at collection time.
        int_last_value: ``V^int(s_T)``.
        int_returns: Intrinsic value targets, added by the algorithm.

    Shapes:
        obs: ``[T, N, *obs_shape]``; next_obs: ``[T, N, *input_shape]``; last_value, int_last_value:
        ``[N]``; memory: ``[S, N, *memory_shape]`` with
        ``S = ceil(T / L)``; every other field ``[T, N]``.
        After :meth:`flatten` the leading ``T, N`` become one ``B = T * N`` axis and
        ``last_value`` is dropped. After :meth:`to_sequences` ``T = L``, ``N`` counts chunks and
        ``S = 1``.
    """

    obs: Tensor
    actions: Tensor
    log_probs: Tensor
    values: Tensor
    rewards: Tensor
    terminated: Tensor
    truncated: Tensor
    final_values: Tensor
    last_value: Tensor | None
    advantages: Tensor | None = None
    returns: Tensor | None = None
    episode_starts: Tensor | None = None
    memory: Tensor | None = None
    mask: Tensor | None = None
    next_obs: Tensor | None = None
    int_values: Tensor | None = None
    int_last_value: Tensor | None = None
    int_returns: Tensor | None = None

    def __post_init__(self) -> None:
        lead = tuple(self.actions.shape)
        for name in ("obs", "next_obs"):
            x = getattr(self, name)
            if x is not None and x.shape[: len(lead)] != lead:
                raise ValueError(f"{name} has shape {tuple(x.shape)}, expected leading dims {lead}")
        for name in (*_TIME_MAJOR, *_OPTIONAL_TIME_MAJOR):
            x = getattr(self, name)
            if x is not None and tuple(x.shape) != lead:
                raise ValueError(f"{name} has shape {tuple(x.shape)}, expected {lead}")
        for name in _BOOL:
            x = getattr(self, name)
            if x is not None and x.dtype != torch.bool:
                raise ValueError(f"{name} must be bool, got {x.dtype}")
        if self.memory is not None and (len(lead) != 2 or self.memory.shape[1] != lead[1]):
            raise ValueError(f"memory has shape {tuple(self.memory.shape)}, expected [S, N, ...] with N = {lead[1:]}")
        for name in _PER_ENV:
            x = getattr(self, name)
            if x is not None and tuple(x.shape) != lead[1:]:
                raise ValueError(f"{name} has shape {tuple(x.shape)}, expected {lead[1:]}")

    @property
    def num_transitions(self) -> int:
        """Number of transitions ``T * N`` (or ``B`` once flattened)."""
        return self.actions.numel()

    def map(self, fn: Callable[[Tensor], Tensor]) -> Rollout:
        """Apply ``fn`` to every tensor field (``None`` fields stay ``None``)."""
        changes = {f.name: fn(v) for f in dataclasses.fields(self) if (v := getattr(self, f.name)) is not None}
        return dataclasses.replace(self, **changes)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Rollout:
        """Move every tensor to ``device``."""
        return self.map(lambda x: x.to(device, non_blocking=non_blocking))

    def flatten(self) -> Rollout:
        """Merge the time and env axes: ``[T, N, ...] -> [T * N, ...]``; drops ``last_value``."""
        if self.actions.dim() != 2:
            raise ValueError(f"flatten() needs a [T, N] rollout, got actions of shape {tuple(self.actions.shape)}")
        if self.memory is not None:
            raise ValueError("a rollout with recurrent memory trains on sequences: use to_sequences()")
        return self._without_per_env().map(lambda x: x.flatten(0, 1))

    def _without_per_env(self) -> Rollout:
        return dataclasses.replace(self, **dict.fromkeys(_PER_ENV))

    def to_sequences(self, seq_len: int) -> Rollout:
        """Cut each env's ``T`` steps into ``S = ceil(T / seq_len)`` chunks of ``seq_len`` steps.

        The last chunk is padded with zeros and ``mask = False``; chunk ``s`` of env ``n`` becomes
        column ``s * N + n`` and keeps the memory recorded before it. Drops ``last_value``.

        Shapes: ``[T, N, ...] -> [seq_len, S * N, ...]``; memory ``[S, N, ...] -> [1, S * N, ...]``.
        """
        if self.memory is None or self.episode_starts is None or self.actions.dim() != 2:
            raise ValueError("to_sequences() needs a [T, N] rollout with memory and episode_starts")
        T, S = self.actions.shape[0], -(-self.actions.shape[0] // seq_len)
        if self.memory.shape[0] != S:
            raise ValueError(f"memory holds {self.memory.shape[0]} chunks, T={T} with seq_len={seq_len} needs {S}")
        mask = torch.ones_like(self.actions, dtype=torch.bool) if self.mask is None else self.mask
        padded = dataclasses.replace(self._without_per_env(), memory=None, mask=mask)

        def cut(x: Tensor) -> Tensor:
            pad = [0, 0] * (x.dim() - 1) + [0, S * seq_len - T]  # F.pad counts from the last dim
            return rearrange(F.pad(x, pad), "(s l) n ... -> l (s n) ...", s=S)

        chunks = padded.map(cut)
        return dataclasses.replace(chunks, memory=rearrange(self.memory, "s n ... -> 1 (s n) ..."))

    def select_envs(self, index: Tensor) -> Rollout:
        """Columns ``index`` of a ``[T, N]`` rollout (whole chunks of a sequence rollout). ``index``: ``[K]``."""
        if self.actions.dim() != 2:
            raise ValueError(f"select_envs() needs a [T, N] rollout, got actions of shape {tuple(self.actions.shape)}")
        per_env = {name: None if (x := getattr(self, name)) is None else x[index] for name in _PER_ENV}
        rest = self._without_per_env().map(lambda x: x[:, index])
        return dataclasses.replace(rest, **per_env)

    def __getitem__(self, index: Tensor | slice) -> Rollout:
        """Select transitions of a flattened rollout (a minibatch)."""
        if self.last_value is not None:
            raise ValueError("index a flattened rollout (call flatten() first)")
        return self.map(lambda x: x[index])
