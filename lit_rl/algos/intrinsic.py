"""How PPO drives an intrinsic-reward module (RND; Burda et al., 2019, cleanrl ``ppo_rnd_envpool.py``).

Per rollout: the intrinsic rewards and the statistics updates (:func:`intrinsic_rewards`); per
minibatch: the predictor's loss (:func:`predictor_loss`); before training: the observation warm-up
(:func:`warm_up`); on loading a checkpoint: :func:`restart_int_return` where the env count changed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lit_rl.data.rollout import Rollout
from lit_rl.models.intrinsic.rnd import RND
from lit_rl.models.running_stats import ReduceSum

#: The key of RND's per-env intrinsic return in the PPO module's state dict. Each rank's is its own:
#: DDP must not overwrite it with rank 0's.
INT_RETURN_KEY = "intrinsic.int_return"


@torch.no_grad()
def intrinsic_rewards(
    rnd: RND, rollout: Rollout, reduce_sum: ReduceSum | None = None
) -> tuple[Tensor, dict[str, float]]:
    """Normalised intrinsic rewards ``[T, N]`` of a rollout's ``next_obs``, and their diagnostics.

    Rewards come from ``rnd``'s observation statistics before this rollout; the statistics (reward
    and observation) are updated with its data afterwards (cleanrl's order), of every rank with
    ``reduce_sum``.
    """
    raw = rnd.rewards(rollout.next_obs.flatten(0, 1)).view_as(rollout.rewards)
    rewards = rnd.normalize_rewards(raw, reduce_sum)
    rnd.update_obs_stats(rollout.next_obs, reduce_sum)
    metrics = {
        "rnd/intrinsic_reward": float(rewards.mean()),
        "rnd/intrinsic_reward_raw": float(raw.mean()),
        "rnd/int_return_std": float(rnd.return_rms.std()),
    }
    return rewards, metrics


def predictor_loss(rnd: RND, batch: Rollout) -> Tensor:
    """The predictor's loss on a minibatch's ``next_obs``: a flat minibatch ``[B, ...]``, or the real
    steps of a sequence minibatch ``[L, K, ...]``."""
    next_obs = batch.next_obs if batch.mask is None else batch.next_obs[batch.mask]
    return rnd.loss(next_obs.flatten(0, next_obs.dim() - len(rnd.input_shape) - 1))


@torch.no_grad()
def warm_up(rnd: RND, next_obs: Tensor, reduce_sum: ReduceSum | None = None) -> None:
    """Add one random-policy rollout's RND inputs ``[T, N, ...]`` (of every rank) to the observation
    statistics. Not counted as env steps (cleanrl does not count them either)."""
    rnd.update_obs_stats(next_obs, reduce_sum)
    rnd.warmup_done += 1


def restart_int_return(state: dict[str, Tensor], rnd: RND | None) -> None:
    """The per-env intrinsic return of another ``data.num_envs`` cannot be mapped to these envs: restart it."""
    saved = state.get(INT_RETURN_KEY)
    if rnd is not None and saved is not None and saved.shape != rnd.int_return.shape:
        state[INT_RETURN_KEY] = torch.zeros_like(rnd.int_return)
