"""Synthetic rollouts: the policy's own collection forwards on fixed random data, and PPO's real update."""

from __future__ import annotations

import dataclasses
import warnings

import lightning as L
import pytest
import torch
from torch.testing import assert_close

from lit_rl.algos.ppo import PPO
from lit_rl.data.synthetic import SyntheticCollector, SyntheticRolloutDataModule
from lit_rl.models.actor_critic import ActorCritic
from lit_rl.models.extractors.lstm import LSTM
from lit_rl.models.extractors.mlp import MLP
from lit_rl.specs import EnvSpec

CPU = torch.device("cpu")


def test_rollout_holds_what_the_policy_did_on_the_fixed_observations(small_spec: EnvSpec) -> None:
    policy = ActorCritic(small_spec.obs_shape, small_spec.num_actions, MLP)
    collector = SyntheticCollector(small_spec, num_steps=6, seed=3, device=CPU)
    first, episodes = collector.collect(policy)
    second, _ = collector.collect(policy)
    assert torch.equal(first.obs, second.obs)  # the same block every rollout
    assert collector.total_steps == 2 * 6 * small_spec.num_envs
    with torch.no_grad():
        scored = policy.score_actions(first.obs.flatten(0, 1), first.actions.flatten())
        last_value = policy.values(collector._obs[6]).values
    assert_close(scored.log_probs.view(6, -1), first.log_probs)
    assert_close(scored.values.view(6, -1), first.values)
    assert_close(first.last_value, last_value)
    assert episodes.returns.size == 0 and not first.terminated.any() and not first.truncated.any()
    assert first.episode_starts[0].all() and not second.episode_starts.any()  # fresh episodes after a reset only


def test_observations_follow_the_spec_and_the_seed(image_spec: EnvSpec) -> None:
    frames = SyntheticCollector(image_spec, num_steps=4, seed=1, device=CPU)._obs
    assert frames.dtype == torch.uint8 and (int(frames.min()), int(frames.max())) == (0, 255)
    assert torch.equal(frames, SyntheticCollector(image_spec, num_steps=4, seed=1, device=CPU)._obs)
    assert not torch.equal(frames, SyntheticCollector(image_spec, num_steps=4, seed=2, device=CPU)._obs)
    floats = SyntheticCollector(dataclasses.replace(image_spec, obs_dtype="float32"), 4, 1, CPU)._obs
    assert abs(float(floats.mean())) < 0.01 and abs(float(floats.std()) - 1.0) < 0.01  # standard normal


def test_random_rollout_serves_the_view_of_each_next_observation(small_spec: EnvSpec) -> None:
    collector = SyntheticCollector(small_spec, num_steps=5, seed=0, device=CPU, next_obs_view=lambda x: 2 * x[:, :1])
    assert torch.equal(collector.random_rollout(), 2 * collector._obs[1:, :, :1])
    assert collector.total_steps == 0
    with pytest.raises(ValueError, match="next_obs_view"):
        SyntheticCollector(small_spec, num_steps=5, seed=0, device=CPU).random_rollout()


def fit(module: PPO, datamodule: SyntheticRolloutDataModule, epochs: int) -> L.Trainer:
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(num_workers|__len__|logging interval).*")
        trainer.fit(module, datamodule)
    return trainer


def test_fit_runs_the_modules_update_with_its_optimizer(small_spec: EnvSpec) -> None:
    module = PPO(small_spec, MLP, total_env_steps=10_000)
    before = [p.detach().clone() for p in module.policy.parameters()]
    datamodule = SyntheticRolloutDataModule(small_spec, num_envs=4, num_steps=8, num_minibatches=2, update_epochs=3)
    trainer = fit(module, datamodule, epochs=2)
    assert int(module.env_steps) == 2 * 4 * 8
    assert int(module.num_updates) == 2 * 3 * 2  # every minibatch of every epoch stepped
    assert trainer.optimizers[0].param_groups[0]["fused"] is True  # the module's default: fused Adam
    assert all(not torch.equal(a, b) for a, b in zip(before, module.policy.parameters(), strict=True))
    assert datamodule.collector is None  # torn down at the end of fit


def test_fit_trains_a_recurrent_policy_on_sequences(small_spec: EnvSpec) -> None:
    extractor = lambda shape: LSTM(shape, hidden_size=8, seq_len=4)  # noqa: E731
    module = PPO(small_spec, extractor, total_env_steps=10_000)
    datamodule = SyntheticRolloutDataModule(small_spec, num_envs=2, num_steps=8, num_minibatches=2, update_epochs=1)
    fit(module, datamodule, epochs=1)
    assert int(module.num_updates) == 2
    with pytest.raises(Exception, match="seq_len=4 is longer than a rollout"):
        fit(PPO(small_spec, extractor), SyntheticRolloutDataModule(small_spec, num_steps=2, num_minibatches=1), 1)
