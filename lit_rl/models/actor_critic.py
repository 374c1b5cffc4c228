"""Actor-critic over a swappable feature extractor, for discrete actions.

Reference: cleanrl ``ppo_atari.py`` (``Agent``): shared trunk, ``Linear`` actor and critic heads,
orthogonal init with gains √2 / 0.01 / 1.0, inputs scaled by 1/255. With ``heads="rnd"`` the heads of
cleanrl ``ppo_rnd_envpool.py`` / jcwleo's RND (Burda et al., 2019): an MLP actor and
value heads behind a shared residual ``extra_layer``; ``intrinsic_value`` adds the second (intrinsic)
value head RND trains.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lit_rl.data.protocol import PolicyOutput
from lit_rl.errors import ConfigError
from lit_rl.models.extractors.base import ExtractorFactory, FeatureExtractor, MemoryExtractor, StreamExtractor, Streams
from lit_rl.models.init import ACTOR_GAIN, CRITIC_GAIN, TRUNK_GAIN, orthogonal_init_
from lit_rl.models.running_stats import ObservationNormalizer

HeadStyle = Literal["linear", "rnd"]


def head_mlp(dim: int, widths: tuple[int, ...], activation: str) -> tuple[nn.Module, int]:
    """``Linear → activation`` per width (orthogonal, gain √2), or ``nn.Identity``; returns it and its output width."""
    layers: list[nn.Module] = []
    for width in widths:
        layers += [
            orthogonal_init_(nn.Linear(dim, int(width)), TRUNK_GAIN),
            nn.ReLU() if activation == "relu" else nn.Tanh(),
        ]
        dim = int(width)
    return (nn.Sequential(*layers) if layers else nn.Identity()), dim


def categorical_log_prob(logits: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
    """Log-probabilities of ``actions`` and entropies of the categorical given by ``logits``.

    Computed in float32 whatever the autocast dtype of ``logits``.

    Shapes:
        logits: ``[B, A]``; actions: ``[B]`` int64; returns two ``[B]`` tensors.
    """
    log_p = F.log_softmax(logits.float(), dim=-1)
    entropy = -(log_p.exp() * log_p).sum(-1)
    return log_p.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1), entropy


#: Layers whose ``reset_parameters`` is PyTorch's default init, restored by ``init="default"``.
_DEFAULT_INIT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.RNNBase)


def reset_to_pytorch_defaults_(module: nn.Module) -> nn.Module:
    """Give every linear, convolutional and recurrent layer of ``module`` PyTorch's default init again
    (SB3's ``ortho_init=False``, which RL Zoo's recurrent settings use); other parameters keep theirs."""
    for layer in module.modules():
        if isinstance(layer, _DEFAULT_INIT_LAYERS):
            layer.reset_parameters()
    return module


class ActorCritic(nn.Module):
    """Extractor + ``actor_head`` (logits) + ``critic_head`` (extrinsic value) [+ ``int_critic_head``].

    Args:
        obs_shape: Observation shape; ``uint8`` observations are scaled by 1/255 here, once.
        num_actions: Number of discrete actions.
        extractor: Factory that builds the trunk from ``obs_shape``.
        shared_extractor: Actor and critic share one trunk (cleanrl ``ppo_atari.py``); ``False``
            builds a second trunk for the critic (cleanrl ``ppo.py``, SB3 ``MlpPolicy``).
        channels_last: Keep image activations in channels-last memory format (faster convolutions
            on CPUs and tensor cores; numerically the same layers).
        heads: ``"linear"`` (cleanrl ``ppo_atari.py``) or ``"rnd"``: actor ``Linear(D→D) → ReLU →
            Linear(D→A)`` (gains 0.01), values ``critic(extra(z) + z)`` with the shared
            ``extra_layer = Linear(D→D) → ReLU`` (gain 0.1) and critics of gain 0.01.
        intrinsic_value: Add the intrinsic value head ``int_critic_head`` (RND).
        head_layers: Hidden widths of an MLP in front of the actor head and another in front of the
            critic head (SB3's ``net_arch=dict(pi=[...], vf=[...])``; gains √2, ``head_activation``);
            ``()``: the heads read the features directly (cleanrl). Only with ``heads="linear"``.
        head_activation: Activation of those MLPs.
        init: ``"orthogonal"`` (cleanrl's gains, above) or ``"default"``: every linear, convolutional and
            recurrent layer, trunk included, keeps PyTorch's default init (SB3's ``ortho_init=False``).
        normalize_obs: Normalise float observations by running statistics (:class:`ObservationNormalizer`,
            ``obs_norm``); the owner updates them with ``obs_norm.update``.
        obs_clip: Bound of the normalised observations.

    Value heads are named by the stream they read: a :class:`StreamExtractor` (the explorative ViT)
    routes ``exploit`` to the extrinsic head, ``explore`` to the intrinsic one and ``policy`` to the
    actor; any other extractor's features feed all three.

    Every call returns a :class:`PolicyOutput` (a :class:`lit_rl.data.protocol.Policy`). With a
    :class:`MemoryExtractor` (``recurrent``), every method also takes the memory before the step and
    the ``episode_start`` flags, and returns the memory after it; :meth:`score_actions` runs whole
    sequences ``[T, B, ...]``. With ``shared_extractor=False`` the actor and
    the critic each have their own memory (sb3-contrib's ``enable_critic_lstm``), carried as one tensor
    ``[B, 2, *memory_shape]`` (actor's, critic's).
    """

    def __init__(
        self,
        obs_shape: tuple[int, ...],
        num_actions: int,
        extractor: ExtractorFactory,
        *,
        shared_extractor: bool = True,
        channels_last: bool = True,
        heads: HeadStyle = "linear",
        intrinsic_value: bool = False,
        normalize_obs: bool = False,
        obs_clip: float = 10.0,
        head_layers: tuple[int, ...] = (),
        head_activation: Literal["tanh", "relu"] = "relu",
        init: Literal["orthogonal", "default"] = "orthogonal",
    ) -> None:
        super().__init__()
        self.obs_shape = tuple(obs_shape)
        self.obs_norm = ObservationNormalizer(self.obs_shape, obs_clip) if normalize_obs else None
        self.extractor = extractor(self.obs_shape)
        self.recurrent = isinstance(self.extractor, MemoryExtractor)
        if heads not in ("linear", "rnd"):
            raise ConfigError(f"heads={heads!r}; expected 'linear' or 'rnd'")
        self.critic_extractor = None if shared_extractor else extractor(self.obs_shape)
        dim = self.extractor.out_dim
        if head_layers and heads != "linear":
            raise ConfigError(f"head_layers={list(head_layers)} with heads={heads!r}; head_layers need heads='linear'")
        self.actor_hidden, _ = head_mlp(dim, tuple(head_layers), head_activation)
        self.critic_hidden, dim_hidden = head_mlp(dim, tuple(head_layers), head_activation)
        self.extra_layer: nn.Module | None = None
        critic_gain = CRITIC_GAIN
        if heads == "linear":
            dim = dim_hidden
            self.actor_head = orthogonal_init_(nn.Linear(dim, num_actions), ACTOR_GAIN)
        else:
            self.actor_head = orthogonal_init_(
                nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, num_actions)), ACTOR_GAIN
            )
            self.extra_layer = orthogonal_init_(nn.Sequential(nn.Linear(dim, dim), nn.ReLU()), 0.1)
            critic_gain = 0.01
        self.critic_head = orthogonal_init_(nn.Linear(dim, 1), critic_gain)
        self.int_critic_head = orthogonal_init_(nn.Linear(dim, 1), critic_gain) if intrinsic_value else None
        if init == "default":
            reset_to_pytorch_defaults_(self)
        elif init != "orthogonal":
            raise ConfigError(f"init={init!r}; expected 'orthogonal' or 'default'")
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
        device = self.critic_head.weight.device
        memory = self.extractor.initial_memory(batch_size, device=device)
        if self.critic_extractor is None:
            return memory
        return torch.stack([memory, self.critic_extractor.initial_memory(batch_size, device=device)], dim=1)

    def preprocess(self, obs: Tensor, lead: int = 1) -> Tensor:
        """uint8 images to floats in [0, 1]; float observations pass through, normalised with ``normalize_obs``.

        Shapes: ``obs``: ``[*lead_dims, *obs_shape]`` with ``lead`` leading dims (``B`` or ``T, B``).
        """
        if obs.shape[lead:] != self.obs_shape:
            raise ValueError(f"observations of shape {tuple(obs.shape[lead:])}, policy built for {self.obs_shape}")
        layout = torch.channels_last if self.channels_last and lead == 1 else torch.contiguous_format
        if obs.dtype != torch.uint8:
            x = obs.float() if self.obs_norm is None else self.obs_norm(obs.float())
            return x.contiguous(memory_format=layout)
        # One pass converts dtype and layout, then an in-place scale (one copy instead of two).
        x = torch.empty(obs.shape, dtype=torch.float32, device=obs.device, memory_format=layout)
        return x.copy_(obs).mul_(1.0 / 255.0)

    def forward(self, obs: Tensor, memory: Tensor | None = None, episode_start: Tensor | None = None) -> PolicyOutput:
        """One step of ``B`` envs from raw observations ``[B, *obs_shape]``: logits ``[B, A]``, values and
        intrinsic values (or ``None``) ``[B]``, and the memory after (``None`` without memory).

        A recurrent policy starts from ``memory`` (default: a fresh episode) and ``episode_start``.
        """
        if not self.recurrent:
            x = self.preprocess(obs)
            streams = self._streams(self.extractor, x)
            critic = streams if self.critic_extractor is None else self._streams(self.critic_extractor, x)
            return self._heads(streams, critic)
        batch = obs.shape[0]
        if memory is None:
            memory = self.initial_memory(batch)
        if episode_start is None:
            episode_start = torch.zeros(batch, dtype=torch.bool, device=obs.device)
        out = self.forward_sequence(obs[None], memory, episode_start[None])
        int_values = None if out.int_values is None else out.int_values[0]
        return PolicyOutput(out.values[0], int_values, logits=out.logits[0], memory=out.memory)

    def _critic(self, head: nn.Module, z: Tensor) -> Tensor:
        z = self.critic_hidden(z)
        if self.extra_layer is not None:
            z = self.extra_layer(z) + z
        return head(z).squeeze(-1).float()

    def logits(self, features: Tensor) -> Tensor:
        """Action logits of the actor's features."""
        return self.actor_head(self.actor_hidden(features))

    def _heads(self, streams: Streams, critic: Streams, memory: Tensor | None = None) -> PolicyOutput:
        """Logits, extrinsic values and intrinsic values (or ``None``) of routed features."""
        int_values = None if self.int_critic_head is None else self._critic(self.int_critic_head, critic.explore)
        logits = self.logits(streams.policy)
        return PolicyOutput(self._critic(self.critic_head, critic.exploit), int_values, logits=logits, memory=memory)

    @staticmethod
    def _streams(extractor: FeatureExtractor, x: Tensor) -> Streams:
        if isinstance(extractor, StreamExtractor):
            return extractor.forward_streams(x)
        features = extractor(x)
        return Streams(policy=features, exploit=features, explore=features)

    def forward_sequence(self, obs: Tensor, memory: Tensor, episode_start: Tensor) -> PolicyOutput:
        """A recurrent policy over sequences: logits ``[T, B, A]``, values and intrinsic values (or
        ``None``) ``[T, B]``, the memory after.

        Shapes: obs ``[T, B, *obs_shape]``, memory ``[B, *memory_shape]``, episode_start ``[T, B]``.
        """
        x = self.preprocess(obs, lead=2)
        if self.critic_extractor is None:
            features, memory = self.extractor(x, memory, episode_start)
            streams = Streams(policy=features, exploit=features, explore=features)
            return self._heads(streams, streams, memory)
        actor_memory, critic_memory = memory.unbind(1)
        features, actor_memory = self.extractor(x, actor_memory, episode_start)
        critic_features, critic_memory = self.critic_extractor(x, critic_memory, episode_start)
        streams = Streams(policy=features, exploit=critic_features, explore=critic_features)
        return self._heads(streams, streams, torch.stack([actor_memory, critic_memory], dim=1))

    @torch.no_grad()
    def act(
        self,
        obs: Tensor,
        greedy: bool = False,
        memory: Tensor | None = None,
        episode_start: Tensor | None = None,
    ) -> PolicyOutput:
        """Sample (or take the most likely) actions for collection, with their log-probs, the values and
        the memory after. Shapes: ``[B, ...] -> [B]``."""
        out = self(obs, memory, episode_start)
        logits = out.logits.float()
        if greedy:
            actions = logits.argmax(-1)
        else:
            # Gumbel-max sampling: one fused draw, no torch.distributions overhead.
            noise = torch.empty_like(logits).exponential_().log_()
            actions = (logits - noise).argmax(-1)
        log_probs, _ = categorical_log_prob(logits, actions)
        return dataclasses.replace(out, logits=logits, actions=actions, log_probs=log_probs)

    @torch.no_grad()
    def values(self, obs: Tensor, memory: Tensor | None = None, episode_start: Tensor | None = None) -> PolicyOutput:
        """Extrinsic and intrinsic (or ``None``) state values ``[B]`` of raw observations ``[B, *obs_shape]``."""
        return self(obs, memory, episode_start)

    def score_actions(
        self, obs: Tensor, actions: Tensor, memory: Tensor | None = None, episode_start: Tensor | None = None
    ) -> PolicyOutput:
        """Log-probs and entropy of given ``actions``, and the values (intrinsic ones ``None`` without
        an intrinsic head), under the current parameters: the terms of the PPO loss.

        Shapes: feed-forward ``obs [B, ...]``, ``actions [B]`` → ``[B]`` each; recurrent
        ``obs [T, B, ...]``, ``actions [T, B]``, ``memory [B, ...]``, ``episode_start [T, B]`` → ``[T, B]`` each.
        """
        if self.recurrent:
            if memory is None or episode_start is None:
                raise ValueError("a recurrent policy scores sequences: pass memory and episode_start")
            out = self.forward_sequence(obs, memory, episode_start)
        else:
            out = self(obs)
        log_probs, entropy = categorical_log_prob(out.logits.flatten(0, -2), actions.flatten())
        return dataclasses.replace(
            out, actions=actions, log_probs=log_probs.view_as(actions), entropy=entropy.view_as(actions)
        )
