"""A multilayer perceptron for vector observations (cleanrl ``ppo.py``'s 64-64 tanh trunk)."""

from __future__ import annotations

import math
from typing import Literal

from torch import Tensor, nn

from lit_rl.models.extractors.base import FeatureExtractor
from lit_rl.models.init import orthogonal_init_

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


class MLP(FeatureExtractor):
    """Flatten, then ``Linear + activation`` per hidden layer.

    Args:
        obs_shape: Observation shape (flattened).
        hidden_sizes: Width of each hidden layer.
        activation: ``"tanh"`` or ``"relu"``.
    """

    def __init__(
        self,
        obs_shape: tuple[int, ...],
        *,
        hidden_sizes: tuple[int, ...] = (64, 64),
        activation: Literal["tanh", "relu"] = "tanh",
    ) -> None:
        super().__init__(obs_shape)
        if not hidden_sizes or any(h < 1 for h in hidden_sizes):
            raise ValueError(f"hidden_sizes={hidden_sizes}; expected one or more positive widths")
        layers: list[nn.Module] = [nn.Flatten()]
        in_dim = math.prod(self.obs_shape)
        for width in hidden_sizes:
            layers += [nn.Linear(in_dim, width), _ACTIVATIONS[activation]()]
            in_dim = width
        self.net = orthogonal_init_(nn.Sequential(*layers), math.sqrt(2.0))
        self._measure_out_dim()

    def forward(self, obs: Tensor) -> Tensor:
        """``[B, *obs_shape] -> [B, hidden_sizes[-1]]``."""
        return self.net(obs)


def encoder(
    obs_shape: tuple[int, ...], hidden_sizes: tuple[int, ...], activation: Literal["tanh", "relu"] = "tanh"
) -> tuple[nn.Module, int]:
    """An :class:`MLP` in front of another network, or just ``Flatten`` when ``hidden_sizes`` is empty.

    Returns:
        The module and its output width.
    """
    if not hidden_sizes:
        return nn.Flatten(), math.prod(obs_shape)
    mlp = MLP(obs_shape, hidden_sizes=tuple(hidden_sizes), activation=activation)
    return mlp, mlp.out_dim
