"""record_attention: every attention module's maps through forward hooks, nothing left behind."""

from __future__ import annotations

from functools import partial

import torch

from lit_rl.interpret.hooks import record_attention
from lit_rl.models.actor_critic import ActorCritic
from lit_rl.models.extractors.axial_attention import CWRCA
from lit_rl.models.extractors.small_cnn import SmallCNN


def test_records_one_set_of_maps_per_forward_and_cleans_up() -> None:
    policy = ActorCritic((4, 84, 84), 6, partial(SmallCNN, attention=CWRCA)).eval()
    obs = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    attention = policy.extractor.attention
    with torch.no_grad(), record_attention(policy) as maps:
        logits, _ = policy(obs)
        policy(obs)
    assert list(maps) == ["extractor.attention"]
    first, second = maps["extractor.attention"]
    assert first.weights["height"].shape == (2, 1, 20, 20, 20)  # [B, G, W, H, H]
    assert first.weights["width"].shape == (2, 1, 20, 20, 20)  # [B, G, H, W, W]
    # The same maps as asking the module directly on the same input F = ReLU(c1(x)).
    with torch.no_grad():
        f = policy.extractor.c1(policy.preprocess(obs))
        _, direct = attention(f, return_maps=True)
    for axis in ("height", "width"):
        torch.testing.assert_close(first.weights[axis], direct.weights[axis])
        torch.testing.assert_close(second.weights[axis], direct.weights[axis])
    torch.testing.assert_close(first.output, direct.output)
    # Recording does not change what the policy computes, and leaves nothing behind.
    assert attention.record_attn is False
    assert len(attention.maps._forward_hooks) == 0
    with torch.no_grad():
        torch.testing.assert_close(policy(obs)[0], logits)
    assert len(maps["extractor.attention"]) == 2
