"""The feature-extractor contract every representation follows.

Borrowed from Stable-Baselines3's ``BaseFeaturesExtractor`` (``features_dim``, the dry-run
``n_flatten``): ``out_dim`` is measured on zeros, never hand-computed.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn


class FeatureExtractor(nn.Module, abc.ABC):
    """Maps float observations ``[B, *obs_shape]`` to features ``[B, out_dim]``.

    Subclasses take ``obs_shape`` as their first positional argument, keyword-only
    hyperparameters after it, build their layers, and then call :meth:`_measure_out_dim`.
    They receive observations already scaled to floats (the policy divides uint8 images by 255).
    """

    obs_shape: tuple[int, ...]
    out_dim: int

    def __init__(self, obs_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.obs_shape = tuple(int(d) for d in obs_shape)

    @torch.no_grad()
    def _measure_out_dim(self) -> int:
        """Set and return ``out_dim`` from a forward pass on one zero observation."""
        was_training = self.training
        self.eval()
        out = self(torch.zeros(1, *self.obs_shape))
        self.train(was_training)
        if out.dim() != 2:
            raise ValueError(f"{type(self).__name__} must return [B, out_dim], got shape {tuple(out.shape)}")
        self.out_dim = int(out.shape[1])
        return self.out_dim

    @abc.abstractmethod
    def forward(self, obs: Tensor) -> Tensor:
        """``[B, *obs_shape]`` float observations to ``[B, out_dim]`` features."""


@dataclass(frozen=True)
class Streams:
    """Features routed to the heads of an actor-critic. Shapes: each ``[B, D]``.

    Attributes:
        policy: Read by the actor.
        exploit: Read by the extrinsic value head.
        explore: Read by the intrinsic value head (RND).
    """

    policy: Tensor
    exploit: Tensor
    explore: Tensor


class StreamExtractor(FeatureExtractor):
    """An extractor with separate features for the policy and each value head (the explorative ViT).

    :meth:`forward` returns the policy stream, so a stream extractor also works where one feature
    vector is expected. Any other extractor feeds its one feature vector to every head.
    """

    @abc.abstractmethod
    def forward_streams(self, obs: Tensor) -> Streams:
        """``[B, *obs_shape]`` float observations to the three ``[B, out_dim]`` streams."""

    def forward(self, obs: Tensor) -> Tensor:
        return self.forward_streams(obs).policy


#: What YAML configures: a class path whose ``obs_shape`` the policy supplies.
ExtractorFactory = Callable[[tuple[int, ...]], FeatureExtractor]

#: A module placed inside a CNN, built from the channel count there; maps ``[B, C, H, W]`` to itself.
AttentionFactory = Callable[[int], nn.Module]


def require_image(obs_shape: tuple[int, ...], name: str, min_side: int) -> None:
    """Raise a one-line error if ``obs_shape`` is not a ``(C, H, W)`` image of at least ``min_side``."""
    from lit_rl.errors import ConfigError

    if len(obs_shape) != 3 or min(obs_shape[1:]) < min_side:
        raise ConfigError(
            f"{name} needs image observations (C, H, W) with H, W >= {min_side}, got obs_shape={tuple(obs_shape)}; "
            "use lit_rl.models.extractors.mlp.MLP for vector observations"
        )


class MemoryExtractor(FeatureExtractor):
    """A feature extractor with memory across the steps of an episode (LSTM, GTrXL).

    State is explicit and nothing is cached on ``self``: the caller keeps the memory of each env,
    passes it in and receives the next one. ``episode_start[t]`` marks observations that begin an
    episode; the memory is reset to :meth:`initial_memory` before them, also inside a sequence.

    Attributes:
        seq_len: Length of the sequence chunks PPO trains on (the memory recorded while acting is
            stored once per chunk).
        memory_shape: Shape of one env's memory.
    """

    seq_len: int
    memory_shape: tuple[int, ...]

    def initial_memory(self, batch_size: int, device: torch.device | str | None = None) -> Tensor:
        """The memory before an episode's first step: zeros ``[B, *memory_shape]``."""
        return torch.zeros(batch_size, *self.memory_shape, device=device)

    @torch.no_grad()
    def _measure_out_dim(self) -> int:
        was_training = self.training
        self.eval()
        out, _ = self(torch.zeros(1, 1, *self.obs_shape), self.initial_memory(1), torch.ones(1, 1, dtype=torch.bool))
        self.train(was_training)
        self.out_dim = int(out.shape[-1])
        return self.out_dim

    @abc.abstractmethod
    def forward(self, obs: Tensor, memory: Tensor, episode_start: Tensor) -> tuple[Tensor, Tensor]:
        """Features of a sequence and the memory after it.

        Shapes:
            obs: ``[T, B, *obs_shape]``; memory: ``[B, *memory_shape]`` (before step 0);
            episode_start: ``[T, B]`` bool. Returns features ``[T, B, out_dim]`` and the memory
            after step ``T - 1``, ``[B, *memory_shape]``.
        """


def check_sequence_inputs(obs: Tensor, memory: Tensor, episode_start: Tensor, extractor: MemoryExtractor) -> None:
    """Raise ``ValueError`` naming the mismatch if the inputs of a memory extractor disagree."""
    T, B = episode_start.shape if episode_start.dim() == 2 else (None, None)
    if T is None or episode_start.dtype != torch.bool:
        raise ValueError(
            f"episode_start must be a [T, B] bool tensor, got {tuple(episode_start.shape)} {episode_start.dtype}"
        )
    if tuple(obs.shape) != (T, B, *extractor.obs_shape):
        raise ValueError(f"obs has shape {tuple(obs.shape)}, expected {(T, B, *extractor.obs_shape)}")
    if tuple(memory.shape) != (B, *extractor.memory_shape):
        raise ValueError(f"memory has shape {tuple(memory.shape)}, expected {(B, *extractor.memory_shape)}")
