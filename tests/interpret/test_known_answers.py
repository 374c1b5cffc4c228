"""Grad-CAM and attention maps on networks built by hand, whose answer is known: the map must peak
where the decision (or the attention) is, and move when that place moves."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn

from lit_rl.interpret.explain import attention_received
from lit_rl.interpret.gradcam import grad_cam
from lit_rl.models.actor_critic import ActorCritic
from lit_rl.models.extractors.axial_attention import CWCA, CWRA, CWRCA, SWA
from lit_rl.models.extractors.base import FeatureExtractor
from lit_rl.models.extractors.small_cnn import SmallCNN
from lit_rl.models.extractors.vit import ViTExtractor

SIZE = 84


def square(frame: int, top: int, left: int, value: int = 255) -> torch.Tensor:
    """A stack of 4 black 84 x 84 frames with an 8 x 8 square of ``value`` at (top, left) in ``frame``."""
    obs = torch.zeros(1, 4, SIZE, SIZE, dtype=torch.uint8)
    obs[0, frame, top : top + 8, left : left + 8] = value
    return obs


def peak(m: torch.Tensor) -> tuple[int, int]:
    index = int(m.flatten().argmax())
    return divmod(index, m.shape[-1])


def assert_peaks_on(m: torch.Tensor, top: int, left: int, margin: int = 4) -> None:
    """The map's maximum lies on the 8 x 8 square at (top, left) (``margin`` pixels of upsampling blur
    allowed), and the map there is far above its mean elsewhere."""
    row, col = peak(m)
    assert top - margin <= row < top + 8 + margin and left - margin <= col < left + 8 + margin, (row, col)
    inside = torch.zeros_like(m, dtype=torch.bool)
    inside[top : top + 8, left : left + 8] = True
    assert m[inside].mean() > 0.3 and m[~inside].mean() < 0.1  # one feature cell, blurred by the upsampling


class TwoDetectors(FeatureExtractor):
    """Feature 0 = summed ReLU response of a detector of frame 0, feature 1 of frame 1 (conv 8x8, stride 4)."""

    def __init__(self, obs_shape) -> None:
        super().__init__(obs_shape)
        self.conv = nn.Conv2d(obs_shape[0], 2, 8, stride=4)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.zero_()
            self.conv.weight[0, 0] = 1.0 / 64
            self.conv.weight[1, 1] = 1.0 / 64
        self._measure_out_dim()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x)).sum((2, 3))


def two_detector_policy() -> ActorCritic:
    """Logit of action ``a`` (a = 0, 1) is feature ``a``; actions 2 and 3 have logit 0."""
    policy = ActorCritic((4, SIZE, SIZE), 4, TwoDetectors).eval()
    with torch.no_grad():
        policy.actor_head.weight.zero_()
        policy.actor_head.bias.zero_()
        policy.actor_head.weight[0, 0] = 1.0
        policy.actor_head.weight[1, 1] = 1.0
    return policy


def test_grad_cam_peaks_on_the_region_behind_the_chosen_action() -> None:
    """Frame 0 holds a square at P, frame 1 one at Q. The brighter square wins the greedy action; its
    logit depends on its frame only, so Grad-CAM must peak on that square and ignore the other."""
    policy = two_detector_policy()
    p, q = (40, 12), (16, 60)
    obs = torch.maximum(square(0, *p, 255), square(1, *q, 128))  # action 0 (frame 0) wins
    logits = policy(obs).logits
    assert int(logits.argmax()) == 0
    assert_peaks_on(grad_cam(policy, obs)[0], *p)
    swapped = torch.maximum(square(0, *p, 128), square(1, *q, 255))  # now action 1 (frame 1) wins
    assert int(policy(swapped).logits.argmax()) == 1
    assert_peaks_on(grad_cam(policy, swapped)[0], *q)
    moved = torch.maximum(square(0, 64, 68, 255), square(1, *q, 128))
    assert_peaks_on(grad_cam(policy, moved)[0], 64, 68)


def attending_agent(attention) -> ActorCritic:
    """A small-CNN agent whose first convolution measures brightness (every channel the same) and whose
    attention compares constant queries with keys = features: every query attends to the brightest keys."""
    policy = ActorCritic((4, SIZE, SIZE), 6, partial(SmallCNN, attention=attention)).eval()
    ex = policy.extractor
    with torch.no_grad():
        conv = ex.c1[0]
        conv.weight.fill_(1.0 / conv.weight[0].numel())
        conv.bias.zero_()
        att = ex.attention
        att.query.weight.zero_()
        att.query.bias.fill_(1.0)
        att.key.weight.copy_(torch.eye(16)[:, :, None, None] * 4.0)
        att.key.bias.zero_()
    return policy


@pytest.mark.parametrize("attention", [CWRA, CWCA, CWRCA])
@pytest.mark.parametrize(("top", "left"), [(40, 12), (12, 64)])
def test_axial_attention_is_received_where_the_keys_stand_out(attention, top: int, left: int) -> None:
    policy = attending_agent(attention)
    received = attention_received(policy, square(3, top, left))[0]
    assert_peaks_on(received, top, left)


def test_swa_attention_is_received_by_the_bright_row() -> None:
    """SWA weighs whole rows: the rows of the square receive the attention, across the whole width."""
    policy = attending_agent(SWA)
    top, left = 40, 12
    received = attention_received(policy, square(3, top, left))[0]
    row, _ = peak(received)
    assert top - 4 <= row < top + 12
    assert torch.equal(received[:, 0], received[:, -1])  # constant along each row
    band = received[top : top + 8].mean()
    assert band > 0.5 and torch.cat([received[: top - 8], received[top + 16 :]]).mean() < 0.2


def attending_vit(pattern_obs: torch.Tensor, patch: int) -> ActorCritic:
    """A one-block ViT (12 x 12 patches) whose keys single out patches that look like patch ``patch`` of
    ``pattern_obs``: the patch embedding maps that pattern to the first feature and empty patches to 0,
    and the first token's query looks for the first feature."""
    vit = partial(ViTExtractor, patch_size=12, embed_dim=32, depth=1, num_heads=1, mlp_dim=32, dropout=0.0)
    policy = ActorCritic((4, SIZE, SIZE), 6, vit).eval()
    ex = policy.extractor
    with torch.no_grad():
        pattern = ex.patch_embed[:2](policy.preprocess(pattern_obs))[0, patch]  # the normalised pixels
        linear = ex.patch_embed[2]
        linear.weight.zero_()
        linear.bias.zero_()
        linear.weight[0] = pattern / pattern.norm()
        ex.pos_embed.zero_()
        for token in (ex.explore_token, ex.exploit_token):
            token.zero_()
            token[0, 0, 1] = 1.0
        qkv = ex.blocks[0].attn.qkv  # [q; k; v] rows, no bias
        qkv.weight.zero_()
        qkv.weight[0, 1] = 4.0  # q_0 = 4 x_1: the tokens' query
        qkv.weight[32:64] = torch.eye(32)  # k = x
    return policy


@pytest.mark.parametrize(("top", "left"), [(36, 48), (0, 72)])
def test_vit_attention_is_received_by_the_patch_the_query_looks_for(top: int, left: int) -> None:
    obs = square(3, top, left)
    patch = (top // 12) * 7 + left // 12
    received = attention_received(attending_vit(obs, patch), obs)[0]
    assert_peaks_on(received, top, left)
