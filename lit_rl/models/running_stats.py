"""Running statistics kept as module buffers, and the discounted-return filter of RND.

References: the parallel-variance merge of Chan et al. (1979) as in OpenAI baselines'
``RunningMeanStd.update_from_moments`` (used by jcwleo's and cleanrl's RND); the ``RewardForwardFilter``
of Burda et al. (2019). Here the statistics are buffers, so checkpoints carry them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

#: Sums a tensor over processes (``trainer.strategy.reduce(x, reduce_op="sum")``); identity in one process.
ReduceSum = Callable[[Tensor], Tensor]


def batch_moments(x: Tensor, reduce_sum: ReduceSum | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Mean, population variance and count of ``x`` over its first axis, in float64.

    With ``reduce_sum`` the moments are those of the samples of every process.

    Shapes: ``x``: ``[M, *shape]``; returns ``[*shape]``, ``[*shape]`` and a scalar.
    """
    x = x.double()
    count = torch.tensor(float(x.shape[0]), dtype=torch.float64, device=x.device)
    sums = torch.stack([x.sum(0), (x * x).sum(0)])
    if reduce_sum is not None:
        count, sums = reduce_sum(count), reduce_sum(sums)
    mean = sums[0] / count
    # E[x²] - E[x]² in float64 is exact enough for pixels and rewards; clamp rounding below zero.
    var = (sums[1] / count - mean * mean).clamp_min(0.0)
    return mean, var, count


def merge_moments(
    mean: Tensor, var: Tensor, count: Tensor, batch_mean: Tensor, batch_var: Tensor, batch_count: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Mean, variance and count of the union of two sample sets given their moments (Chan et al.)."""
    total = count + batch_count
    delta = batch_mean - mean
    new_mean = mean + delta * batch_count / total
    m2 = var * count + batch_var * batch_count + delta * delta * count * batch_count / total
    return new_mean, m2 / total, total


class RunningMeanStd(nn.Module):
    """Per-element running mean and variance of a stream of batches (buffers, float64).

    Starts from mean 0, variance 1 and a pseudo-count ``epsilon`` (baselines' convention), so the
    first batch dominates at once and a never-updated normaliser is the identity.

    Args:
        shape: Shape of one sample.
        epsilon: Initial pseudo-count.
    """

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(epsilon, dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: Tensor, reduce_sum: ReduceSum | None = None) -> None:
        """Add the samples ``x`` ``[M, *shape]`` (of every process, with ``reduce_sum``)."""
        batch_mean, batch_var, batch_count = batch_moments(x, reduce_sum)
        mean, var, count = merge_moments(self.mean, self.var, self.count, batch_mean, batch_var, batch_count)
        self.mean.copy_(mean)
        self.var.copy_(var)
        self.count.copy_(count)

    def std(self, eps: float = 0.0) -> Tensor:
        """``sqrt(var + eps)`` in float32."""
        return (self.var + eps).sqrt().float()


@torch.no_grad()
def discounted_returns(rewards: Tensor, carry: Tensor, gamma: float) -> tuple[Tensor, Tensor]:
    """The forward-discounted sum ``R_t = γ R_{t-1} + r_t`` per env, never reset at episode ends.

    Args:
        rewards: ``[T, N]`` rewards in time order.
        carry: ``[N]`` the value of ``R`` before step 0 (the last value of the previous rollout).
        gamma: Discount factor.

    Returns:
        ``(returns [T, N], carry [N])``: ``R_t`` for every step and ``R_{T-1}`` to carry on.
    """
    returns = torch.empty_like(rewards)
    running = carry
    for t in range(rewards.shape[0]):
        running = gamma * running + rewards[t]
        returns[t] = running
    return returns, running


class ObservationNormalizer(nn.Module):
    """``clip((x - μ) / sqrt(σ² + eps), -clip, clip)``, with ``μ, σ²`` running moments of training observations.

    The observation filter of SB3's ``VecNormalize`` (``clip_obs = 10``, ``epsilon = 1e-8``) and RLlib's
    ``MeanStdFilter``, as a module of the policy: evaluation, ``lit-rl validate`` and every tool that
    runs the policy see exactly what training saw, and checkpoints carry the statistics. Unlike those
    filters the statistics are not updated at every step but once per rollout, after the update, with
    the rollout's observations (:meth:`update`): the observations an update learns from are normalised
    as they were when the policy acted on them, so PPO's ratio starts at exactly 1. Before the first
    update (mean 0, variance 1) it is the identity up to the clip.

    Args:
        shape: Shape of one observation.
        clip: Bound of the normalised values.
        eps: Added to the variance.
    """

    def __init__(self, shape: tuple[int, ...], clip: float = 10.0, eps: float = 1e-8) -> None:
        super().__init__()
        self.stats = RunningMeanStd(tuple(shape))
        self.clip, self.eps = float(clip), float(eps)

    def forward(self, x: Tensor) -> Tensor:
        """Normalise float observations ``[..., *shape]``."""
        mean = self.stats.mean.to(x.dtype)
        inv_std = (self.stats.var + self.eps).rsqrt().to(x.dtype)
        return ((x - mean) * inv_std).clamp(-self.clip, self.clip)

    @torch.no_grad()
    def update(self, x: Tensor, reduce_sum: ReduceSum | None = None) -> None:
        """Add the observations ``x`` ``[M, *shape]`` (of every process, with ``reduce_sum``)."""
        self.stats.update(x, reduce_sum)
