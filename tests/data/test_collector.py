"""Collection semantics on a toy env with known rewards, and minibatch shuffling."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import pytest
import torch
from gymnasium.vector import AutoresetMode

from lit_rl.data.collector import RolloutCollector
from lit_rl.data.datamodule import RolloutDataModule
from lit_rl.data.rollout import Rollout
from lit_rl.envs.factory import make_vector_env
from lit_rl.models.actor_critic import ActorCritic
from lit_rl.models.extractors.mlp import MLP


def test_truncation_is_bootstrapped_and_recorded() -> None:
    env = make_vector_env("lit_rl_test/ConstantReward-v0", num_envs=2)  # TimeLimit 50
    policy = ActorCritic((2,), 2, MLP)
    collector = RolloutCollector(env, num_steps=60, seed=0, device=torch.device("cpu"))
    rollout, episodes = collector.collect(policy)
    assert rollout.obs.shape == (60, 2, 2)
    assert not rollout.terminated.any()
    assert rollout.truncated[49].all() and rollout.truncated.sum() == 2
    assert torch.all(rollout.rewards == 1.0)
    value_of_final_obs = policy.value(torch.zeros(1, 2)).item()
    assert rollout.final_values[49].tolist() == pytest.approx([value_of_final_obs] * 2)
    assert rollout.final_values[48].abs().sum() == 0
    assert episodes.returns.tolist() == [50.0, 50.0] and episodes.lengths.tolist() == [50, 50]
    env.close()


def test_next_rollout_continues_from_the_last_observation() -> None:
    env = make_vector_env("CartPole-v1", num_envs=3)
    policy = ActorCritic((4,), 2, MLP)
    collector = RolloutCollector(env, num_steps=5, seed=4, device=torch.device("cpu"))
    first, _ = collector.collect(policy)
    assert torch.equal(first.last_value, policy.value(collector._obs[5]))
    second, _ = collector.collect(policy)
    assert torch.equal(second.obs[0], collector._obs[0])
    assert not torch.equal(second.obs[0], first.obs[0])
    # the rollout is a copy: collecting again does not change it
    assert not torch.equal(first.obs, second.obs)
    env.close()


def test_rejects_next_step_autoreset() -> None:
    env = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")], autoreset_mode=AutoresetMode.NEXT_STEP)
    with pytest.raises(ValueError, match="SAME_STEP"):
        RolloutCollector(env, num_steps=4, seed=0, device=torch.device("cpu"))


def test_minibatches_cover_each_epoch_once() -> None:
    T, N = 8, 4
    z = torch.zeros(T, N)
    rollout = Rollout(
        obs=torch.zeros(T, N, 1),
        actions=torch.arange(T * N).reshape(T, N),
        log_probs=z,
        values=z,
        rewards=z,
        terminated=z.bool(),
        truncated=z.bool(),
        final_values=z,
        last_value=torch.zeros(N),
    )
    rollout = dataclasses.replace(rollout, advantages=z, returns=z)
    dm = RolloutDataModule("CartPole-v1", num_envs=N, num_steps=T, num_minibatches=4, update_epochs=3)
    batches = list(dm.minibatches(rollout, generator=torch.Generator().manual_seed(0)))
    assert len(batches) == 12 and all(b.actions.shape == (8,) for b in batches)
    for epoch in range(3):
        seen = torch.cat([b.actions for b in batches[epoch * 4 : (epoch + 1) * 4]])
        assert sorted(seen.tolist()) == list(range(T * N))
    assert not torch.equal(torch.cat([b.actions for b in batches[:4]]), torch.arange(T * N))  # shuffled
