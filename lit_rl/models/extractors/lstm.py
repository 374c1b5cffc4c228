"""An LSTM memory, the standard recurrent baseline for partially observable tasks.

Reference: cleanrl ``ppo_atari_lstm.py`` (an encoder, then ``nn.LSTM``; the state is multiplied by
``1 - done`` before the step that starts an episode; orthogonal weights, zero biases).
"""

from __future__ import annotations

import itertools
from typing import Literal

import torch
from einops import rearrange
from jsonargparse.typing import PositiveInt
from torch import Tensor, nn

from lit_rl.models.extractors.base import MemoryExtractor, check_sequence_inputs
from lit_rl.models.extractors.mlp import encoder


class LSTM(MemoryExtractor):
    """``MLP`` encoder (optional), LayerNorm (optional), then an LSTM; the features are its outputs.

    Args:
        obs_shape: Observation shape (flattened).
        input_layers: Hidden widths of the tanh/ReLU encoder before the LSTM (``()``: none).
        activation: Encoder activation.
        hidden_size: LSTM state width (= ``out_dim``).
        num_layers: Stacked LSTM layers.
        seq_len: Training chunk length (see :class:`MemoryExtractor`).
        input_norm: LayerNorm on the LSTM's input. CartPole-like observations start near 0 (±0.05),
            so without it the LSTM's outputs start around 1e-3 and the policy head barely moves
            (measured here: entropy stayed at its maximum for 125k steps on StatelessCartPole);
            GTrXL gets the same effect from the LayerNorm in front of its attention.
        forget_bias: Initial bias of the forget gates (the other biases start at 0). cleanrl uses 0
            (forget gates start half open, so a cue fades as 0.5^t); 1.0 is Jozefowicz et al. (2015)'s
            advice for remembering over longer gaps.

    Memory: ``[B, 2, num_layers, hidden_size]``, the hidden and cell states.
    """

    def __init__(
        self,
        obs_shape: tuple[int, ...],
        *,
        input_layers: tuple[int, ...] = (64,),
        activation: Literal["tanh", "relu"] = "tanh",
        hidden_size: PositiveInt = 128,
        num_layers: PositiveInt = 1,
        seq_len: PositiveInt = 16,
        input_norm: bool = True,
        forget_bias: float = 0.0,
    ) -> None:
        super().__init__(obs_shape)
        self.seq_len = int(seq_len)
        self.memory_shape = (2, int(num_layers), int(hidden_size))
        self.encoder, in_dim = encoder(self.obs_shape, tuple(input_layers), activation)
        self.input_norm = nn.LayerNorm(in_dim) if input_norm else nn.Identity()
        self.lstm = nn.LSTM(in_dim, int(hidden_size), int(num_layers))
        for name, param in self.lstm.named_parameters():
            if name.startswith("bias"):
                nn.init.zeros_(param)
                if name.startswith("bias_ih"):  # gates in PyTorch's order: input, forget, cell, output
                    param.data[hidden_size : 2 * hidden_size] = float(forget_bias)
            else:
                nn.init.orthogonal_(param, 1.0)
        self._measure_out_dim()

    def forward(self, obs: Tensor, memory: Tensor, episode_start: Tensor) -> tuple[Tensor, Tensor]:
        """See :meth:`MemoryExtractor.forward`."""
        check_sequence_inputs(obs, memory, episode_start, self)
        T = episode_start.shape[0]
        x = rearrange(self.input_norm(self.encoder(obs.flatten(0, 1))), "(t b) e -> t b e", t=T)
        h, c = (rearrange(s, "b l d -> l b d").contiguous() for s in memory.unbind(1))
        # Run cuDNN/oneDNN over the stretches between episode starts; reset the state before each.
        # (T == 1 while acting: no split, and no device-to-host sync.)
        inner = torch.nonzero(episode_start[1:].any(1)).flatten().add(1).tolist() if T > 1 else []
        bounds = [0, *inner, T]
        outputs = []
        for a, b in itertools.pairwise(bounds):
            keep = rearrange((~episode_start[a]).to(x.dtype), "b -> 1 b 1")
            out, (h, c) = self.lstm(x[a:b], (h * keep, c * keep))
            outputs.append(out)
        return torch.cat(outputs), rearrange(torch.stack([h, c]), "s l b d -> b s l d")
