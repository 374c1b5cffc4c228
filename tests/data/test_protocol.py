"""The datamodule drives any RolloutLearner (lit_rl.data.protocol), not only PPO."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lit_rl.data.collector import RolloutCollector
from lit_rl.data.datamodule import RolloutDataModule, _RolloutDataset
from lit_rl.data.episodes import RolloutEpisodes
from lit_rl.data.protocol import Policy, RolloutLearner
from lit_rl.data.rollout import Rollout
from lit_rl.envs.factory import make_vector_env
from lit_rl.models.actor_critic import ActorCritic
from lit_rl.models.extractors.mlp import MLP

T, N = 60, 2  # ConstantReward's episodes last 50 steps: both envs finish one in the first rollout


class FakeLearner:
    """Not a LightningModule, not PPO: numbers each transition as its advantage and keeps what it gets."""

    def __init__(self, warmups: int, obs_dim: int = 2) -> None:
        self.policy = ActorCritic((obs_dim,), 2, MLP)
        self.env_steps = 0
        self.next_obs_view = lambda obs: obs[:, :1]
        self.pending = warmups
        self.warmed: list[tuple[int, ...]] = []
        self.received: list[tuple[Rollout, RolloutEpisodes]] = []

    @property
    def warmup_pending(self) -> bool:
        return self.pending > 0

    def warm_up(self, next_obs: torch.Tensor) -> None:
        self.warmed.append(tuple(next_obs.shape))
        self.pending -= 1

    def prepare_rollout(self, rollout: Rollout, episodes: RolloutEpisodes) -> Rollout:
        self.received.append((rollout, episodes))
        index = torch.arange(rollout.num_transitions, dtype=torch.float32).view_as(rollout.rewards)
        return dataclasses.replace(rollout, advantages=index, returns=-index)


def datamodule(learner: object, env_id: str = "lit_rl_test/ConstantReward-v0") -> RolloutDataModule:
    dm = RolloutDataModule(
        env_id,
        num_envs=N,
        num_steps=T,
        num_minibatches=4,
        update_epochs=3,
        seed=0,
    )
    dm.trainer = SimpleNamespace(
        lightning_module=learner, global_rank=0, strategy=SimpleNamespace(root_device=torch.device("cpu"))
    )
    return dm


def test_a_fake_learner_gets_the_rollout_its_episodes_and_its_minibatches() -> None:
    learner = FakeLearner(warmups=2)
    assert isinstance(learner, RolloutLearner) and isinstance(learner.policy, Policy)
    dm = datamodule(learner)
    dm.setup("fit")
    try:
        minibatches = list(_RolloutDataset(dm))
    finally:
        dm.teardown("fit")
    assert learner.warmed == [(T, N, 1), (T, N, 1)]  # the learner's view of each random-policy step
    ((rollout, episodes),) = learner.received
    assert rollout.next_obs.shape == (T, N, 1)
    assert episodes.returns.tolist() == [50.0, 50.0] and episodes.lengths.tolist() == [50, 50]
    assert len(minibatches) == 3 * 4 == len(_RolloutDataset(dm))
    assert all(mb.num_transitions == T * N // 4 for mb in minibatches)
    for epoch in range(3):  # each epoch serves every transition of the prepared rollout once
        served = torch.cat([mb.advantages for mb in minibatches[epoch * 4 : (epoch + 1) * 4]])
        assert torch.equal(served.sort().values, torch.arange(T * N, dtype=torch.float32))
    for mb in minibatches:  # and the rows stay whole: returns travel with their advantages
        assert torch.equal(mb.returns, -mb.advantages)
        flat = rollout.flatten()
        assert torch.equal(mb.actions, flat.actions[mb.advantages.long()])


def test_a_resumed_learner_reseeds_the_envs_from_its_env_steps() -> None:
    learner, later = FakeLearner(warmups=0, obs_dim=4), FakeLearner(warmups=0, obs_dim=4)
    later.env_steps = 4096
    fresh, resumed = datamodule(learner, "CartPole-v1"), datamodule(later, "CartPole-v1")
    for dm in (fresh, resumed):
        dm.setup("fit")
        list(_RolloutDataset(dm))
        dm.teardown("fit")
    ((first, _),) = learner.received
    ((after_resume, _),) = resumed.trainer.lightning_module.received
    assert not torch.equal(first.obs, after_resume.obs)  # new episodes, not the run's first ones


def test_a_module_that_is_not_a_rollout_learner_is_refused() -> None:
    learner = FakeLearner(warmups=0)
    del learner.next_obs_view
    with pytest.raises(TypeError, match="FakeLearner is not a RolloutLearner"):
        datamodule(learner).setup("fit")


def test_the_collector_acts_with_any_policy() -> None:
    """A policy of the protocol's shape (here a wrapper) is all the collector needs."""

    class Wrapped:
        def __init__(self, inner: ActorCritic) -> None:
            self.inner, self.training, self.recurrent, self.calls = inner, False, False, 0

        seq_len = None

        def initial_memory(self, batch_size):
            return None

        def act(self, obs, greedy=False, memory=None, episode_start=None):
            self.calls += 1
            return self.inner.act(obs, greedy, memory, episode_start)

        def values(self, obs, memory=None, episode_start=None):
            return self.inner.values(obs, memory, episode_start)

        def parameters(self, recurse=True):
            return self.inner.parameters(recurse)

        def train(self, mode=True):
            return self

        def eval(self):
            return self

    torch.manual_seed(0)
    policy = Wrapped(ActorCritic((2,), 2, MLP))
    assert isinstance(policy, Policy)

    collector = RolloutCollector(
        make_vector_env("lit_rl_test/ConstantReward-v0", num_envs=N), 10, 0, torch.device("cpu")
    )
    rollout, episodes = collector.collect(policy)
    collector.close()
    assert policy.calls == 10 and rollout.actions.shape == (10, N)
    assert np.array_equal(episodes.returns, np.zeros(0))
