"""Advantages and value targets of a rollout, as one pure function.

Extrinsic GAE (Schulman et al., 2016; :func:`lit_rl.algos.gae.compute_gae`), episodic; with
intrinsic rewards (RND, Burda et al., 2019) a second, non-episodic GAE and the mixture
``A = ext_coef · A_ext + int_coef · A_int`` (cleanrl ``ppo_rnd_envpool.py``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from lit_rl.algos.gae import compute_gae
from lit_rl.data.rollout import Rollout


class Advantages(NamedTuple):
    """What the update trains on. Shapes: ``[T, N]``.

    Args:
        advantages: The advantages the policy loss uses (mixed when intrinsic rewards are given).
        returns: Extrinsic value targets.
        int_advantages: Intrinsic advantages (``None`` without intrinsic rewards).
        int_returns: Intrinsic value targets (``None`` without intrinsic rewards).
    """

    advantages: Tensor
    returns: Tensor
    int_advantages: Tensor | None = None
    int_returns: Tensor | None = None


@torch.no_grad()
def rollout_advantages(
    rollout: Rollout,
    *,
    gamma: float,
    gae_lambda: float,
    int_rewards: Tensor | None = None,
    int_gamma: float = 0.99,
    ext_coef: float = 1.0,
    int_coef: float = 1.0,
) -> Advantages:
    """Advantages and returns of a collected rollout (its rewards, values, episode ends).

    Without ``int_rewards`` the advantages are the extrinsic GAE itself (no coefficient). With them
    (``[T, N]``, already normalised), ``rollout.int_values`` / ``int_last_value`` bootstrap an intrinsic
    GAE with discount ``int_gamma`` that episode ends never cut (novelty flows across them), and the
    advantages are ``ext_coef · A_ext + int_coef · A_int``.
    """
    advantages, returns = compute_gae(
        rollout.rewards,
        rollout.values,
        rollout.last_value,
        rollout.terminated,
        rollout.truncated,
        rollout.final_values,
        gamma=gamma,
        gae_lambda=gae_lambda,
    )
    if int_rewards is None:
        return Advantages(advantages, returns)
    never = torch.zeros_like(rollout.rewards, dtype=torch.bool)
    int_advantages, int_returns = compute_gae(
        int_rewards,
        rollout.int_values,
        rollout.int_last_value,
        never,  # non-episodic: novelty flows across episode ends
        never,
        torch.zeros_like(int_rewards),
        gamma=int_gamma,
        gae_lambda=gae_lambda,
    )
    mixed = ext_coef * advantages + int_coef * int_advantages
    return Advantages(mixed, returns, int_advantages, int_returns)


def explained_variance(values: Tensor, returns: Tensor) -> Tensor:
    """``1 - Var[returns - values] / Var[returns]`` (NaN when the returns do not vary)."""
    var = returns.var()
    return torch.where(var > 0, 1.0 - (returns - values).var() / var, torch.full_like(var, float("nan")))
