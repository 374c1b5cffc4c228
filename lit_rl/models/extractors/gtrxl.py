"""Gated Transformer-XL memory (Parisotto et al., 2019, "Stabilizing Transformers for RL").

Follows Parisotto et al. (2020), "Stabilizing Transformers for Reinforcement Learning", and RLlib's ``GTrXLNet``
(``ray/rllib/models/torch/attention_net.py``): per unit, Transformer-XL relative attention of the
current positions over ``[stopgrad(memory); current]`` after a LayerNorm, ``ReLU(Linear)`` on its
output, a GRU gate, a LayerNorm'd position-wise MLP and a second GRU gate; the memory of a unit is
its input stream; memory slots before an episode's start are zero vectors (RLlib resets the state to
zeros), and they are attended as such.

Deviation from reference: RLlib lets position ``i`` of a training chunk see all ``M`` memory slots
and every earlier chunk position (``M + i`` keys) but only ``M`` when acting step by step, so it
trains a different function from the one that acted. Here every position sees exactly the ``M``
positions before it and itself (a band mask), when acting and when training, so a chunk run with
its recorded memory reproduces the step-by-step outputs. Episode starts inside a chunk are exact too:
keys from before the start are replaced by the zero vector's keys and values.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from jsonargparse.typing import PositiveFloat, PositiveInt
from torch import Tensor, nn

from lit_rl.errors import ConfigError
from lit_rl.models.extractors.base import MemoryExtractor, check_sequence_inputs
from lit_rl.models.extractors.mlp import encoder


def sinusoid_table(length: int, dim: int) -> Tensor:
    """Transformer-XL's relative position encodings ``R_δ`` for ``δ = 0 .. length - 1``: ``[length, dim]``."""
    inv_freq = 1.0 / (10_000 ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    angles = torch.arange(length, dtype=torch.float64)[:, None] * inv_freq[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)[:, :dim].float()


class GRUGate(nn.Module):
    """``g(x, y) = (1 − z)⊙x + z⊙ĥ`` with ``r = σ(yW_r + xU_r)``, ``z = σ(yW_z + xU_z − b_g)``,
    ``ĥ = tanh(yW_h + (r⊙x)U_h)``; ``x`` is the residual stream, ``y`` the sublayer output.

    ``b_g`` (learned, initialised to ``bias``) > 0 starts the gate close to the identity ``g ≈ x``.
    """

    def __init__(self, dim: int, bias: float = 2.0) -> None:
        super().__init__()
        self.w = nn.Linear(dim, 3 * dim, bias=False)  # W_r | W_z | W_h
        self.u = nn.Linear(dim, 2 * dim, bias=False)  # U_r | U_z
        self.u_h = nn.Linear(dim, dim, bias=False)
        self.bias = nn.Parameter(torch.full((dim,), float(bias)))
        for layer in (self.w, self.u, self.u_h):
            nn.init.xavier_uniform_(layer.weight)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Shapes: ``x``, ``y``, output ``[..., dim]``."""
        wr, wz, wh = self.w(y).chunk(3, dim=-1)
        ur, uz = self.u(x).chunk(2, dim=-1)
        r = torch.sigmoid(wr + ur)
        z = torch.sigmoid(wz + uz - self.bias)
        h = torch.tanh(wh + self.u_h(r * x))
        return x + z * (h - x)


class RelativeAttention(nn.Module):
    """Multi-head Transformer-XL attention of ``T`` positions over the ``M`` before each and itself.

    Score of query ``i`` and key ``j`` at distance ``δ = i − j``:
    ``((q_i + u)·k_j + (q_i + v)·W_R R_δ) / √d``; keys outside the band or masked as before the
    episode get the zero vector's key and value (see the module docstring).
    """

    def __init__(self, dim: int, heads: int, head_dim: int, memory_length: int) -> None:
        super().__init__()
        self.heads, self.head_dim, self.memory_length = heads, head_dim, memory_length
        self.norm = nn.LayerNorm(dim)
        self.query = nn.Linear(dim, heads * head_dim, bias=False)
        self.key_value = nn.Linear(dim, 2 * heads * head_dim, bias=False)
        self.pos_proj = nn.Linear(dim, heads * head_dim, bias=False)
        self.u = nn.Parameter(nn.init.xavier_uniform_(torch.empty(heads, head_dim)))
        self.v = nn.Parameter(nn.init.xavier_uniform_(torch.empty(heads, head_dim)))
        self.out = nn.Linear(heads * head_dim, dim, bias=False)
        self.register_buffer("pos_table", sinusoid_table(memory_length + 1, dim), persistent=False)

    def forward(self, x: Tensor, memory: Tensor, before_start: Tensor) -> Tensor:
        """``ReLU(Linear(attention))`` of the current positions.

        Shapes:
            x: ``[B, T, D]`` current positions; memory: ``[B, M, D]``;
            before_start: ``[B, T, M + T]`` bool, key ``j`` precedes query ``i``'s episode.
            Returns ``[B, T, D]``.
        """
        T, M = x.shape[1], self.memory_length
        z = self.norm(torch.cat([memory.detach(), x], dim=1))
        q = rearrange(self.query(z[:, M:]), "b t (h d) -> b h t d", h=self.heads)
        k, v = rearrange(self.key_value(z), "b j (s h d) -> s b h j d", s=2, h=self.heads)
        k0, v0 = rearrange(self.key_value(self.norm(x.new_zeros(x.shape[-1]))), "(s h d) -> s h d", s=2, h=self.heads)
        qu, qv = q + self.u[:, None], q + self.v[:, None]
        content = torch.einsum("bhtd,bhjd->bhtj", qu, k)
        content_zero = torch.einsum("bhtd,hd->bht", qu, k0)[..., None]
        before = before_start[:, None]
        content = torch.where(before, content_zero, content)
        pos = rearrange(self.pos_proj(self.pos_table), "r (h d) -> h r d", h=self.heads)
        pos_score = torch.einsum("bhtd,hrd->bhtr", qv, pos)  # [B, H, T, M + 1] by distance
        i, j = torch.arange(T, device=x.device)[:, None], torch.arange(M + T, device=x.device)[None, :]
        distance = M + i - j  # query i sits at index M + i of [memory; current]
        in_band = (distance >= 0) & (distance <= M)
        pos_score = pos_score.gather(-1, distance.clamp(0, M).expand(*pos_score.shape[:2], T, M + T))
        score = (content + pos_score) / math.sqrt(self.head_dim)
        attn = torch.softmax(score.masked_fill(~in_band, float("-inf")), dim=-1)
        out = torch.einsum("bhtj,bhjd->bhtd", attn.masked_fill(before, 0.0), v)
        out = out + attn.masked_fill(~before, 0.0).sum(-1, keepdim=True) * v0[None, :, None, :]
        return F.relu(self.out(rearrange(out, "b h t d -> b t (h d)")))


class GTrXLUnit(nn.Module):
    """``E' = gate(E, Attention(E, memory))``; ``out = gate(E', MLP(LN(E')))``."""

    def __init__(self, dim: int, heads: int, head_dim: int, mlp_dim: int, memory_length: int, gate_bias: float) -> None:
        super().__init__()
        self.attention = RelativeAttention(dim, heads, head_dim, memory_length)
        self.attention_gate = GRUGate(dim, gate_bias)
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.ReLU(), nn.Linear(mlp_dim, dim), nn.ReLU())
        self.mlp_gate = GRUGate(dim, gate_bias)

    def forward(self, x: Tensor, memory: Tensor, before_start: Tensor) -> Tensor:
        e = self.attention_gate(x, self.attention(x, memory, before_start))
        return self.mlp_gate(e, self.mlp(self.norm(e)))


class GTrXL(MemoryExtractor):
    """Observation encoder, ``Linear`` to width ``dim``, then ``num_units`` GTrXL units.

    Args:
        obs_shape: Observation shape (flattened).
        input_layers: Hidden widths of the encoder in front (RLlib: 256-256 tanh; ``()``: none).
        activation: Encoder activation.
        num_units: Transformer units ``L``.
        dim: Width ``D`` of the residual stream (= ``out_dim``).
        heads: Attention heads.
        head_dim: Width of each head.
        mlp_dim: Hidden width ``P`` of the position-wise MLP.
        memory_length: Positions ``M`` each position attends to before itself.
        seq_len: Training chunk length (see :class:`MemoryExtractor`).
        gate_bias: Initial ``b_g`` of every GRU gate.

    Memory: ``[B, num_units, memory_length, dim]``, each unit's last ``M`` inputs.
    """

    def __init__(
        self,
        obs_shape: tuple[int, ...],
        *,
        input_layers: tuple[int, ...] = (256, 256),
        activation: Literal["tanh", "relu"] = "tanh",
        num_units: PositiveInt = 1,
        dim: PositiveInt = 64,
        heads: PositiveInt = 1,
        head_dim: PositiveInt = 32,
        mlp_dim: PositiveInt = 32,
        memory_length: PositiveInt = 50,
        seq_len: PositiveInt = 20,
        gate_bias: PositiveFloat = 2.0,
    ) -> None:
        super().__init__(obs_shape)
        for name, value in (("memory_length", memory_length), ("seq_len", seq_len)):
            if int(value) < 1:
                raise ConfigError(f"GTrXL {name}={value}; expected a positive number of steps")
        self.seq_len, self.memory_length = int(seq_len), int(memory_length)
        self.memory_shape = (int(num_units), self.memory_length, int(dim))
        self.encoder, in_dim = encoder(self.obs_shape, tuple(input_layers), activation)
        self.embed = nn.Linear(in_dim, int(dim))
        self.units = nn.ModuleList(
            GTrXLUnit(int(dim), int(heads), int(head_dim), int(mlp_dim), self.memory_length, float(gate_bias))
            for _ in range(int(num_units))
        )
        self._measure_out_dim()

    def forward(self, obs: Tensor, memory: Tensor, episode_start: Tensor) -> tuple[Tensor, Tensor]:
        """See :meth:`MemoryExtractor.forward`."""
        check_sequence_inputs(obs, memory, episode_start, self)
        T, M = episode_start.shape[0], self.memory_length
        x = rearrange(self.embed(self.encoder(obs.flatten(0, 1))), "(t b) d -> b t d", t=T)
        # Index of the latest episode start at or before each step (-M - 1: none in this sequence).
        steps = torch.arange(T, device=obs.device)[:, None]
        last_start = torch.where(episode_start, steps, -M - 1).cummax(dim=0).values.T  # [B, T]
        before_start = torch.arange(M + T, device=obs.device) < (M + last_start)[..., None]  # [B, T, M + T]
        keep = ~before_start[:, -1, T:, None]  # the memory after the sequence: its last M inputs
        new_memory = []
        for unit, unit_memory in zip(self.units, memory.unbind(1), strict=True):
            new_memory.append(torch.cat([unit_memory, x], dim=1)[:, T:] * keep)
            x = unit(x, unit_memory, before_start)
        return rearrange(x, "b t d -> t b d"), torch.stack(new_memory, dim=1).detach()
