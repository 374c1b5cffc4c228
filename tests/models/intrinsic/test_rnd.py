"""RND: frozen target, learning predictor, observation and reward normalisation, intrinsic GAE."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from lit_rl.algos.advantages import rollout_advantages
from lit_rl.algos.intrinsic import intrinsic_rewards
from lit_rl.data.rollout import Rollout
from lit_rl.errors import ConfigError
from lit_rl.models.intrinsic.rnd import RND, rnd_loss, rnd_rewards


def intrinsic_advantages(rnd: RND, rollout: Rollout, *, gae_lambda: float):
    """The intrinsic half of the advantages PPO computes: RND's rewards (updating its statistics), then
    the non-episodic GAE of :func:`rollout_advantages`."""
    rewards, metrics = intrinsic_rewards(rnd, rollout)
    out = rollout_advantages(rollout, gamma=0.99, gae_lambda=gae_lambda, int_rewards=rewards, int_gamma=rnd.gamma)
    return out.int_advantages, out.int_returns, metrics


def test_networks_follow_the_spec_on_frames() -> None:
    rnd = RND((4, 84, 84), 2)
    assert rnd.input_shape == (1, 84, 84)
    obs = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    assert torch.equal(rnd.select_input(obs), obs[:, 3:4])  # the newest frame
    predicted, target = rnd(rnd.select_input(obs))
    assert predicted.shape == target.shape == (3, 512)
    linear = [m for m in rnd.target if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(3136, 512)]
    linear = [m for m in rnd.predictor if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(3136, 512), (512, 512), (512, 512)]
    assert not any(p.requires_grad for p in rnd.target.parameters())


def test_rewards_and_loss_against_their_definitions() -> None:
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    expected = [0.5 * sum((pred[i, j].item() - target[i, j].item()) ** 2 for j in range(3)) for i in range(4)]
    assert_close(rnd_rewards(pred, target), torch.tensor(expected))
    mse = [sum((pred[i, j].item() - target[i, j].item()) ** 2 for j in range(3)) / 3 for i in range(4)]
    assert_close(rnd_loss(pred, target), torch.tensor(sum(mse) / 4))


def test_target_never_changes_while_the_predictor_loss_falls() -> None:
    torch.manual_seed(0)
    rnd = RND((4, 84, 84), 2, update_proportion=1.0)
    batch = torch.randint(0, 256, (64, 1, 84, 84), dtype=torch.uint8)
    rnd.update_obs_stats(batch)
    target_before = copy.deepcopy(rnd.target.state_dict())
    optimizer = torch.optim.Adam(rnd.predictor.parameters(), lr=1e-3)
    losses = []
    for _ in range(40):
        loss = rnd.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
    for name, value in rnd.target.state_dict().items():
        assert torch.equal(value, target_before[name]), name
    assert rnd.rewards(batch).mean() < rnd_rewards(*RND((4, 84, 84), 2)(batch)).mean()  # trained: less novel


def test_update_proportion_selects_that_fraction() -> None:
    """The predictor trains on ``update_proportion`` of a minibatch (the original always used 0.25)."""
    rnd = RND((6,), 2, update_proportion=0.6, feature_dim=8)
    seen = []
    rnd.predictor.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[0]))
    rnd.loss(torch.randn(4000, 6))
    assert 0.57 * 4000 < seen[0] < 0.63 * 4000
    rnd_all = RND((6,), 2, update_proportion=1.0, feature_dim=8)
    x = torch.randn(64, 6)
    assert_close(rnd_all.loss(x), rnd_loss(*rnd_all(x)))


def test_observation_normalisation_against_numpy() -> None:
    rnd = RND((4, 36, 36), 2, obs_clip=1.5)
    rng = np.random.default_rng(1)
    blocks = [rng.integers(0, 256, size=(8, 3, 1, 36, 36)).astype(np.uint8) for _ in range(3)]
    for block in blocks:  # rollout-shaped [T, N, 1, H, W] blocks, as the warm-up feeds them
        rnd.update_obs_stats(torch.from_numpy(block))
    frames = np.concatenate([b.reshape(-1, 1, 36, 36) for b in blocks]).astype(np.float64)
    mean, std = frames.mean(0), frames.std(0)  # the 1e-4 pseudo-count is below the tolerance
    x = torch.from_numpy(frames[:5]).to(torch.uint8)
    expected = np.clip((frames[:5] - mean) / std, -1.5, 1.5)
    assert_close(rnd.normalize(x), torch.from_numpy(expected).float(), atol=1e-4, rtol=1e-4)
    assert rnd.normalize(x).abs().max() == 1.5  # clipping is reached on uniform pixels


def test_reward_normalisation_against_a_reference() -> None:
    """r / std of all discounted returns so far, each env's return carried across rollouts."""
    gamma = 0.9
    rnd = RND((3,), 2, gamma=gamma)
    g = torch.Generator().manual_seed(0)
    rollouts = [torch.rand(5, 2, generator=g) for _ in range(3)]
    carry, seen = [0.0, 0.0], []
    for rewards in rollouts:
        out = rnd.normalize_rewards(rewards)
        for t in range(5):
            for n in range(2):
                carry[n] = gamma * carry[n] + rewards[t, n].item()
                seen.append(carry[n])
        eps, data = 1e-4, np.array(seen)
        mean = data.sum() / (len(data) + eps)
        var = (((data - mean) ** 2).sum() + eps * (1.0 + mean**2)) / (len(data) + eps)
        assert_close(out, rewards / float(np.sqrt(var)), rtol=1e-5, atol=1e-6)
    assert_close(rnd.int_return, torch.tensor(carry, dtype=torch.float32))


def reference_gae(rewards, values, last_value, ends, gamma, lam):
    """Textbook GAE, env by env; ``ends`` cuts both the bootstrap and the recursion."""
    T, N = rewards.shape
    adv = torch.zeros(T, N, dtype=torch.float64)
    for n in range(N):
        running = 0.0
        for t in reversed(range(T)):
            nxt = last_value[n] if t == T - 1 else values[t + 1, n]
            keep = 0.0 if ends[t, n] else 1.0
            delta = rewards[t, n] + gamma * keep * nxt - values[t, n]
            running = delta + gamma * lam * keep * running
            adv[t, n] = running
    return adv


def test_intrinsic_gae_ignores_episode_ends() -> None:
    """Non-episodic intrinsic advantages: the rollout's terminations change nothing; the reference
    recomputes rewards, normalisation and an uncut GAE from the module's state before the call."""
    torch.manual_seed(0)
    T, N = 6, 2
    terminated = torch.zeros(T, N, dtype=torch.bool)
    terminated[2, 0] = terminated[4, 1] = True
    rollout = Rollout(
        obs=torch.randn(T, N, 3),
        actions=torch.zeros(T, N, dtype=torch.int64),
        log_probs=torch.zeros(T, N),
        values=torch.zeros(T, N),
        rewards=torch.zeros(T, N),
        terminated=terminated,
        truncated=torch.zeros(T, N, dtype=torch.bool),
        final_values=torch.zeros(T, N),
        last_value=torch.zeros(N),
        next_obs=torch.randn(T, N, 3),
        int_values=torch.randn(T, N),
        int_last_value=torch.randn(N),
    )
    rnd = RND((3,), 2, gamma=0.9, feature_dim=16)
    rnd.update_obs_stats(torch.randn(50, 3) * 2 + 1)
    twin, ref = copy.deepcopy(rnd), copy.deepcopy(rnd)  # state before the call
    advantages, returns, _ = intrinsic_advantages(rnd, rollout, gae_lambda=0.8)
    no_ends = dataclasses.replace(rollout, terminated=torch.zeros_like(terminated))
    assert_close(intrinsic_advantages(twin, no_ends, gae_lambda=0.8)[0], advantages)

    x = ref.normalize(rollout.next_obs.flatten(0, 1))
    raw = 0.5 * (ref.predictor(x) - ref.target(x)).pow(2).sum(-1).view(T, N).detach().double()
    carried = torch.zeros(N, dtype=torch.float64)
    rets = []
    for t in range(T):
        carried = 0.9 * carried + raw[t]
        rets.append(carried.clone())
    data = torch.stack(rets).flatten()
    eps = 1e-4
    mean = data.sum() / (len(data) + eps)
    var = (((data - mean) ** 2).sum() + eps * (1 + mean**2)) / (len(data) + eps)
    args = (raw / var.sqrt(), rollout.int_values.double(), rollout.int_last_value.double())
    expected = reference_gae(*args, torch.zeros(T, N), 0.9, 0.8)
    assert_close(advantages.double(), expected, rtol=1e-4, atol=1e-5)
    assert_close(returns, advantages + rollout.int_values)
    # Cutting at the terminations (an episodic GAE) would have given other advantages.
    assert not torch.allclose(advantages.double(), reference_gae(*args, terminated, 0.9, 0.8), atol=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"update_proportion": 0.0}, "update_proportion=0.0"),
        ({"gamma": 1.0}, "gamma=1.0"),
        ({"warmup_rollouts": -1}, "warmup_rollouts=-1"),
        ({"obs_shape": (4, 20, 20)}, "at least 36×36"),
    ],
)
def test_bad_options_are_one_line_errors(kwargs: dict, message: str) -> None:
    obs_shape = kwargs.pop("obs_shape", (4, 84, 84))
    with pytest.raises(ConfigError, match=message):
        RND(obs_shape, 2, **kwargs)
