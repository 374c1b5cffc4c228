"""The Nature-DQN CNN (Mnih et al., 2015), as in cleanrl ``ppo_atari.py`` and SB3 ``NatureCNN``."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lit_rl.models.extractors.base import AttentionFactory, FeatureExtractor, require_image
from lit_rl.models.init import TRUNK_GAIN, orthogonal_init_


class NatureCNN(FeatureExtractor):
    """``32·8×8/4 → 64·4×4/2 → 64·3×3/1 → Linear(3136 → features_dim)``, ReLU after each.

    Layer names ``c1``..``c3``, ``l1`` let interpretation tools pick a layer by name.

    Args:
        obs_shape: ``(C, H, W)``, e.g. ``(4, 84, 84)``.
        features_dim: Width of the final linear layer.
        attention: Module applied to ``ReLU(c1(x))`` (``[B, 32, 20, 20]`` on 84×84), built from the
            channel count: the study's placement carried over to the Nature CNN (beyond the study).
    """

    def __init__(
        self, obs_shape: tuple[int, ...], *, features_dim: int = 512, attention: AttentionFactory | None = None
    ) -> None:
        super().__init__(obs_shape)
        require_image(self.obs_shape, "NatureCNN", min_side=36)
        channels = self.obs_shape[0]
        self.c1 = nn.Sequential(nn.Conv2d(channels, 32, 8, stride=4), nn.ReLU())
        self.attention = attention(32) if attention is not None else nn.Identity()
        self.c2 = nn.Sequential(nn.Conv2d(32, 64, 4, stride=2), nn.ReLU())
        self.c3 = nn.Sequential(nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(), nn.Flatten())
        with torch.no_grad():
            n_flatten = self.c3(self.c2(self.attention(self.c1(torch.zeros(1, *self.obs_shape))))).shape[1]
        self.l1 = nn.Sequential(nn.Linear(n_flatten, features_dim), nn.ReLU())
        orthogonal_init_(self, TRUNK_GAIN)
        self._measure_out_dim()

    def forward(self, obs: Tensor) -> Tensor:
        """``[B, C, H, W] -> [B, features_dim]``."""
        return self.l1(self.c3(self.c2(self.attention(self.c1(obs)))))
