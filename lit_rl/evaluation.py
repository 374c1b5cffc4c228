"""Run full evaluation episodes with a policy: one episode per env, so short episodes are not favoured."""

from __future__ import annotations

import numpy as np
import torch
from gymnasium.vector import VectorEnv

from lit_rl.envs.episode_stats import finished_episodes
from lit_rl.models.actor_critic import ActorCritic


@torch.inference_mode()
def run_episodes(
    policy: ActorCritic, env: VectorEnv, *, seed: int, greedy: bool = False, max_steps: int = 1_000_000
) -> tuple[np.ndarray, np.ndarray]:
    """The first episode of every env of ``env``, with raw returns.

    Args:
        policy: Acting policy (put in eval mode here and restored after).
        env: A vector env from :func:`lit_rl.envs.factory.make_vector_env` (``evaluation=True``).
        seed: Reset seed (env ``i`` gets ``seed + i``).
        greedy: Take the most likely action instead of sampling.
        max_steps: Safety cap on vector steps.

    Returns:
        ``(returns, lengths)``, each ``[num_envs]``, in env order.
    """
    device = next(policy.parameters()).device
    n = env.num_envs
    returns = np.full(n, np.nan)
    lengths = np.zeros(n, dtype=np.int64)
    was_training = policy.training
    policy.eval()
    obs, _ = env.reset(seed=seed)
    for _ in range(max_steps):
        action = policy.act(torch.as_tensor(np.asarray(obs), device=device), greedy=greedy).action
        obs, _, _, _, info = env.step(action.cpu().numpy())
        idx, ep_returns, ep_lengths = finished_episodes(info)
        first = np.isnan(returns[idx])
        returns[idx[first]] = ep_returns[first]
        lengths[idx[first]] = ep_lengths[first]
        if not np.isnan(returns).any():
            break
    policy.train(was_training)
    if np.isnan(returns).any():
        raise RuntimeError(f"evaluation episodes did not end within {max_steps} steps")
    return returns, lengths
