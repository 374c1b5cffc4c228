"""Finished episodes: those of training rollouts, and full evaluation episodes run with a policy.

Evaluation runs one episode per env, so short episodes are not favoured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from gymnasium.vector import VectorEnv

from lit_rl.envs.episode_info import finished_episodes

if TYPE_CHECKING:  # data/protocol.py imports this module; the type is only for annotations here
    from lit_rl.data.protocol import Policy


@dataclass(frozen=True)
class RolloutEpisodes:
    """Raw returns and lengths of the training episodes that ended during one rollout. Shapes: ``[E]``.

    Montezuma's Revenge adds ``rooms`` (distinct rooms of each finished game, ``[E]``) and
    ``rooms_seen`` (the room ids any env was in during the rollout); both are empty elsewhere.
    """

    returns: np.ndarray
    lengths: np.ndarray
    rooms: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    rooms_seen: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


@dataclass(frozen=True)
class EvaluationEpisodes:
    """Raw full-game returns and lengths (agent steps) of evaluation episodes, in env order. Shapes: ``[K]``."""

    returns: np.ndarray
    lengths: np.ndarray

    def summary(self) -> str:
        """``"return 20.40 ± 1.36 (mean ± std over 5 episodes)"``."""
        return (
            f"return {self.returns.mean():.2f} ± {self.returns.std():.2f} "
            f"(mean ± std over {len(self.returns)} episodes)"
        )


@torch.inference_mode()
def run_episodes(
    policy: Policy, env: VectorEnv, *, seed: int, greedy: bool = False, max_steps: int = 1_000_000
) -> EvaluationEpisodes:
    """The first episode of every env of ``env``, with raw returns.

    Args:
        policy: Acting policy (put in eval mode here and restored after).
        env: A vector env from :func:`lit_rl.envs.factory.make_vector_env` (``evaluation=True``).
        seed: Reset seed (env ``i`` gets ``seed + i``).
        greedy: Take the most likely action instead of sampling.
        max_steps: Safety cap on vector steps.

    Returns:
        The :class:`EvaluationEpisodes` of the ``num_envs`` episodes, in env order.
    """
    device = next(policy.parameters()).device
    n = env.num_envs
    returns = np.full(n, np.nan)
    lengths = np.zeros(n, dtype=np.int64)
    was_training = policy.training
    policy.eval()
    obs, _ = env.reset(seed=seed)
    memory = policy.initial_memory(n)  # a recurrent policy's memory; None otherwise
    episode_start = torch.ones(n, dtype=torch.bool, device=device)
    for _ in range(max_steps):
        out = policy.act(
            torch.as_tensor(np.asarray(obs), device=device), greedy=greedy, memory=memory, episode_start=episode_start
        )
        memory = out.memory
        obs, _, terminated, truncated, info = env.step(out.actions.cpu().numpy())
        episode_start = torch.as_tensor(terminated | truncated, device=device)
        idx, ep_returns, ep_lengths = finished_episodes(info)
        first = np.isnan(returns[idx])
        returns[idx[first]] = ep_returns[first]
        lengths[idx[first]] = ep_lengths[first]
        if not np.isnan(returns).any():
            break
    policy.train(was_training)
    if np.isnan(returns).any():
        raise RuntimeError(f"evaluation episodes did not end within {max_steps} steps")
    return EvaluationEpisodes(returns, lengths)
