"""Rollouts of random observations without environments: lit_rl's own update with free envs.

:class:`SyntheticCollector` has the interface of :class:`lit_rl.data.collector.RolloutCollector`
(``collect``, ``random_rollout``, ``reset``, ``total_steps``, ``close``) but serves one fixed block of
random observations (uint8 frames or standard-normal floats, per the :class:`EnvSpec`) and random
rewards; the policy still acts on every step, so a rollout costs the collection forwards and nothing
else. :class:`SyntheticRolloutDataModule` is a :class:`RolloutDataModule` that builds it instead of
envs, so ``Trainer.fit(PPO(...), SyntheticRolloutDataModule(...))`` runs exactly the module's update
(its optimiser, gradient clipping, finiteness check) on data that costs no emulation: the compute
ceiling of a training run (README, "Performance"), and a throughput probe of a network.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from jsonargparse.typing import PositiveInt
from torch import Tensor

from lit_rl.data.datamodule import RolloutDataModule
from lit_rl.data.episodes import RolloutEpisodes
from lit_rl.data.protocol import Policy
from lit_rl.data.rollout import Rollout
from lit_rl.specs import EnvSpec


def random_observations(spec: EnvSpec, lead: tuple[int, ...], generator: torch.Generator) -> Tensor:
    """Observations ``[*lead, *spec.obs_shape]``: uniform bytes for ``uint8``, standard normal otherwise."""
    shape = (*lead, *spec.obs_shape)
    if spec.obs_dtype == "uint8":
        return torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
    return torch.randn(shape, generator=generator)


class SyntheticCollector:
    """Serves ``num_steps`` steps of ``spec.num_envs`` random envs, the same block every rollout.

    The policy acts on each step as in a real collection (actions, log-probs and values are its own,
    and a recurrent policy carries its memory); observations and rewards are drawn once per
    :meth:`reset`, and no episode ever ends (:class:`RolloutEpisodes` stay empty).

    Args:
        spec: Observation shape and dtype, action count and ``num_envs``.
        num_steps: Steps per env per rollout (``T``).
        seed: Seed of the random observations and rewards.
        device: Where the rollout tensors live (the policy's device).
        next_obs_view: Records ``next_obs_view(s_{t+1})`` in ``Rollout.next_obs`` (an intrinsic-reward
            module's input); ``None`` records nothing.
    """

    def __init__(self, spec: EnvSpec, num_steps: int, seed: int, device: torch.device, next_obs_view=None) -> None:
        self.spec, self.num_steps, self.device, self.next_obs_view = spec, num_steps, device, next_obs_view
        self.total_steps = 0
        self.reset(seed)

    def reset(self, seed: int) -> None:
        """Draw the observations ``[T + 1, N, ...]`` and rewards ``[T, N]`` from ``seed``; forget the memory."""
        generator = torch.Generator().manual_seed(seed)
        T, N = self.num_steps, self.spec.num_envs
        self._obs = random_observations(self.spec, (T + 1, N), generator).to(self.device)
        self._rewards = torch.randn((T, N), generator=generator).to(self.device)
        self._next_obs = None
        if self.next_obs_view is not None:
            self._next_obs = torch.stack([self.next_obs_view(self._obs[t + 1]) for t in range(T)])
        self._first = True  # the first rollout after a reset starts fresh episodes
        self._memory: Tensor | None = None

    @torch.inference_mode()
    def collect(self, policy: Policy) -> tuple[Rollout, RolloutEpisodes]:
        """One rollout of ``T × N`` transitions, the policy acting on each step (actions sampled)."""
        T, N = self.num_steps, self.spec.num_envs
        starts = torch.zeros((T + 1, N), dtype=torch.bool, device=self.device)
        starts[0] = self._first
        self._first = False
        if policy.recurrent and self._memory is None:
            self._memory = policy.initial_memory(N)
        memory_log = (
            None if not policy.recurrent else self._memory.new_zeros((-(-T // policy.seq_len), *self._memory.shape))
        )
        steps = []
        for t in range(T):
            if memory_log is not None and t % policy.seq_len == 0:
                memory_log[t // policy.seq_len] = self._memory
            out = policy.act(self._obs[t], memory=self._memory if policy.recurrent else None, episode_start=starts[t])
            self._memory = out.memory
            steps.append(out)
        last = policy.values(self._obs[T], memory=self._memory, episode_start=starts[T])
        last_value, last_int_value = last.values, last.int_values
        self.total_steps += T * N
        never = torch.zeros((T, N), dtype=torch.bool, device=self.device)
        rollout = Rollout(
            obs=self._obs[:T].clone(),
            actions=torch.stack([s.actions for s in steps]),
            log_probs=torch.stack([s.log_probs for s in steps]),
            values=torch.stack([s.values for s in steps]),
            rewards=self._rewards.clone(),
            terminated=never,
            truncated=never.clone(),
            final_values=torch.zeros((T, N), device=self.device),
            last_value=last_value,
            episode_starts=starts[:T].clone(),
            memory=memory_log,
            next_obs=None if self._next_obs is None else self._next_obs.clone(),
            int_values=None if last_int_value is None else torch.stack([s.int_values for s in steps]),
            int_last_value=last_int_value,
        )
        empty = RolloutEpisodes(np.zeros(0, dtype=np.float64), np.zeros(0, dtype=np.int64))
        return rollout, empty

    def random_rollout(self) -> Tensor:
        """``next_obs_view`` of the block's observations ``[T, N, *view shape]`` (RND's warm-up); not
        counted in ``total_steps``."""
        if self._next_obs is None:
            raise ValueError("random_rollout() records next_obs_view; build the collector with one")
        return self._next_obs.clone()

    def close(self) -> None:
        """Nothing to close: there are no envs."""


class SyntheticRolloutDataModule(RolloutDataModule):
    """A :class:`RolloutDataModule` whose rollouts come from a :class:`SyntheticCollector`.

    Minibatches, epochs and seeding are the parent's; ``env_spec`` is given instead of probed from an
    env, and ``env_id`` only names the run (it must be a registered id, as for the parent). There is no
    evaluation env: run it without the :class:`lit_rl.callbacks.Evaluation` callback.

    Args:
        env_spec: The observations and actions to imitate (its ``num_envs`` is replaced by ``num_envs``).
        env_id, num_envs, num_steps, num_minibatches, update_epochs, seed: As for :class:`RolloutDataModule`.
    """

    def __init__(
        self,
        env_spec: EnvSpec | dict,
        env_id: str = "CartPole-v1",
        *,
        num_envs: PositiveInt = 8,
        num_steps: PositiveInt = 128,
        num_minibatches: PositiveInt = 4,
        update_epochs: PositiveInt = 4,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            env_id,
            num_envs=num_envs,
            num_steps=num_steps,
            num_minibatches=num_minibatches,
            update_epochs=update_epochs,
            seed=seed,
        )
        spec = EnvSpec(**env_spec) if isinstance(env_spec, dict) else env_spec
        self._synthetic_spec = dataclasses.replace(spec, num_envs=int(num_envs))

    @classmethod
    def like(cls, datamodule: RolloutDataModule) -> SyntheticRolloutDataModule:
        """The same env spec, rollout and minibatch settings and seed as ``datamodule``, without its envs."""
        return cls(
            datamodule.env_spec,
            datamodule.env_id,
            num_envs=datamodule.num_envs,
            num_steps=datamodule.num_steps,
            num_minibatches=datamodule.num_minibatches,
            update_epochs=datamodule.update_epochs,
            seed=datamodule.seed,
        )

    @property
    def env_spec(self) -> EnvSpec:
        return self._synthetic_spec

    def setup(self, stage: str) -> None:
        if stage != "fit" or self.collector is not None:
            return
        module = self.trainer.lightning_module if self.trainer is not None else None
        if module is not None:
            self.check_sequence_minibatches(module.policy.seq_len)
        rank = self.trainer.global_rank if self.trainer is not None else 0
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        view = getattr(module, "next_obs_view", None)
        self.collector = SyntheticCollector(self.env_spec, self.num_steps, self.env_seed(rank), device, view)
