"""One on-policy rollout as a frozen dataclass of time-major tensors."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

_TIME_MAJOR = ("actions", "log_probs", "values", "rewards", "terminated", "truncated", "final_values")


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

    Shapes:
        obs: ``[T, N, *obs_shape]``; last_value: ``[N]``; every other field ``[T, N]``.
        After :meth:`flatten` the leading ``T, N`` become one ``B = T * N`` axis and
        ``last_value`` is dropped.
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

    def __post_init__(self) -> None:
        lead = tuple(self.actions.shape)
        if self.obs.shape[: len(lead)] != lead:
            raise ValueError(f"obs has shape {tuple(self.obs.shape)}, expected leading dims {lead}")
        for name in (*_TIME_MAJOR, "advantages", "returns"):
            x = getattr(self, name)
            if x is not None and tuple(x.shape) != lead:
                raise ValueError(f"{name} has shape {tuple(x.shape)}, expected {lead}")
        for name in ("terminated", "truncated"):
            if getattr(self, name).dtype != torch.bool:
                raise ValueError(f"{name} must be bool, got {getattr(self, name).dtype}")
        if self.last_value is not None and tuple(self.last_value.shape) != lead[1:]:
            raise ValueError(f"last_value has shape {tuple(self.last_value.shape)}, expected {lead[1:]}")

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
        flat = dataclasses.replace(self, last_value=None)
        return flat.map(lambda x: x.flatten(0, 1))

    def __getitem__(self, index: Tensor | slice) -> Rollout:
        """Select transitions of a flattened rollout (a minibatch)."""
        if self.last_value is not None:
            raise ValueError("index a flattened rollout (call flatten() first)")
        return self.map(lambda x: x[index])
