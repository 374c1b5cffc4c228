"""What the data side needs of the algorithm and its policy: two small protocols and one output type.

The datamodule and the collector are typed against these only (the layer order is envs → data →
models → algos → callbacks → cli; nothing in ``data/`` imports a layer above it).
:class:`lit_rl.models.actor_critic.ActorCritic` is a :class:`Policy`;
:class:`lit_rl.algos.ppo.PPO` is a :class:`RolloutLearner`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from torch import Tensor, nn

from lit_rl.data.episodes import RolloutEpisodes
from lit_rl.data.rollout import Rollout


@dataclass(frozen=True)
class PolicyOutput:
    """What every policy call returns; a field the call does not compute is ``None``.

    Shapes: ``[B]`` per step, ``[T, B]`` over sequences; ``logits`` add ``A``; ``memory`` is
    ``[B, *memory_shape]``, the memory after the call (``None`` without a memory extractor).

    Args:
        values: Extrinsic state values ``V(s)``.
        int_values: Intrinsic state values ``V^int(s)`` (``None`` without an intrinsic value head).
        logits: Action logits.
        actions: Actions taken (:meth:`Policy.act`) or scored.
        log_probs: ``log π(a|s)`` of ``actions``.
        entropy: Entropy of ``π(·|s)``.
        memory: A recurrent policy's memory after the call.
    """

    values: Tensor
    int_values: Tensor | None = None
    logits: Tensor | None = None
    actions: Tensor | None = None
    log_probs: Tensor | None = None
    entropy: Tensor | None = None
    memory: Tensor | None = None


@runtime_checkable
class Policy(Protocol):
    """A policy the collector and the evaluation episodes act with."""

    training: bool
    #: The policy carries a memory from step to step (it then trains on sequences of ``seq_len``).
    recurrent: bool

    @property
    def seq_len(self) -> int | None:
        """Training chunk length of a recurrent policy (``None`` without memory)."""

    def initial_memory(self, batch_size: int) -> Tensor | None:
        """Memory before the first step of ``batch_size`` envs (``None`` without memory)."""

    def act(
        self, obs: Tensor, greedy: bool = False, memory: Tensor | None = None, episode_start: Tensor | None = None
    ) -> PolicyOutput:
        """Actions (sampled, or the most likely with ``greedy``), their log-probs, values and the memory after."""

    def values(self, obs: Tensor, memory: Tensor | None = None, episode_start: Tensor | None = None) -> PolicyOutput:
        """Extrinsic and intrinsic state values of observations ``[B, *obs_shape]``."""

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    def train(self, mode: bool = True) -> nn.Module: ...

    def eval(self) -> nn.Module: ...


@runtime_checkable
class RolloutLearner(Protocol):
    """What :class:`lit_rl.data.datamodule.RolloutDataModule` needs of the LightningModule it feeds.

    Per Lightning epoch the datamodule's rollout dataset (1) reseeds the envs from :attr:`env_steps`
    when a resumed run starts, (2) calls :meth:`warm_up` with random-policy rollouts while
    :attr:`warmup_pending`, (3) collects a rollout with :attr:`policy` (in eval mode) and (4) serves
    the minibatches of :meth:`prepare_rollout`'s result.
    """

    #: The policy that acts; its ``seq_len`` decides flat or sequence minibatches.
    policy: Policy
    #: Env steps trained on so far, over all processes (anything ``int()`` accepts).
    env_steps: int | Tensor
    #: What the collector records of each next observation in ``Rollout.next_obs`` (``None``: nothing).
    next_obs_view: Callable[[Tensor], Tensor] | None
    #: Random-policy rollouts are still wanted before training.
    warmup_pending: bool

    def warm_up(self, next_obs: Tensor) -> None:
        """Take one random-policy rollout's ``next_obs_view`` of each step, ``[T, N, ...]``."""

    def prepare_rollout(self, rollout: Rollout, episodes: RolloutEpisodes) -> Rollout:
        """Take a collected rollout and the episodes that ended in it; return the rollout to train on
        (with advantages and returns)."""
