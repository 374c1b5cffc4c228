"""Running mean/std and the discounted-return filter against references written out here."""

from __future__ import annotations

import numpy as np
import torch
from torch.testing import assert_close

from lit_rl.models.running_stats import RunningMeanStd, batch_moments, discounted_returns


def test_streamed_statistics_equal_those_of_all_samples_with_the_pseudo_count() -> None:
    """After k batches: the moments of all samples plus one pseudo-sample of mean 0, var 1, weight ε."""
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 2, 3)) for n in (5, 17, 1, 40)]
    rms = RunningMeanStd((2, 3), epsilon=1e-2)
    for b in batches:
        rms.update(torch.from_numpy(b))
    data = np.concatenate(batches)
    eps, n = 1e-2, len(data)
    mean = data.sum(0) / (n + eps)  # the pseudo-sample contributes eps * 0
    m2 = ((data - mean) ** 2).sum(0) + eps * (1.0 + mean**2)  # its variance 1 and its offset from the mean
    assert_close(rms.mean, torch.from_numpy(mean))
    assert_close(rms.var, torch.from_numpy(m2 / (n + eps)))
    assert rms.count.item() == n + eps


def test_batch_moments_use_the_reduction_for_every_process() -> None:
    x = torch.arange(12.0).view(6, 2)
    doubled = batch_moments(x, reduce_sum=lambda t: 2 * t)  # two identical processes
    mean, var, count = batch_moments(torch.cat([x, x]))
    assert_close(doubled[0], mean)
    assert_close(doubled[1], var)
    assert doubled[2].item() == count.item() == 12


def test_discounted_returns_never_reset_and_carry_across_rollouts() -> None:
    rewards = torch.tensor([[1.0, 0.0], [2.0, 1.0], [0.0, 3.0]])
    carry = torch.tensor([10.0, -1.0])
    returns, out = discounted_returns(rewards, carry, gamma=0.5)
    expected = [[0.5 * 10 + 1, 0.5 * -1 + 0], [0.5 * 6 + 2, 0.5 * -0.5 + 1], [0.5 * 5 + 0, 0.5 * 0.75 + 3]]
    assert_close(returns, torch.tensor(expected))
    assert_close(out, returns[-1])
