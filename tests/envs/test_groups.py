"""EnvGroups: groups of the C++ Atari env behave as one vector env; the pipelined collector records
exactly what stepping all envs at once records."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from lit_rl.data.collector import RolloutCollector
from lit_rl.envs.ale_pool import make_ale_pool
from lit_rl.envs.atari import make_ale_vector_env
from lit_rl.envs.groups import EnvGroups, merge_infos
from lit_rl.envs.options import AtariOptions
from lit_rl.models.actor_critic import ActorCritic
from lit_rl.models.extractors.small_cnn import SmallCNN

pytestmark = pytest.mark.atari

# Short games: a time limit every 60 agent steps, life losses in Breakout, so truncation, game over
# and life-loss terminals all occur within a 128-step rollout.
OPTIONS = AtariOptions(max_episode_frames=240)


def test_merge_infos_fills_keys_missing_from_a_group() -> None:
    a = {"lives": np.array([3, 2]), "episode": {"r": np.array([1.0, 5.0])}, "_episode": np.array([False, True])}
    b = {"lives": np.array([4, 4, 1])}
    merged = merge_infos([a, b], [2, 3])
    assert merged["lives"].tolist() == [3, 2, 4, 4, 1]
    assert merged["_episode"].tolist() == [False, True, False, False, False]
    assert merged["episode"]["r"].tolist() == [1.0, 5.0, 0.0, 0.0, 0.0]
    final = merge_infos([{}, {"final_obs": np.ones((3, 2, 2), np.uint8)}], [2, 3])["final_obs"]
    assert final.shape == (5, 2, 2) and final[:2].sum() == 0 and final[2:].min() == 1


def test_groups_step_like_one_vector_env() -> None:
    whole = make_ale_vector_env("breakout", 5, OPTIONS)
    groups = make_ale_vector_env("breakout", 5, OPTIONS, groups=2)
    assert isinstance(groups, EnvGroups) and [g.num_envs for g in groups.groups] == [3, 2]
    obs_w, _ = whole.reset(seed=7)
    obs_g, info_g = groups.reset(seed=7)  # env i of the whole gets 7 + i in both
    np.testing.assert_array_equal(obs_g, obs_w)
    assert info_g["env_id"].tolist() == [0, 1, 2, 3, 4]
    actions = np.random.default_rng(0).integers(4, size=(150, 5))
    ended = 0
    for a in actions:
        w, g = whole.step(a), groups.step(a)
        for x, y in zip(w[:4], g[:4], strict=True):
            np.testing.assert_array_equal(y, x)
        if "episode" in w[4]:
            ended += w[4]["_episode"].sum()
            np.testing.assert_array_equal(g[4]["_episode"], w[4]["_episode"])
            np.testing.assert_array_equal(
                g[4]["episode"]["r"][w[4]["_episode"]], w[4]["episode"]["r"][w[4]["_episode"]]
            )
            np.testing.assert_array_equal(g[4]["final_obs"][w[4]["_final_obs"]], w[4]["final_obs"][w[4]["_final_obs"]])
    assert ended >= 5  # every env hit the time limit at least once
    whole.close()
    groups.close()


def _greedy(policy: ActorCritic) -> ActorCritic:
    """The policy with the most likely action: collection draws no random numbers, so the order in
    which envs act cannot change what is collected."""
    act = policy.act
    policy.act = lambda obs, **kw: act(obs, greedy=True, **kw)
    return policy


@pytest.mark.parametrize("make_env", [make_ale_vector_env, make_ale_pool], ids=["ale_vector", "ale"])
def test_pipelined_collection_equals_stepping_all_envs_at_once(make_env) -> None:
    torch.manual_seed(3)
    policy = _greedy(ActorCritic((4, 84, 84), 4, SmallCNN))
    torch.set_num_threads(2)
    rollouts = {}
    for groups in (1, 2):
        env = make_env("breakout", 4, OPTIONS, groups=groups)
        collector = RolloutCollector(env, 64, seed=5, device=torch.device("cpu"), next_obs_view=lambda o: o[:, -1:])
        rollouts[groups] = [collector.collect(policy) for _ in range(2)]  # the second continues the first
        assert torch.get_num_threads() == 2  # the pipeline's thread share is given back
        env.close()
    for (serial, serial_stats), (piped, piped_stats) in zip(rollouts[1], rollouts[2], strict=True):
        for field in dataclasses.fields(serial):
            a, b = getattr(serial, field.name), getattr(piped, field.name)
            if a is None:
                assert b is None, field.name
            else:
                # Values and log-probs of a batch of 2 and of 4 differ in the last bit (other kernels).
                tol = 1e-5 if a.is_floating_point() and a.dtype != torch.uint8 else 0
                assert_close(b, a, rtol=tol, atol=tol, msg=lambda m, name=field.name: f"{name}: {m}")
        np.testing.assert_array_equal(piped_stats.returns, serial_stats.returns)
        np.testing.assert_array_equal(piped_stats.lengths, serial_stats.lengths)
    serial = rollouts[1][0][0]
    # The comparison covered every kind of step: truncation (bootstrapped), life loss and game over.
    assert serial.truncated.any() and serial.final_values.abs().sum() > 0
    assert serial.terminated.any() and len(rollouts[1][0][1].returns) + len(rollouts[1][1][1].returns) > 0
