"""GAE against an independent reference loop, in float64, with terminations and truncations."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from lit_rl.algos.gae import compute_gae


def reference_gae(rewards, values, last_value, terminated, truncated, final_values, gamma, lam):
    """Scalar loops over the textbook definition, env by env (no vectorisation shared with the code)."""
    T, N = len(rewards), len(rewards[0])
    adv = [[0.0] * N for _ in range(T)]
    for n in range(N):
        next_adv = 0.0
        for t in reversed(range(T)):
            if terminated[t][n]:
                next_value, carry = 0.0, 0.0
            elif truncated[t][n]:
                next_value, carry = final_values[t][n], 0.0
            else:
                next_value = values[t + 1][n] if t + 1 < T else last_value[n]
                carry = 1.0
            delta = rewards[t][n] + gamma * next_value - values[t][n]
            next_adv = delta + gamma * lam * carry * next_adv
            adv[t][n] = next_adv
    return adv


def random_rollout(T: int, N: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(T, N, generator=g, dtype=torch.float64)
    values = torch.randn(T, N, generator=g, dtype=torch.float64)
    last_value = torch.randn(N, generator=g, dtype=torch.float64)
    terminated = torch.rand(T, N, generator=g) < 0.15
    truncated = (torch.rand(T, N, generator=g) < 0.15) & ~terminated
    final_values = torch.where(truncated, torch.randn(T, N, generator=g, dtype=torch.float64), 0.0)
    return rewards, values, last_value, terminated, truncated, final_values


@pytest.mark.parametrize(("gamma", "lam"), [(0.99, 0.95), (0.9, 1.0), (1.0, 0.0), (0.5, 0.5)])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_reference_loop(gamma: float, lam: float, seed: int) -> None:
    r, v, lv, te, tr, fv = random_rollout(T=17, N=5, seed=seed)
    assert te.any() and tr.any()
    adv, ret = compute_gae(r, v, lv, te, tr, fv, gamma=gamma, gae_lambda=lam)
    expected = torch.tensor(
        reference_gae(r.tolist(), v.tolist(), lv.tolist(), te.tolist(), tr.tolist(), fv.tolist(), gamma, lam),
        dtype=torch.float64,
    )
    assert adv.dtype == torch.float64
    assert_close(adv, expected)
    assert_close(ret, expected + v)


def test_split_at_terminal_equals_concatenation() -> None:
    """An episode end cuts the recursion: GAE of the two halves equals GAE of the whole."""
    r, v, lv, te, tr, fv = random_rollout(T=12, N=3, seed=3)
    te[5] = True
    tr[5] = False
    adv, _ = compute_gae(r, v, lv, te, tr, fv, gamma=0.97, gae_lambda=0.9)
    first, _ = compute_gae(r[:6], v[:6], v[6], te[:6], tr[:6], fv[:6], gamma=0.97, gae_lambda=0.9)
    second, _ = compute_gae(r[6:], v[6:], lv, te[6:], tr[6:], fv[6:], gamma=0.97, gae_lambda=0.9)
    assert_close(adv, torch.cat([first, second]))


def test_constant_value_terminal_reward_closed_form() -> None:
    """Zero values, reward 1 only at the terminal step T-1: A_t = (γλ)^(T-1-t), returns = λ-returns."""
    T, gamma, lam = 10, 0.9, 0.8
    rewards = torch.zeros(T, 1, dtype=torch.float64)
    rewards[-1] = 1.0
    zeros = torch.zeros(T, 1, dtype=torch.float64)
    terminated = torch.zeros(T, 1, dtype=torch.bool)
    terminated[-1] = True
    adv, ret = compute_gae(
        rewards,
        zeros,
        torch.full((1,), 5.0, dtype=torch.float64),
        terminated,
        torch.zeros_like(terminated),
        zeros,
        gamma=gamma,
        gae_lambda=lam,
    )
    expected = torch.tensor([(gamma * lam) ** (T - 1 - t) for t in range(T)], dtype=torch.float64)
    assert_close(adv[:, 0], expected)
    assert_close(ret[:, 0], expected)


def test_truncation_bootstraps_from_final_value_not_next_row() -> None:
    """At a truncated step the next row belongs to a new episode; only final_values may be used."""
    rewards = torch.tensor([[1.0], [0.0]], dtype=torch.float64)
    values = torch.tensor([[0.0], [100.0]], dtype=torch.float64)
    truncated = torch.tensor([[True], [False]])
    terminated = torch.zeros_like(truncated)
    final_values = torch.tensor([[3.0], [0.0]], dtype=torch.float64)
    adv, _ = compute_gae(
        rewards,
        values,
        torch.zeros(1, dtype=torch.float64),
        terminated,
        truncated,
        final_values,
        gamma=0.5,
        gae_lambda=1.0,
    )
    assert adv[0, 0].item() == pytest.approx(1.0 + 0.5 * 3.0)


def test_rejects_mismatched_shapes() -> None:
    r, v, lv, te, tr, fv = random_rollout(T=4, N=2, seed=0)
    with pytest.raises(ValueError, match="last_value"):
        compute_gae(r, v, lv[:1], te, tr, fv, gamma=0.9, gae_lambda=0.9)
    with pytest.raises(ValueError, match="values"):
        compute_gae(r, v[:, :1], lv, te, tr, fv, gamma=0.9, gae_lambda=0.9)
