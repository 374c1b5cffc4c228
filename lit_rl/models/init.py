"""Orthogonal initialisation with the gains of the PPO literature (cleanrl ``layer_init``)."""

from __future__ import annotations

import math

from torch import nn

TRUNK_GAIN = math.sqrt(2.0)
ACTOR_GAIN = 0.01
CRITIC_GAIN = 1.0


def orthogonal_init_(module: nn.Module, gain: float, bias: float = 0.0) -> nn.Module:
    """Orthogonal weights with ``gain`` and constant biases for every Linear/Conv in ``module``."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            nn.init.orthogonal_(layer.weight, gain)
            if layer.bias is not None:
                nn.init.constant_(layer.bias, bias)
    return module
