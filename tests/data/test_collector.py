"""Collection semantics on a toy env with known rewards, and minibatch shuffling."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import pytest
import torch
from gymnasium.vector import AutoresetMode
from torch.testing import assert_close

from lit_rl.data.collector import RolloutCollector
from lit_rl.data.datamodule import RolloutDataModule
from lit_rl.data.rollout import Rollout
from lit_rl.envs.factory import make_vector_env
from lit_rl.models.actor_critic import ActorCritic
from lit_rl.models.extractors.mlp import MLP
from lit_rl.models.extractors.nature_cnn import NatureCNN


def test_truncation_is_bootstrapped_and_recorded() -> None:
    env = make_vector_env("lit_rl_test/ConstantReward-v0", num_envs=2)  # TimeLimit 50
    policy = ActorCritic((2,), 2, MLP)
    collector = RolloutCollector(env, num_steps=60, seed=0, device=torch.device("cpu"))
    rollout, episodes = collector.collect(policy)
    assert rollout.obs.shape == (60, 2, 2)
    assert not rollout.terminated.any()
    assert rollout.truncated[49].all() and rollout.truncated.sum() == 2
    assert torch.all(rollout.rewards == 1.0)
    value_of_final_obs = policy.values(torch.zeros(1, 2)).values.item()
    assert rollout.final_values[49].tolist() == pytest.approx([value_of_final_obs] * 2)
    assert rollout.final_values[48].abs().sum() == 0
    assert episodes.returns.tolist() == [50.0, 50.0] and episodes.lengths.tolist() == [50, 50]
    env.close()


def test_next_rollout_continues_from_the_last_observation() -> None:
    env = make_vector_env("CartPole-v1", num_envs=3)
    policy = ActorCritic((4,), 2, MLP)
    collector = RolloutCollector(env, num_steps=5, seed=4, device=torch.device("cpu"))
    first, _ = collector.collect(policy)
    assert torch.equal(first.last_value, policy.values(collector._obs[5]).values)
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


def test_sequence_minibatches_keep_chunks_whole_and_cover_each_epoch_once() -> None:
    from tests.data.test_rollout import recurrent_rollout

    rollout = recurrent_rollout(T=5, N=2, seq_len=2)  # 3 chunks per env, the last one padded
    dm = RolloutDataModule("CartPole-v1", num_envs=2, num_steps=5, num_minibatches=5, update_epochs=2)
    batches = list(dm.minibatches(rollout, generator=torch.Generator().manual_seed(0), seq_len=2))
    assert len(batches) == 10 and sorted(b.actions.shape[1] for b in batches[:5]) == [1, 1, 1, 1, 2]
    for epoch in range(2):
        seen = torch.cat([b.actions[b.mask] for b in batches[epoch * 5 : (epoch + 1) * 5]])
        assert sorted(seen.tolist()) == sorted(rollout.actions.flatten().tolist())  # every real transition once
        for b in batches[epoch * 5 : (epoch + 1) * 5]:
            first = b.actions[0]  # 10 * t + n: a chunk is consecutive steps of one env and its memory
            assert torch.equal(b.actions[1][b.mask[1]], (first + 10)[b.mask[1]])
            assert torch.equal(b.memory[0, :, 0, 0], (first // 20) * 100 + first % 10)
    with pytest.raises(Exception, match="num_minibatches=10 exceeds the 6 sequence chunks"):
        RolloutDataModule("CartPole-v1", num_envs=2, num_steps=5, num_minibatches=10).check_sequence_minibatches(2)


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "separate_critic_memory"])
@pytest.mark.parametrize("extractor", ["gtrxl", "lstm"])
def test_recurrent_training_reproduces_what_the_policy_did_while_acting(extractor: str, shared: bool) -> None:
    """Chunks replayed from their recorded memory give the collected log-probs and values (PPO's ratio
    is exactly 1 before the first update), across rollouts, episode ends and truncations; also with a
    critic that has its own memory."""
    from lit_rl.models.extractors.gtrxl import GTrXL
    from lit_rl.models.extractors.lstm import LSTM

    factory = {
        "gtrxl": lambda shape: GTrXL(shape, input_layers=(16,), dim=16, head_dim=8, memory_length=6, seq_len=5),
        "lstm": lambda shape: LSTM(shape, input_layers=(16,), hidden_size=16, seq_len=5),
    }[extractor]
    env = make_vector_env("lit_rl/StatelessCartPole-v1", num_envs=3)
    policy = ActorCritic((2,), 2, factory, shared_extractor=shared)
    collector = RolloutCollector(env, num_steps=23, seed=0, device=torch.device("cpu"))
    collector.collect(policy)  # the second rollout starts mid-episode with carried memory
    rollout, _ = collector.collect(policy)
    assert rollout.memory.shape == (5, 3, *(() if shared else (2,)), *policy.extractor.memory_shape)
    assert rollout.episode_starts[1:].any(), "the test needs episodes that end inside the rollout"
    seq = rollout.to_sequences(5)
    scored = policy.score_actions(seq.obs, seq.actions, memory=seq.memory[0], episode_start=seq.episode_starts)
    log_probs, values = scored.log_probs, scored.values
    assert_close(log_probs[seq.mask], seq.log_probs[seq.mask], atol=1e-5, rtol=1e-5)
    assert_close(values[seq.mask], seq.values[seq.mask], atol=1e-5, rtol=1e-5)
    env.close()


def test_recurrent_truncation_bootstrap_sees_the_episodes_memory() -> None:
    from lit_rl.models.extractors.lstm import LSTM

    env = make_vector_env("lit_rl_test/ConstantReward-v0", num_envs=2)  # TimeLimit 50, observations all 0
    policy = ActorCritic((2,), 2, lambda shape: LSTM(shape, input_layers=(8,), hidden_size=8, seq_len=10))
    with torch.no_grad():  # make the value depend on the memory: a bias that the LSTM accumulates
        policy.extractor.lstm.bias_ih_l0.normal_()
    rollout, _ = RolloutCollector(env, num_steps=60, seed=0, device=torch.device("cpu")).collect(policy)
    assert rollout.truncated[49].all() and rollout.episode_starts[50].all()
    # Replay the 50 steps of the episode, then value the final observation with that memory.
    starts = torch.zeros(50, 2, dtype=torch.bool)
    starts[0] = True
    with torch.no_grad():
        memory = policy.forward_sequence(rollout.obs[:50], policy.initial_memory(2), starts).memory
    expected = policy.values(torch.zeros(2, 2), memory=memory).values
    fresh = policy.values(torch.zeros(2, 2), memory=policy.initial_memory(2)).values
    assert_close(rollout.final_values[49], expected)
    assert (expected - fresh).abs().min() > 1e-4  # the check can tell the memories apart
    env.close()


def test_next_obs_holds_the_final_observation_where_an_episode_ended() -> None:
    """CartPole terminates once |x| > 2.4 or |θ| > 0.2095: only the final observation shows that; the
    reset observation the env returns at that step does not."""
    env = make_vector_env("CartPole-v1", num_envs=3)
    policy = ActorCritic((4,), 2, MLP)
    collector = RolloutCollector(env, num_steps=100, seed=0, device=torch.device("cpu"), next_obs_view=lambda o: o)
    rollout, _ = collector.collect(policy)
    env.close()
    ended = rollout.terminated
    assert ended.sum() >= 3, "the test needs terminations"
    next_in_rollout = torch.cat([rollout.obs[1:], collector._obs[100:101]])
    assert torch.equal(rollout.next_obs[~ended], next_in_rollout[~ended])
    final = rollout.next_obs[ended]
    assert torch.all((final[:, 0].abs() > 2.4) | (final[:, 2].abs() > 0.2095))
    assert torch.all(next_in_rollout[ended][:, [0, 2]].abs() < 0.05)  # reset states are near zero


def test_random_rollout_warms_up_without_counting_steps() -> None:
    env = make_vector_env("CartPole-v1", num_envs=2)
    cpu = torch.device("cpu")
    collector = RolloutCollector(env, num_steps=16, seed=0, device=cpu, next_obs_view=lambda o: o[:, :2])
    views = collector.random_rollout()
    assert views.shape == (16, 2, 2)
    assert collector.total_steps == 0
    assert views[:, :, 0].abs().max() > 0.05  # the random policy moved the carts
    rollout, _ = collector.collect(ActorCritic((4,), 2, MLP))
    env.close()
    assert rollout.episode_starts[0].all()
    assert rollout.obs[0].abs().max() <= 0.05  # training starts from reset states (CartPole: within ±0.05)


def test_warm_up_leaves_no_random_steps_in_the_episode_statistics() -> None:
    """After 40 random steps of a 50-step TimeLimit env, training episodes still last 50 steps."""
    env = make_vector_env("lit_rl_test/ConstantReward-v0", num_envs=2)
    collector = RolloutCollector(env, num_steps=40, seed=0, device=torch.device("cpu"), next_obs_view=lambda o: o)
    collector.random_rollout()
    collector.num_steps = 40  # two training rollouts: 80 steps, one episode end per env at step 50
    first, _ = collector.collect(ActorCritic((2,), 2, MLP))
    second, episodes = collector.collect(ActorCritic((2,), 2, MLP))
    env.close()
    assert not first.truncated.any()
    assert second.truncated[9].all() and episodes.lengths.tolist() == [50, 50]


@pytest.mark.atari
def test_life_loss_of_the_cpp_backend_keeps_the_next_frame() -> None:
    """The C++ backend marks a life loss terminated while the game goes on: RND's next frame is the
    frame that follows (there is no final observation), and collection does not fail."""
    env = make_vector_env("BreakoutNoFrameskip-v4", num_envs=2, backend="ale_vector")
    cpu = torch.device("cpu")
    collector = RolloutCollector(env, num_steps=300, seed=0, device=cpu, next_obs_view=lambda o: o[:, -1:])
    rollout, _ = collector.collect(ActorCritic((4, 84, 84), 4, NatureCNN))
    env.close()
    obs = rollout.obs
    # The stack shifted by one frame: the game went on (a reset would restart the stack).
    continued = (obs[1:, :, :-1] == obs[:-1, :, 1:]).flatten(2).all(-1)
    life_loss = rollout.terminated[:-1] & continued
    assert life_loss.any(), "the test needs a life loss"
    assert torch.equal(rollout.next_obs[:-1][life_loss], obs[1:, :, -1:][life_loss])
