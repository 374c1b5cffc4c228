"""The small CNN of DQN 2013 / A3C (Mnih et al., 2013, 2016), the backbone of the axis-attention study
"Revisiting Self-Attention in Deep Reinforcement Learning: A Dimensional Perspective"
(JianxiaoSun/self-attention-rl; README, "The study's agents").

``c1: 16·8×8/4 → c2: 32·4×4/2 → l1: Linear(2592 → 256)``, ReLU after each; 676,144 parameters on
``4×84×84`` inputs. Not the Nature CNN. The study's attention agents put one module after ``ReLU(c1)``
(``attention``); without it this is the study's NA agent.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lit_rl.models.extractors.base import AttentionFactory, FeatureExtractor, require_image
from lit_rl.models.init import TRUNK_GAIN, orthogonal_init_


class SmallCNN(FeatureExtractor):
    """The study's trunk; actor and critic heads attach to its 256 features.

    Args:
        obs_shape: ``(C, H, W)``, e.g. ``(4, 84, 84)``.
        features_dim: Width of ``l1`` (256 in the study).
        attention: Module applied to ``F = ReLU(c1(x))`` (``[B, 16, 20, 20]`` on 84×84), built from
            the channel count, e.g. :class:`lit_rl.models.extractors.axial_attention.CWRA`;
            ``None`` for the study's NA agent.
    """

    def __init__(
        self, obs_shape: tuple[int, ...], *, features_dim: int = 256, attention: AttentionFactory | None = None
    ) -> None:
        super().__init__(obs_shape)
        require_image(self.obs_shape, "SmallCNN", min_side=16)
        self.c1 = nn.Sequential(nn.Conv2d(self.obs_shape[0], 16, 8, stride=4), nn.ReLU())
        self.attention = attention(16) if attention is not None else nn.Identity()
        self.c2 = nn.Sequential(nn.Conv2d(16, 32, 4, stride=2), nn.ReLU(), nn.Flatten())
        with torch.no_grad():
            n_flatten = self.c2(self.attention(self.c1(torch.zeros(1, *self.obs_shape)))).shape[1]
        self.l1 = nn.Sequential(nn.Linear(n_flatten, features_dim), nn.ReLU())
        orthogonal_init_(self, TRUNK_GAIN)
        self._measure_out_dim()

    def forward(self, obs: Tensor) -> Tensor:
        """``[B, C, H, W] -> [B, features_dim]``."""
        return self.l1(self.c2(self.attention(self.c1(obs))))
