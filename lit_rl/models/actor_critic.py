"""Actor-critic over a swappable feature extractor, for discrete actions.

Reference: cleanrl ``ppo_atari.py`` (``Agent``): shared trunk, ``Linear`` actor and critic heads,
orthogonal init with gains √2 / 0.01 / 1.0, inputs scaled by 1/255.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lit_rl.errors import ConfigError
from lit_rl.models.extractors.base import ExtractorFactory, MemoryExtractor
from lit_rl.models.init import ACTOR_GAIN, CRITIC_GAIN, orthogonal_init_


@dataclass(frozen=True)
class PolicyOutput:
    """What the collector records per step. Shapes: ``[B]``; ``memory``: ``[B, *memory_shape]``,
    the memory after this step (``None`` without a memory extractor)."""

    action: Tensor
    log_prob: Tensor
    value: Tensor
    memory: Tensor | None = None


def categorical_log_prob(logits: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
    """Log-probabilities of ``actions`` and entropies of the categorical given by ``logits``.

    Computed in float32 whatever the autocast dtype of ``logits``.

    Shapes:
        logits: ``[B, A]``; actions: ``[B]`` int64; returns two ``[B]`` tensors.
    """
    log_p = F.log_softmax(logits.float(), dim=-1)
    entropy = -(log_p.exp() * log_p).sum(-1)
    return log_p.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1), entropy


class ActorCritic(nn.Module):
    """Extractor + ``actor_head`` (logits) + ``critic_head`` (state value).

    Args:
        obs_shape: Observation shape; ``uint8`` observations are scaled by 1/255 here, once.
        num_actions: Number of discrete actions.
        extractor: Factory that builds the trunk from ``obs_shape``.
        shared_extractor: Actor and critic share one trunk (cleanrl ``ppo_atari.py``); ``False``
            builds a second trunk for the critic (cleanrl ``ppo.py``, SB3 ``MlpPolicy``).
        channels_last: Keep image activations in channels-last memory format (faster convolutions
            on CPUs and tensor cores; numerically the same layers).

    With a :class:`MemoryExtractor` (``recurrent``), every method also takes the memory before the
    step and the ``episode_start`` flags; :meth:`act` returns the memory after the step and
    :meth:`evaluate` runs whole sequences ``[T, B, ...]``.
    """

    def __init__(
        self,
        obs_shape: tuple[int, ...],
        num_actions: int,
        extractor: ExtractorFactory,
        *,
        shared_extractor: bool = True,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        self.obs_shape = tuple(obs_shape)
        self.extractor = extractor(self.obs_shape)
        self.recurrent = isinstance(self.extractor, MemoryExtractor)
        if self.recurrent and not shared_extractor:
            raise ConfigError(
                f"shared_extractor=False with the memory extractor {type(self.extractor).__name__}; "
                "memory extractors need shared_extractor=True (one memory per env)"
            )
        self.critic_extractor = None if shared_extractor else extractor(self.obs_shape)
        self.actor_head = orthogonal_init_(nn.Linear(self.extractor.out_dim, num_actions), ACTOR_GAIN)
        self.critic_head = orthogonal_init_(nn.Linear(self.extractor.out_dim, 1), CRITIC_GAIN)
        self.channels_last = channels_last and len(self.obs_shape) == 3
        if self.channels_last:
            self.to(memory_format=torch.channels_last)

    @property
    def seq_len(self) -> int | None:
        """Training chunk length of a memory extractor (``None`` without memory)."""
        return self.extractor.seq_len if self.recurrent else None

    def initial_memory(self, batch_size: int) -> Tensor | None:
        """Memory before the first step of ``batch_size`` envs (``None`` without memory)."""
        if not self.recurrent:
            return None
        return self.extractor.initial_memory(batch_size, device=self.actor_head.weight.device)

    def preprocess(self, obs: Tensor, lead: int = 1) -> Tensor:
        """uint8 images to floats in [0, 1]; float observations pass through.

        Shapes: ``obs``: ``[*lead_dims, *obs_shape]`` with ``lead`` leading dims (``B`` or ``T, B``).
        """
        if obs.shape[lead:] != self.obs_shape:
            raise ValueError(f"observations of shape {tuple(obs.shape[lead:])}, policy built for {self.obs_shape}")
        layout = torch.channels_last if self.channels_last and lead == 1 else torch.contiguous_format
        if obs.dtype != torch.uint8:
            return obs.float().contiguous(memory_format=layout)
        # One pass converts dtype and layout, then an in-place scale (~25 % faster than two copies).
        x = torch.empty(obs.shape, dtype=torch.float32, device=obs.device, memory_format=layout)
        return x.copy_(obs).mul_(1.0 / 255.0)

    def forward(
        self, obs: Tensor, memory: Tensor | None = None, episode_start: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Logits ``[B, A]`` and values ``[B]`` of raw observations ``[B, *obs_shape]``.

        A recurrent policy starts from ``memory`` (default: a fresh episode) and ``episode_start``.
        """
        logits, values, _ = self._step(obs, memory, episode_start)
        return logits, values

    def _step(
        self, obs: Tensor, memory: Tensor | None, episode_start: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """One step of ``B`` envs: logits ``[B, A]``, values ``[B]``, the next memory or ``None``."""
        if not self.recurrent:
            x = self.preprocess(obs)
            features = self.extractor(x)
            critic_features = features if self.critic_extractor is None else self.critic_extractor(x)
            return self.actor_head(features), self.critic_head(critic_features).squeeze(-1).float(), None
        batch = obs.shape[0]
        if memory is None:
            memory = self.initial_memory(batch)
        if episode_start is None:
            episode_start = torch.zeros(batch, dtype=torch.bool, device=obs.device)
        logits, values, memory = self.forward_sequence(obs[None], memory, episode_start[None])
        return logits[0], values[0], memory

    def forward_sequence(self, obs: Tensor, memory: Tensor, episode_start: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """A recurrent policy over sequences: logits ``[T, B, A]``, values ``[T, B]``, memory after.

        Shapes: obs ``[T, B, *obs_shape]``, memory ``[B, *memory_shape]``, episode_start ``[T, B]``.
        """
        features, memory = self.extractor(self.preprocess(obs, lead=2), memory, episode_start)
        return self.actor_head(features), self.critic_head(features).squeeze(-1).float(), memory

    @torch.no_grad()
    def act(
        self,
        obs: Tensor,
        greedy: bool = False,
        memory: Tensor | None = None,
        episode_start: Tensor | None = None,
    ) -> PolicyOutput:
        """Sample (or take the most likely) actions for collection. Shapes: ``[B, ...] -> [B]``."""
        logits, value, memory = self._step(obs, memory, episode_start)
        logits = logits.float()
        if greedy:
            action = logits.argmax(-1)
        else:
            # Gumbel-max sampling: one fused draw, no torch.distributions overhead.
            noise = torch.empty_like(logits).exponential_().log_()
            action = (logits - noise).argmax(-1)
        log_prob, _ = categorical_log_prob(logits, action)
        return PolicyOutput(action, log_prob, value, memory)

    @torch.no_grad()
    def value(self, obs: Tensor, memory: Tensor | None = None, episode_start: Tensor | None = None) -> Tensor:
        """State values ``[B]`` of raw observations ``[B, *obs_shape]``."""
        return self._step(obs, memory, episode_start)[1]

    def evaluate(
        self, obs: Tensor, actions: Tensor, memory: Tensor | None = None, episode_start: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(log_probs, entropy, values)`` of ``actions`` under the current parameters.

        Shapes: feed-forward ``obs [B, ...]``, ``actions [B]`` → three ``[B]``; recurrent
        ``obs [T, B, ...]``, ``actions [T, B]``, ``memory [B, ...]``, ``episode_start [T, B]`` → three ``[T, B]``.
        """
        if self.recurrent:
            if memory is None or episode_start is None:
                raise ValueError("a recurrent policy evaluates sequences: pass memory and episode_start")
            logits, values, _ = self.forward_sequence(obs, memory, episode_start)
        else:
            logits, values = self(obs)
        log_probs, entropy = categorical_log_prob(logits.flatten(0, -2), actions.flatten())
        return log_probs.view_as(actions), entropy.view_as(actions), values
