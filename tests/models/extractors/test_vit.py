"""The explorative-attention ViT: token modes, routing, gradients, attention weights, dropout."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch.testing import assert_close

from lit_rl.errors import ConfigError
from lit_rl.models.actor_critic import ActorCritic
from lit_rl.models.extractors.vit import ViTExtractor

SMALL = {"patch_size": 12, "embed_dim": 32, "depth": 2, "num_heads": 4, "mlp_dim": 64, "dropout": 0.0}
MODES = ["separate", "joint", "cls"]


def small_vit(mode: str, **overrides) -> ViTExtractor:
    torch.manual_seed(0)
    return ViTExtractor((4, 84, 84), **{**SMALL, "token_mode": mode, **overrides})


@pytest.mark.parametrize(("mode", "passes", "prefix"), [("separate", 2, 1), ("joint", 1, 2), ("cls", 1, 1)])
def test_shapes_of_every_token_mode(mode: str, passes: int, prefix: int) -> None:
    vit = small_vit(mode)
    obs = torch.rand(3, 4, 84, 84)
    assert vit.grid_size == (7, 7) and vit.num_prefix_tokens == prefix
    assert vit.forward_tokens(obs).shape == (passes, 3, prefix + 49, 32)
    streams = vit.forward_streams(obs)
    for z in (streams.policy, streams.exploit, streams.explore):
        assert z.shape == (3, 32)
    assert vit.out_dim == 32 and vit(obs).shape == (3, 32)
    maps = vit.attention_maps(obs)
    assert len(maps) == 2 and maps[0].shape == (passes, 3, 4, prefix + 49, prefix + 49)


def test_reference_size_has_the_specs_parameter_count() -> None:
    """The explorative-attention design's reference size (README, "Exploration"): D 256, depth 3, 8 heads,
    MLP 1024, patch 6 on 4×84×84 ≈ 2.46 M (separate mode)."""
    vit = ViTExtractor((4, 84, 84))
    D, P, K = 256, 6 * 6 * 4, 1 + 14 * 14
    embed = 2 * P + (P * D + D) + 2 * D
    block = 2 * D + D * 3 * D + (D * D + D) + 2 * D + (D * 1024 + 1024) + (1024 * D + D)  # qkv without bias
    expected = embed + K * D + 2 * D + 3 * block + 2 * D  # + pos, two tokens, blocks, final norm
    assert sum(p.numel() for p in vit.parameters()) == expected
    assert 2.45e6 < expected < 2.47e6


def test_separate_mode_is_two_passes_of_the_shared_transformer() -> None:
    """Each token's output equals a pass over ``[token; patches] + pos`` alone (written out here)."""
    vit = small_vit("separate").eval()
    obs = torch.rand(2, 4, 84, 84)
    patches = vit.patch_embed(obs)

    def one_pass(token: torch.Tensor) -> torch.Tensor:
        x = torch.cat([token.expand(2, 1, -1), patches], dim=1) + vit.pos_embed
        for block in vit.blocks:
            x = block(x)
        return vit.norm(x)[:, 0]

    streams = vit.forward_streams(obs)
    assert_close(streams.explore, one_pass(vit.explore_token))
    assert_close(streams.exploit, one_pass(vit.exploit_token))
    assert_close(streams.policy, streams.explore + streams.exploit)


@pytest.mark.parametrize("mode", ["separate", "joint"])
def test_both_tokens_receive_gradients_and_streams_differ(mode: str) -> None:
    vit = small_vit(mode)
    streams = vit.forward_streams(torch.rand(2, 4, 84, 84))
    assert (streams.explore - streams.exploit).abs().max() > 1e-3
    streams.policy.square().sum().backward()
    assert vit.explore_token.grad.abs().sum() > 0
    assert vit.exploit_token.grad.abs().sum() > 0


@pytest.mark.parametrize("mode", ["separate", "joint"])
def test_the_positional_embedding_reaches_every_pass_and_receives_gradients(mode: str) -> None:
    """Each stream alone (explore, exploit: one pass each in separate mode) sends a gradient to the
    positional embedding of every token position."""
    vit = small_vit(mode)
    obs = torch.rand(2, 4, 84, 84)
    for stream in ("explore", "exploit"):
        vit.zero_grad(set_to_none=True)
        getattr(vit.forward_streams(obs), stream).square().sum().backward()
        grad = vit.pos_embed.grad
        assert grad is not None and grad.shape == vit.pos_embed.shape
        assert (grad[0].abs().sum(-1) > 0).all(), stream  # every position of the sequence


@pytest.mark.parametrize(("mode", "isolated"), [("separate", True), ("joint", False)])
def test_tokens_see_each_other_only_in_joint_mode(mode: str, isolated: bool) -> None:
    vit = small_vit(mode).eval()
    obs = torch.rand(2, 4, 84, 84)
    before = vit.forward_streams(obs).explore
    with torch.no_grad():
        vit.exploit_token.add_(1.0)
    after = vit.forward_streams(obs).explore
    assert torch.equal(before, after) == isolated


def test_mean_aggregate_halves_the_sum() -> None:
    obs = torch.rand(2, 4, 84, 84)
    summed, mean = small_vit("joint").eval(), small_vit("joint", aggregate="mean").eval()
    assert_close(mean.forward_streams(obs).policy, summed.forward_streams(obs).policy / 2)


def test_attention_maps_are_the_weights_the_blocks_use() -> None:
    """weights @ V through the output projection reproduces timm's (fused) attention output."""
    vit = small_vit("joint").eval()
    obs = torch.rand(2, 4, 84, 84)
    maps = vit.attention_maps(obs)
    x = vit._sequences(obs)
    for block, weights in zip(vit.blocks, maps, strict=True):
        w = weights[0]  # [B, heads, K, K]
        assert_close(w.sum(-1), torch.ones_like(w.sum(-1)))
        h = block.norm1(x)
        B, K, D = h.shape
        v = block.attn.qkv(h).view(B, K, 3, 4, D // 4)[:, :, 2].transpose(1, 2)  # [B, heads, K, d]
        by_hand = block.attn.proj((w @ v).transpose(1, 2).reshape(B, K, D))
        assert_close(by_hand, block.attn(h), atol=1e-5, rtol=1e-4)
        x = block(x)
    assert not torch.allclose(maps[0][0, 0, 0, 0], maps[0][0, 0, 0, 1])  # not uniform


def test_dropout_only_in_train_mode() -> None:
    vit = small_vit("separate", dropout=0.5)
    obs = torch.rand(2, 4, 84, 84)
    vit.eval()
    assert torch.equal(vit(obs), vit(obs))
    vit.train()
    assert not torch.equal(vit(obs), vit(obs))


def test_actor_critic_routes_explore_to_the_intrinsic_head() -> None:
    """Separate mode: moving the exploit token changes V_ext and the policy, never V_int."""
    torch.manual_seed(0)
    ac = ActorCritic((4, 84, 84), 5, partial(ViTExtractor, **SMALL), heads="rnd", intrinsic_value=True).eval()
    obs = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    out = ac(obs)
    logits, v_ext, v_int = out.logits, out.values, out.int_values
    with torch.no_grad():
        ac.extractor.exploit_token.add_(1.0)
    out = ac(obs)
    logits2, v_ext2, v_int2 = out.logits, out.values, out.int_values
    assert torch.equal(v_int, v_int2)
    assert not torch.equal(v_ext, v_ext2) and not torch.equal(logits, logits2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"patch_size": 5}, "patch_size=5 does not divide"),
        ({"num_heads": 5}, "embed_dim=32 is not a multiple of num_heads=5"),
        ({"token_mode": "both"}, "token_mode='both'"),
        ({"aggregate": "max"}, "aggregate='max'"),
    ],
)
def test_bad_options_are_one_line_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ViTExtractor((4, 84, 84), **{**SMALL, **kwargs})


def test_vector_observations_are_rejected() -> None:
    with pytest.raises(ConfigError, match="ViTExtractor needs image observations"):
        ViTExtractor((4,))
