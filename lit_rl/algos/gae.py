"""Generalized Advantage Estimation (Schulman et al., 2016) as a pure function.

Reference: the backward loop of cleanrl's ``ppo_atari.py``, extended with the terminated/truncated
split of gymnasium >= 0.26 and the truncation bootstrap of Stable-Baselines3
(``common/on_policy_algorithm.py``).
"""

from __future__ import annotations

import torch
from torch import Tensor


@torch.no_grad()
def compute_gae(
    rewards: Tensor,
    values: Tensor,
    last_value: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    final_values: Tensor,
    *,
    gamma: float,
    gae_lambda: float,
) -> tuple[Tensor, Tensor]:
    """Advantages and λ-returns of a time-major rollout.

    Convention: step ``t`` of env ``n`` moved from state ``s_t`` to ``s_{t+1}``. The value of the
    next state is

    * ``0`` if the episode *terminated* at ``t`` (a true end: no future reward),
    * ``final_values[t]`` (the value of the final observation) if it was *truncated* at ``t``
      (a time limit: the future exists but is not observed, so it is bootstrapped),
    * ``values[t + 1]``, or ``last_value`` at ``t = T - 1``, otherwise.

    The advantage recursion ``A_t = δ_t + γλ A_{t+1}`` is cut at every episode end
    (``terminated | truncated``) because ``A_{t+1}`` then belongs to the next episode.
    A step that is both terminated and truncated counts as terminated.

    Args:
        rewards: Rewards ``r_t``.
        values: Value estimates ``V(s_t)`` made during collection.
        last_value: ``V(s_T)`` of the observation after the last step.
        terminated: True where the episode terminated at step ``t``.
        truncated: True where the episode was truncated at step ``t``.
        final_values: ``V(final observation)`` where truncated; ignored elsewhere.
        gamma: Discount factor.
        gae_lambda: GAE λ.

    Returns:
        ``(advantages, returns)`` with ``returns = advantages + values``.

    Shapes:
        rewards, values, terminated, truncated, final_values, advantages, returns: ``[T, N]``;
        last_value: ``[N]``.
    """
    T, N = rewards.shape
    for name, x in (
        ("values", values),
        ("terminated", terminated),
        ("truncated", truncated),
        ("final_values", final_values),
    ):
        if x.shape != (T, N):
            raise ValueError(f"{name} has shape {tuple(x.shape)}, expected {(T, N)}")
    if last_value.shape != (N,):
        raise ValueError(f"last_value has shape {tuple(last_value.shape)}, expected {(N,)}")

    terminated = terminated.to(values.dtype)
    ended = (terminated.bool() | truncated.bool()).to(values.dtype)
    next_values = torch.cat([values[1:], last_value.unsqueeze(0)], dim=0)
    # Where the episode ended, the next row of `values` belongs to a new episode.
    next_values = torch.where(truncated.bool(), final_values, next_values)
    deltas = rewards + gamma * (1.0 - terminated) * next_values - values
    discount = gamma * gae_lambda * (1.0 - ended)

    advantages = torch.empty_like(values)
    running = torch.zeros_like(last_value)
    for t in range(T - 1, -1, -1):
        running = deltas[t] + discount[t] * running
        advantages[t] = running
    return advantages, advantages + values
