"""record_attention: every attention module's maps through forward hooks, nothing left behind."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch.testing import assert_close

from lit_rl.interpret.hooks import record_attention
from lit_rl.models.actor_critic import ActorCritic
from lit_rl.models.extractors.axial_attention import CWRA, CWRCA
from lit_rl.models.extractors.small_cnn import SmallCNN


@pytest.fixture
def policy() -> ActorCritic:
    return ActorCritic((4, 84, 84), 6, partial(SmallCNN, attention=CWRCA)).eval()


@pytest.fixture
def obs() -> torch.Tensor:
    return torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)


def test_records_one_set_of_maps_per_forward_and_cleans_up(policy, obs) -> None:
    attention = policy.extractor.attention
    with torch.no_grad():
        before = policy(obs)
        logits_before, values_before = before.logits, before.values
    with torch.no_grad(), record_attention(policy) as maps:
        assert attention.record_attn is True
        out = policy(obs)
        logits, values = out.logits, out.values
        assert len(maps["extractor.attention"]) == 1
        policy(obs)
    assert list(maps) == ["extractor.attention"]
    first, second = maps["extractor.attention"]
    assert first.weights.keys() == {"height", "width"}
    assert first.weights["height"].shape == (2, 1, 20, 20, 20)  # [B, G, W, H, H]
    assert first.weights["width"].shape == (2, 1, 20, 20, 20)  # [B, G, H, W, W]
    assert first.output.shape == (2, 16, 20, 20)
    # The same maps as asking the module directly on the same input F = ReLU(c1(x)).
    with torch.no_grad():
        f = policy.extractor.c1(policy.preprocess(obs))
        _, direct = attention(f, return_maps=True)
    for recorded in (first, second):
        for axis in ("height", "width"):
            assert_close(recorded.weights[axis], direct.weights[axis])
        assert_close(recorded.output, direct.output)
    # Recording does not change what the policy computes.
    assert_close(logits, logits_before)
    assert_close(values, values_before)
    # Nothing left behind: flag restored, hooks removed, further forwards record nothing.
    assert attention.record_attn is False
    assert len(attention.maps._forward_hooks) == 0
    with torch.no_grad():
        assert_close(policy(obs).logits, logits)
    assert len(maps["extractor.attention"]) == 2


def test_recorded_maps_differ_between_inputs(policy, obs) -> None:
    """Each record belongs to its own forward, not a stale copy of the first."""
    other = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    with torch.no_grad(), record_attention(policy) as maps:
        policy(obs)
        policy(other)
    first, second = maps["extractor.attention"]
    assert (first.output - second.output).abs().max() > 1e-4
    with torch.no_grad():
        _, direct = policy.extractor.attention(policy.extractor.c1(policy.preprocess(other)), return_maps=True)
    assert_close(second.weights["height"], direct.weights["height"])
    assert_close(second.output, direct.output)


def test_every_attention_module_is_recorded_by_name(obs) -> None:
    """A separate critic trunk has its own attention module, recorded under its own name."""
    policy = ActorCritic((4, 84, 84), 6, partial(SmallCNN, attention=CWRA), shared_extractor=False).eval()
    with torch.no_grad(), record_attention(policy) as maps:
        policy(obs)
    assert set(maps) == {"extractor.attention", "critic_extractor.attention"}
    for name, module in (
        ("extractor.attention", policy.extractor.attention),
        ("critic_extractor.attention", policy.critic_extractor.attention),
    ):
        (recorded,) = maps[name]
        assert recorded.weights.keys() == {"height"}
        assert recorded.weights["height"].shape == (2, 1, 20, 20, 20)
        trunk = policy.extractor if name.startswith("extractor") else policy.critic_extractor
        with torch.no_grad():
            _, direct = module(trunk.c1(policy.preprocess(obs)), return_maps=True)
        assert_close(recorded.output, direct.output)
    # The two trunks are initialised independently, so their maps differ.
    a = maps["extractor.attention"][0].output
    b = maps["critic_extractor.attention"][0].output
    assert (a - b).abs().max() > 1e-4


def test_hooks_are_removed_when_the_block_raises(policy, obs) -> None:
    attention = policy.extractor.attention
    with pytest.raises(RuntimeError, match="boom"), record_attention(policy) as maps:
        raise RuntimeError("boom")
    assert attention.record_attn is False
    assert len(attention.maps._forward_hooks) == 0
    with torch.no_grad():
        policy(obs)
    assert maps["extractor.attention"] == []


def test_a_previous_record_attn_flag_is_restored(policy, obs) -> None:
    attention = policy.extractor.attention
    attention.record_attn = True
    with torch.no_grad(), record_attention(policy) as maps:
        policy(obs)
    assert attention.record_attn is True
    assert len(maps["extractor.attention"]) == 1
    assert len(attention.maps._forward_hooks) == 0


def test_records_the_weights_of_every_vit_block(obs) -> None:
    from lit_rl.models.extractors.vit import ViTExtractor

    vit = partial(ViTExtractor, patch_size=12, embed_dim=32, depth=2, num_heads=4, mlp_dim=32, dropout=0.0)
    policy = ActorCritic((4, 84, 84), 6, vit).eval()
    with torch.no_grad(), record_attention(policy) as maps:
        assert policy.extractor.record_attn is True
        policy(obs)
    assert policy.extractor.record_attn is False
    assert list(maps) == ["extractor.blocks.0", "extractor.blocks.1"]
    expected = policy.extractor.attention_maps(policy.preprocess(obs))
    for key, weights in zip(maps, expected, strict=True):
        (recorded,) = maps[key]
        assert recorded.shape == (2, 2, 4, 50, 50)  # separate mode: [S = 2 passes, B, heads, K, K]
        assert_close(recorded, weights)
