from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from lit_rl.models.actor_critic import ActorCritic, categorical_log_prob
from lit_rl.models.extractors.mlp import MLP
from lit_rl.models.extractors.nature_cnn import NatureCNN


def test_categorical_log_prob_matches_torch_distributions() -> None:
    logits = torch.randn(5, 4)
    actions = torch.tensor([0, 3, 1, 2, 3])
    lp, ent = categorical_log_prob(logits, actions)
    dist = torch.distributions.Categorical(logits=logits)
    assert_close(lp, dist.log_prob(actions))
    assert_close(ent, dist.entropy())


def test_sampling_follows_the_policy() -> None:
    """Sampled actions have the softmax frequencies of the logits (40k draws)."""
    ac = ActorCritic((1,), 3, MLP)
    with torch.no_grad():
        ac.actor_head.weight.zero_()
        ac.actor_head.bias.copy_(torch.tensor([2.0, 0.0, -1.0]))
    out = ac.act(torch.zeros(40_000, 1))
    freq = torch.bincount(out.action, minlength=3).float() / 40_000
    expected = torch.softmax(torch.tensor([2.0, 0.0, -1.0]), -1)
    assert_close(freq, expected, atol=0.01, rtol=0)
    assert_close(out.log_prob, expected.log()[out.action])


def test_head_init_gains_and_uint8_scaling() -> None:
    ac = ActorCritic((4, 84, 84), 6, NatureCNN)
    s_actor = torch.linalg.svdvals(ac.actor_head.weight)
    s_critic = torch.linalg.svdvals(ac.critic_head.weight)
    assert torch.allclose(s_actor, torch.full_like(s_actor, 0.01), atol=1e-6)
    assert torch.allclose(s_critic, torch.ones_like(s_critic), atol=1e-5)
    obs = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    logits_u8, values_u8 = ac(obs)
    logits_f, values_f = ac(obs.float() / 255.0)
    assert_close(logits_u8, logits_f)
    assert_close(values_u8, values_f)


@pytest.mark.parametrize("shared", [True, False])
def test_act_and_evaluate_agree(shared: bool) -> None:
    ac = ActorCritic((4,), 3, MLP, shared_extractor=shared)
    obs = torch.randn(7, 4)
    out = ac.act(obs)
    assert out.action.shape == out.log_prob.shape == out.value.shape == (7,)
    lp, ent, v, _ = ac.evaluate(obs, out.action)
    assert_close(lp, out.log_prob)
    assert_close(v, out.value)
    assert (ent > 0).all() and (ent <= math.log(3) + 1e-6).all()
    assert (ac.critic_extractor is None) == shared
    greedy = ac.act(obs, greedy=True).action
    assert torch.equal(greedy, ac(obs)[0].argmax(-1))


def test_wrong_observation_shape_is_rejected() -> None:
    ac = ActorCritic((4,), 2, MLP)
    with pytest.raises(ValueError, match=r"\(5,\)"):
        ac(torch.zeros(1, 5))
