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
    freq = torch.bincount(out.actions, minlength=3).float() / 40_000
    expected = torch.softmax(torch.tensor([2.0, 0.0, -1.0]), -1)
    assert_close(freq, expected, atol=0.01, rtol=0)
    assert_close(out.log_probs, expected.log()[out.actions])


def test_head_init_gains_and_uint8_scaling() -> None:
    ac = ActorCritic((4, 84, 84), 6, NatureCNN)
    s_actor = torch.linalg.svdvals(ac.actor_head.weight)
    s_critic = torch.linalg.svdvals(ac.critic_head.weight)
    assert torch.allclose(s_actor, torch.full_like(s_actor, 0.01), atol=1e-6)
    assert torch.allclose(s_critic, torch.ones_like(s_critic), atol=1e-5)
    obs = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    u8, f = ac(obs), ac(obs.float() / 255.0)
    assert_close(u8.logits, f.logits)
    assert_close(u8.values, f.values)


@pytest.mark.parametrize("shared", [True, False])
def test_act_and_score_actions_agree(shared: bool) -> None:
    ac = ActorCritic((4,), 3, MLP, shared_extractor=shared)
    obs = torch.randn(7, 4)
    out = ac.act(obs)
    assert out.actions.shape == out.log_probs.shape == out.values.shape == (7,)
    scored = ac.score_actions(obs, out.actions)
    lp, ent, v = scored.log_probs, scored.entropy, scored.values
    assert_close(lp, out.log_probs)
    assert_close(v, out.values)
    assert (ent > 0).all() and (ent <= math.log(3) + 1e-6).all()
    assert (ac.critic_extractor is None) == shared
    greedy = ac.act(obs, greedy=True).actions
    assert torch.equal(greedy, ac(obs).logits.argmax(-1))


def test_wrong_observation_shape_is_rejected() -> None:
    ac = ActorCritic((4,), 2, MLP)
    with pytest.raises(ValueError, match=r"\(5,\)"):
        ac(torch.zeros(1, 5))


def test_default_init_is_pytorchs_for_every_layer() -> None:
    """``init="default"`` (SB3's ``ortho_init=False``): each layer's parameters are drawn as a freshly
    built PyTorch layer draws them. PyTorch's rules, written here: Linear weights and biases uniform in
    ±1/√fan_in; LSTM weights and biases uniform in ±1/√hidden."""
    from functools import partial

    from lit_rl.errors import ConfigError
    from lit_rl.models.extractors.lstm import LSTM

    extractor = partial(LSTM, input_layers=[], hidden_size=64, seq_len=8, input_norm=False)
    torch.manual_seed(0)
    default = ActorCritic((2,), 2, extractor, shared_extractor=False, head_layers=(64,), init="default")
    torch.manual_seed(0)
    orthogonal = ActorCritic((2,), 2, extractor, shared_extractor=False, head_layers=(64,))
    for layer in (default.actor_head, default.critic_head, default.actor_hidden[0], default.critic_hidden[0]):
        bound = 1 / math.sqrt(layer.in_features)
        for p in (layer.weight, layer.bias):
            assert p.abs().max() <= bound
            if p.numel() >= 64:  # uniform on ±bound: std bound/√3 (within 25 % at this size)
                assert abs(p.std().item() / (bound / math.sqrt(3)) - 1) < 0.25
    for lstm in (default.extractor.lstm, default.critic_extractor.lstm):
        for name, p in lstm.named_parameters():
            assert p.abs().max() <= 1 / 8, name  # 1/√64
            assert p.abs().min() < 1e-2 and p.std() > 0.05, name  # spread over the interval, biases not zero
    # The orthogonal init is different: the actor head at gain 0.01, zero biases.
    assert orthogonal.actor_head.weight.abs().max() < 0.02
    assert torch.count_nonzero(orthogonal.actor_head.bias) == 0
    with pytest.raises(ConfigError, match="init='xavier'"):
        ActorCritic((2,), 2, extractor, init="xavier")
