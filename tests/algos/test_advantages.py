"""rollout_advantages: extrinsic GAE, non-episodic intrinsic GAE and their mixture, against scalar loops."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from lit_rl.algos.advantages import rollout_advantages
from lit_rl.data.rollout import Rollout

T, N = 7, 3


def reference(rewards, values, last_value, ends, bootstrap, gamma, lam):
    """Textbook GAE, env by env: ``ends[t][n]`` cuts the recursion; ``bootstrap`` gives the value after
    step ``t`` where the episode ended (``0.0`` terminated, ``V(final)`` truncated)."""
    adv = [[0.0] * N for _ in range(T)]
    for n in range(N):
        running = 0.0
        for t in reversed(range(T)):
            if ends[t][n]:
                next_value, carry = bootstrap[t][n], 0.0
            else:
                next_value, carry = (values[t + 1][n] if t + 1 < T else last_value[n]), 1.0
            running = rewards[t][n] + gamma * next_value - values[t][n] + gamma * lam * carry * running
            adv[t][n] = running
    return torch.tensor(adv, dtype=torch.float64)


@pytest.fixture
def rollout() -> Rollout:
    g = torch.Generator().manual_seed(3)
    terminated = torch.zeros(T, N, dtype=torch.bool)
    truncated = torch.zeros(T, N, dtype=torch.bool)
    terminated[2, 0] = terminated[5, 2] = True
    truncated[4, 1] = True
    return Rollout(
        obs=torch.zeros(T, N, 1),
        actions=torch.zeros(T, N, dtype=torch.int64),
        log_probs=torch.zeros(T, N),
        values=torch.randn(T, N, generator=g, dtype=torch.float64),
        rewards=torch.randn(T, N, generator=g, dtype=torch.float64),
        terminated=terminated,
        truncated=truncated,
        final_values=torch.where(truncated, 5.0, 0.0).double(),
        last_value=torch.randn(N, generator=g, dtype=torch.float64),
        int_values=torch.randn(T, N, generator=g, dtype=torch.float64),
        int_last_value=torch.randn(N, generator=g, dtype=torch.float64),
    )


def extrinsic_reference(r: Rollout, gamma: float, lam: float) -> torch.Tensor:
    ends = (r.terminated | r.truncated).tolist()
    bootstrap = [[5.0 if r.truncated[t, n] else 0.0 for n in range(N)] for t in range(T)]
    return reference(r.rewards.tolist(), r.values.tolist(), r.last_value.tolist(), ends, bootstrap, gamma, lam)


def test_without_intrinsic_rewards_the_advantages_are_the_extrinsic_gae(rollout: Rollout) -> None:
    out = rollout_advantages(rollout, gamma=0.9, gae_lambda=0.8, ext_coef=2.0)  # no mixture: no coefficient
    expected = extrinsic_reference(rollout, 0.9, 0.8)
    assert_close(out.advantages, expected)
    assert_close(out.returns, expected + rollout.values)
    assert out.int_advantages is None and out.int_returns is None


def test_intrinsic_advantages_ignore_episode_ends_and_mix_with_the_coefficients(rollout: Rollout) -> None:
    int_rewards = torch.linspace(0.0, 1.0, T * N, dtype=torch.float64).view(T, N)
    out = rollout_advantages(
        rollout, gamma=0.9, gae_lambda=0.8, int_rewards=int_rewards, int_gamma=0.5, ext_coef=2.0, int_coef=0.25
    )
    never = [[False] * N for _ in range(T)]
    int_expected = reference(
        int_rewards.tolist(), rollout.int_values.tolist(), rollout.int_last_value.tolist(), never, None, 0.5, 0.8
    )
    ext_expected = extrinsic_reference(rollout, 0.9, 0.8)
    assert_close(out.int_advantages, int_expected)
    assert_close(out.int_returns, int_expected + rollout.int_values)
    assert_close(out.returns, ext_expected + rollout.values)  # the value targets are not mixed
    assert_close(out.advantages, 2.0 * ext_expected + 0.25 * int_expected)
