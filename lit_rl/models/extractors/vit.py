"""Vision Transformer trunk with explorative and exploitative tokens (PPO + RND).

The design of
cangozpi/Explorative-Attention-ViT-for-Model-Predictive-Exploration-in-Reinforcement-Learning (built on
lucidrains/vit-pytorch; ViT: Dosovitskiy et al., 2021), without its defects (README, "Exploration: the
explorative-attention ViT with RND"): here every pass gets its own token and the
positional embedding, and both tokens receive gradients.

Patches of ``P × P`` pixels of all ``C`` frames are embedded by ``LayerNorm(P²C) → Linear(P²C → D) →
LayerNorm(D)`` (vit-pytorch's embedding; timm's ``PatchEmbed`` is a convolution without the first
norm), a learned positional embedding is added, and the sequence runs through timm's pre-norm
``Block``s and a final ``LayerNorm``. Token modes:

- ``separate`` (the original design): the shared transformer encodes ``[explore; patches] + pos`` and
  ``[exploit; patches] + pos``; the tokens never see each other. Both passes run as one batch of
  ``2B`` sequences (the same arithmetic as two calls).
- ``joint``: one sequence ``[explore; exploit; patches] + pos``, one pass (cheaper; the tokens attend to
  each other).
- ``cls``: a plain ViT with one class token, the control; all streams read it.

The policy reads ``z_explore + z_exploit`` (``aggregate="sum"``, the original README) or their mean
(the original code). Attention weights of every block are exposed for interpretation: with
``record_attn = True`` they pass through ``probes[i]`` (hook it, see
:func:`lit_rl.interpret.hooks.record_attention`), or :meth:`ViTExtractor.attention_maps` returns them.
"""

from __future__ import annotations

from typing import Literal

import torch
from einops import pack, rearrange, repeat, unpack
from einops.layers.torch import Rearrange
from jsonargparse.typing import PositiveInt
from torch import Tensor, nn

from lit_rl.errors import ConfigError
from lit_rl.models.extractors.base import StreamExtractor, Streams, require_image

TokenMode = Literal["separate", "joint", "cls"]
Aggregate = Literal["sum", "mean"]


def _timm_block() -> type[nn.Module]:
    try:
        from timm.models.vision_transformer import Block
    except ImportError as err:  # timm is a core dependency; a broken install should still say what to do
        raise ImportError("ViTExtractor needs timm: pip install 'timm>=1.0,<2'") from err
    return Block


def attention_weights(block: nn.Module, x: Tensor) -> Tensor:
    """Softmax weights of a timm ``Block``'s attention for the block input ``x`` ``[B, K, D]``.

    Recomputed from the block's own ``norm1`` and ``qkv`` (timm's fused kernel does not return them).
    Returns ``[B, heads, K (query), K (key)]``; each row sums to 1.
    """
    attn = block.attn
    q, k, _ = rearrange(attn.qkv(block.norm1(x)), "b k (three h d) -> three b h k d", three=3, h=attn.num_heads)
    q, k = attn.q_norm(q), attn.k_norm(k)
    return torch.softmax((q * attn.scale) @ k.transpose(-2, -1), dim=-1)


class _WeightsProbe(nn.Module):
    """Identity on attention weights: the place to hook when ``record_attn`` is on."""

    def forward(self, weights: Tensor) -> Tensor:
        return weights


class ViTExtractor(StreamExtractor):
    """ViT over stacked frames with ``explore_token`` / ``exploit_token`` (see the module docstring).

    Args:
        obs_shape: ``(C, H, W)`` with ``H`` and ``W`` multiples of ``patch_size``.
        patch_size: Side of the square patches (6 on 84×84: 196 patches of 144 values with C = 4).
        embed_dim: Token width ``D``.
        depth: Number of transformer blocks.
        num_heads: Attention heads (head width ``D / num_heads``).
        mlp_dim: Hidden width of each block's MLP (GELU).
        dropout: Dropout after the embedding, on the attention weights and in each block's projections.
            Rollouts always run without it; PPO's ``dropout_in_update`` decides the update.
        token_mode: ``separate``, ``joint`` or ``cls`` (module docstring).
        aggregate: The policy stream, ``sum`` or ``mean`` of ``z_explore`` and ``z_exploit``.
        record_attn: Route each block's attention weights through ``probes[i]`` on every forward.

    Attributes:
        num_prefix_tokens: Tokens before the patches in one sequence (1, 2 or 1).
        grid_size: Patches per side ``(H / P, W / P)``.
    """

    def __init__(
        self,
        obs_shape: tuple[int, ...],
        *,
        patch_size: PositiveInt = 6,
        embed_dim: PositiveInt = 256,
        depth: PositiveInt = 3,
        num_heads: PositiveInt = 8,
        mlp_dim: PositiveInt = 1024,
        dropout: float = 0.1,
        token_mode: TokenMode = "separate",
        aggregate: Aggregate = "sum",
        record_attn: bool = False,
    ) -> None:
        super().__init__(obs_shape)
        require_image(self.obs_shape, "ViTExtractor", min_side=patch_size)
        channels, height, width = self.obs_shape
        if height % patch_size or width % patch_size:
            raise ConfigError(
                f"ViTExtractor patch_size={patch_size} does not divide the {height}×{width} observation; "
                f"use a divisor of both sides (6 for 84×84)"
            )
        if embed_dim % num_heads:
            raise ConfigError(f"ViTExtractor embed_dim={embed_dim} is not a multiple of num_heads={num_heads}")
        if token_mode not in ("separate", "joint", "cls"):
            raise ConfigError(f"ViTExtractor token_mode={token_mode!r}; expected 'separate', 'joint' or 'cls'")
        if aggregate not in ("sum", "mean"):
            raise ConfigError(f"ViTExtractor aggregate={aggregate!r}; expected 'sum' or 'mean'")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"ViTExtractor dropout={dropout}; expected a value in [0, 1)")
        self.token_mode, self.aggregate, self.record_attn = token_mode, aggregate, record_attn
        self.grid_size = (height // patch_size, width // patch_size)
        self.num_prefix_tokens = 2 if token_mode == "joint" else 1
        patch_dim = patch_size * patch_size * channels
        self.patch_embed = nn.Sequential(
            Rearrange("b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=patch_size, p2=patch_size),
            nn.LayerNorm(patch_dim),
            nn.Linear(patch_dim, embed_dim),
            nn.LayerNorm(embed_dim),
        )
        num_tokens = self.num_prefix_tokens + self.grid_size[0] * self.grid_size[1]
        self.pos_embed = nn.Parameter(torch.randn(1, num_tokens, embed_dim) * 0.02)
        if token_mode == "cls":
            self.cls_token = nn.Parameter(torch.randn(1, 1, embed_dim) * 0.02)
        else:
            self.explore_token = nn.Parameter(torch.randn(1, 1, embed_dim) * 0.02)
            self.exploit_token = nn.Parameter(torch.randn(1, 1, embed_dim) * 0.02)
        self.embed_drop = nn.Dropout(dropout)
        block = _timm_block()
        self.blocks = nn.ModuleList(
            block(embed_dim, num_heads, mlp_ratio=mlp_dim / embed_dim, proj_drop=dropout, attn_drop=dropout)
            for _ in range(depth)
        )
        self.probes = nn.ModuleList(_WeightsProbe() for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim)
        self._measure_out_dim()

    def _sequences(self, obs: Tensor) -> Tensor:
        """Token sequences with positions: ``[S·B, K, D]`` (``S = 2`` passes in ``separate`` mode)."""
        patches = self.patch_embed(obs)
        batch = patches.shape[0]
        if self.token_mode == "joint":
            explore, exploit = (repeat(t, "1 1 d -> b d", b=batch) for t in (self.explore_token, self.exploit_token))
            tokens, _ = pack([explore, exploit, patches], "b * d")
            return tokens + self.pos_embed
        if self.token_mode == "cls":
            prefixes = [self.cls_token]
        else:
            prefixes = [self.explore_token, self.exploit_token]
        passes = [pack([repeat(t, "1 1 d -> b d", b=batch), patches], "b * d")[0] for t in prefixes]
        return torch.cat(passes) + self.pos_embed

    def forward_tokens(self, obs: Tensor) -> Tensor:
        """Final-normed tokens ``[S, B, K, D]``: ``S = 2`` (explore pass, exploit pass) in ``separate``
        mode, else 1; ``K = num_prefix_tokens + H/P · W/P``."""
        x = self.embed_drop(self._sequences(obs))
        for block, probe in zip(self.blocks, self.probes, strict=True):
            if self.record_attn:
                probe(rearrange(attention_weights(block, x), "(s b) ... -> s b ...", b=obs.shape[0]))
            x = block(x)
        return rearrange(self.norm(x), "(s b) k d -> s b k d", b=obs.shape[0])

    def forward_streams(self, obs: Tensor) -> Streams:
        tokens = self.forward_tokens(obs)
        if self.token_mode == "cls":
            z = tokens[0, :, 0]
            return Streams(policy=z, exploit=z, explore=z)
        if self.token_mode == "joint":
            num_patches = self.grid_size[0] * self.grid_size[1]
            z_explore, z_exploit, _ = unpack(tokens[0], [[], [], [num_patches]], "b * d")
        else:
            z_explore, z_exploit = tokens[0, :, 0], tokens[1, :, 0]
        policy = z_explore + z_exploit
        if self.aggregate == "mean":
            policy = policy / 2
        return Streams(policy=policy, exploit=z_exploit, explore=z_explore)

    @torch.no_grad()
    def attention_maps(self, obs: Tensor) -> list[Tensor]:
        """Each block's attention weights for ``obs``: a list of ``depth`` tensors ``[S, B, heads, K, K]``."""
        maps: list[Tensor] = []
        handles = [probe.register_forward_hook(lambda m, a, out: maps.append(out)) for probe in self.probes]
        previous, self.record_attn = self.record_attn, True
        try:
            self.forward_tokens(obs)
        finally:
            self.record_attn = previous
            for handle in handles:
                handle.remove()
        return maps
