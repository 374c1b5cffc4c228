"""Axis-specific self-attention over a CNN feature map (the study's SWA, CWRA, CWCA, CWRCA).

After "Revisiting Self-Attention in Deep Reinforcement Learning: A Dimensional Perspective" and its code
(JianxiaoSun/self-attention-rl); README, "The study's agents: axis-specific self-attention". For ``F`` of shape
``[B, C, H, W]``: ``Q, K, V`` are 1×1 convolutions ``C → C`` with bias (no head split, output
projection, norm, dropout or positional encoding in the study), the softmax runs over the key index,
and the output is the plain residual ``F + Y``. The key projection's bias adds the same amount to every
logit of a query, which the softmax cancels: it never receives a gradient (in the study's code too) and
is kept only so the modules have the study's 816 parameters.

| module | tokens                      | features      | scale | mixes        |
| ------ | --------------------------- | ------------- | ----- | ------------ |
| SWA    | the H rows of each channel  | a row's W     | √W    | along height |
| CWRA   | the H pixels of each column | the C channels| √C    | along height |
| CWCA   | the W pixels of each row    | the C channels| √C    | along width  |
| CWRCA  | CWRA + CWCA with the same Q, K, V and two softmaxes              | both axes    |

Options beyond the study, off by default: ``heads`` splits each token's feature axis into groups with
their own softmax (W for SWA, C for the others); ``gate`` adds the original's unused scalars α (init 0)
and β (init 1): ``"alpha"`` gives ``α·Y + F``, ``"beta"`` ``Y + β·F``, ``"alpha_beta"`` ``α·Y + β·F``.

Interpretation without global switches: ``forward(x, return_maps=True)`` returns the softmax weights
and ``Y``; with ``record_attn = True`` the same :class:`AttentionMaps` pass through the ``maps``
submodule, where a forward hook can capture them (see :func:`lit_rl.interpret.hooks.record_attention`).
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from jsonargparse.typing import PositiveInt
from torch import Tensor, nn

from lit_rl.errors import ConfigError
from lit_rl.models.init import TRUNK_GAIN, orthogonal_init_

Gate = Literal["none", "alpha", "beta", "alpha_beta"]


@dataclass(frozen=True)
class AttentionMaps:
    """What one attention module computed, for interpretation.

    Attributes:
        weights: Softmax weights by token axis, ``"height"`` and/or ``"width"``; heads ``G``.
            SWA ``height``: ``[B, C, G, H, H]``; CWRA ``height``: ``[B, G, W, H, H]``;
            CWCA ``width``: ``[B, G, H, W, W]``; CWRCA has both of the latter two.
            The last two axes are (query token, key token); each row sums to 1.
        output: The attention output ``Y`` (before the residual), ``[B, C, H, W]``.
    """

    weights: dict[str, Tensor]
    output: Tensor


class _MapsProbe(nn.Module):
    """Identity on :class:`AttentionMaps`: the place to hook when ``record_attn`` is on."""

    def forward(self, maps: AttentionMaps) -> AttentionMaps:
        return maps


def _attend(q: Tensor, k: Tensor, v: Tensor, scale: float) -> tuple[Tensor, Tensor]:
    """Softmax attention over the second-to-last axis: ``[..., K, D] -> [..., K, D]`` and weights ``[..., K, K]``.

    Explicit rather than ``scaled_dot_product_attention``: with 20 tokens of 16 features the fused
    kernel is no faster on CPUs, and this path yields the weights for interpretation.
    """
    # Batched matmuls on CPU fall back to one GEMM per matrix on strided inputs (forward and
    # backward): make both the inputs and the incoming gradient contiguous once instead.
    q, k, v = (q * scale).contiguous(), k.contiguous(), v.contiguous()  # scaling q: K·D, not K·K, products
    weights = torch.softmax(torch.matmul(q, k.transpose(-2, -1)), dim=-1)
    return _ContiguousGrad.apply(torch.matmul(weights, v)), weights


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward makes the gradient contiguous."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return x

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad.contiguous()


class AxialSelfAttention(nn.Module, abc.ABC):
    """Shared machinery: Q/K/V projections, the residual (optionally gated) and the maps.

    Args:
        channels: ``C`` of the feature map.
        heads: Groups of the token feature axis, each with its own softmax (1 in the study).
        gate: Residual form, see the module docstring (``"none"`` in the study: ``F + Y``).
        record_attn: Route :class:`AttentionMaps` through ``self.maps`` on every forward.
    """

    def __init__(
        self, channels: PositiveInt, *, heads: PositiveInt = 1, gate: Gate = "none", record_attn: bool = False
    ) -> None:
        super().__init__()
        channels, heads = int(channels), int(heads)
        if channels < 1 or heads < 1:
            raise ConfigError(f"{type(self).__name__}: channels={channels}, heads={heads}; expected positive integers")
        self.channels, self.heads, self.gate = channels, heads, gate
        if self.heads_split_channels:
            self._head_width(channels, "channel")  # fail at construction, not at the first forward
        self.record_attn = record_attn
        self.query = nn.Conv2d(channels, channels, 1)
        self.key = nn.Conv2d(channels, channels, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        orthogonal_init_(self, TRUNK_GAIN)
        self.alpha = nn.Parameter(torch.zeros(())) if gate in ("alpha", "alpha_beta") else None
        self.beta = nn.Parameter(torch.ones(())) if gate in ("beta", "alpha_beta") else None
        self.maps = _MapsProbe()

    #: Heads split the channels (channel-wise attention) rather than the width (SWA).
    heads_split_channels = True

    def _head_width(self, size: int, axis: str) -> int:
        """Features per head along ``axis`` of ``size``; a clear error if ``heads`` does not divide it."""
        if size % self.heads:
            raise ConfigError(f"{type(self).__name__}: heads={self.heads} must divide the {axis} size {size}")
        return size // self.heads

    def _project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``Q, K, V`` ``[B, C, H, W]``: each 1×1 convolution as one GEMM over the pixels.

        A matrix product over a channels-last view is several times cheaper on CPUs than a 1×1
        convolution (forward and backward); the parameters stay the study's three 1×1 convs.
        """
        pixels = rearrange(x, "b c h w -> b h w c")
        return tuple(
            rearrange(F.linear(pixels, conv.weight.flatten(1), conv.bias), "b h w c -> b c h w")
            for conv in (self.query, self.key, self.value)
        )

    @abc.abstractmethod
    def mix(self, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """``Y`` ``[B, C, H, W]`` from ``Q, K, V`` ``[B, C, H, W]``, and the softmax weights by token axis."""

    def forward(self, x: Tensor, return_maps: bool = False) -> Tensor | tuple[Tensor, AttentionMaps]:
        """``F [B, C, H, W] -> F̂ [B, C, H, W]`` (and the :class:`AttentionMaps` if ``return_maps``)."""
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"{type(self).__name__} expects [B, {self.channels}, H, W], got {tuple(x.shape)}")
        y, weights = self.mix(*self._project(x))
        y_term = y if self.alpha is None else self.alpha * y
        out = y_term + (x if self.beta is None else self.beta * x)
        if not (return_maps or self.record_attn):
            return out
        maps = self.maps(AttentionMaps(weights, y))
        return (out, maps) if return_maps else out

    def extra_repr(self) -> str:
        return f"channels={self.channels}, heads={self.heads}, gate={self.gate!r}"


class SWA(AxialSelfAttention):
    """Spatial-wise attention: per channel, the H rows attend to each other over their W values (÷√W)."""

    heads_split_channels = False

    def mix(self, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        d = self._head_width(q.shape[-1], "width")
        q, k, v = (rearrange(t, "b c h (g d) -> b c g h d", g=self.heads) for t in (q, k, v))
        y, weights = _attend(q, k, v, 1.0 / math.sqrt(d))
        return rearrange(y, "b c g h d -> b c h (g d)"), {"height": weights}


#: einops patterns of channel-wise attention: tokens along one spatial axis, channels as features.
_CHANNEL_WISE = {
    "height": ("b (g d) h w -> b g w h d", "b g w h d -> b (g d) h w"),  # per column, H tokens
    "width": ("b (g d) h w -> b g h w d", "b g h w d -> b (g d) h w"),  # per row, W tokens
}


def _channel_wise(module: AxialSelfAttention, q: Tensor, k: Tensor, v: Tensor, axis: str) -> tuple[Tensor, Tensor]:
    """Attention along ``axis`` (``"height"`` or ``"width"``) over the channels of each head (÷√(C/G))."""
    scale = 1.0 / math.sqrt(module._head_width(module.channels, "channel"))
    into_tokens, back = _CHANNEL_WISE[axis]
    q, k, v = (rearrange(t, into_tokens, g=module.heads) for t in (q, k, v))
    y, weights = _attend(q, k, v, scale)
    return rearrange(y, back), weights


class CWRA(AxialSelfAttention):
    """Channel-wise row attention: per column, the H pixels attend along the height over C (÷√C)."""

    def mix(self, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        y, weights = _channel_wise(self, q, k, v, "height")
        return y, {"height": weights}


class CWCA(AxialSelfAttention):
    """Channel-wise column attention: per row, the W pixels attend along the width over C (÷√C)."""

    def mix(self, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        y, weights = _channel_wise(self, q, k, v, "width")
        return y, {"width": weights}


class CWRCA(AxialSelfAttention):
    """CWRA + CWCA from the same Q, K, V with two separate softmaxes: ``Y = Y_height + Y_width``."""

    def mix(self, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        y_height, w_height = _channel_wise(self, q, k, v, "height")
        y_width, w_width = _channel_wise(self, q, k, v, "width")
        return y_height + y_width, {"height": w_height, "width": w_width}
