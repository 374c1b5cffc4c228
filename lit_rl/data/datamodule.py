"""On-policy data for Lightning: one epoch is one rollout, served as shuffled minibatches.

The datamodule owns the environments and the :class:`RolloutCollector`; the LightningModule, a
:class:`lit_rl.data.protocol.RolloutLearner`, owns everything computed from a rollout (advantages,
returns, the env-step counter). Lightning injects
no ``DistributedSampler`` into an ``IterableDataset``, so under DDP every rank iterates its own envs,
and every rank yields the same number of minibatches.
"""

from __future__ import annotations

from collections.abc import Iterator

import lightning as L
import numpy as np
import torch
from gymnasium.vector import VectorEnv
from jsonargparse.typing import NonNegativeInt, PositiveInt
from torch.utils.data import DataLoader, IterableDataset

from lit_rl.data.collector import RolloutCollector
from lit_rl.data.episodes import EvaluationEpisodes, run_episodes
from lit_rl.data.protocol import Policy, RolloutLearner
from lit_rl.data.rollout import Rollout
from lit_rl.envs.factory import Backend, Vectorization, check_env_id, game_name, is_atari, make_vector_env
from lit_rl.envs.options import AtariOptions
from lit_rl.errors import ConfigError
from lit_rl.specs import EnvSpec

#: Evaluation envs reset with seeds from ``seed + EVAL_SEED_OFFSET`` on, away from the training envs'.
EVAL_SEED_OFFSET = 1_000_000


class RolloutDataModule(L.LightningDataModule):
    """Vector envs → rollouts → ``update_epochs × num_minibatches`` minibatches per epoch.

    Args:
        env_id: Gymnasium id, e.g. ``CartPole-v1`` or ``BreakoutNoFrameskip-v4``.
        num_envs: Parallel envs per process.
        num_steps: Steps per env per rollout; ``batch_size = num_envs * num_steps``.
        num_minibatches: Minibatches per update epoch; must divide ``batch_size``.
        update_epochs: Passes over each rollout.
        seed: Base env seed; rank ``r``'s env ``i`` gets ``seed + r * num_envs + i``. ``None``: the
            run's seed (``seed_everything``), so one override seeds networks and envs alike. A run
            resumed at ``s > 0`` env steps starts fresh episodes seeded from ``(seed, s)`` instead
            (:meth:`env_seed`), so a resume never replays the episodes of the run's start.
        backend: Env backend, see :func:`lit_rl.envs.factory.make_vector_env`.
        vectorization: ``sync`` or ``async`` for the gymnasium backend.
        env_groups: The C++ Atari backend's training envs step as this many groups, pipelined with
            the policy: one group's games step while the policy computes another's actions (measured
            in the README's Performance section; needs ``num_envs >= env_groups``, else no split).
            1 steps all envs at once. Recurrent policies and other backends step all envs at once.
        atari: The Atari protocol (ignored for non-Atari ids); ``None`` uses the defaults.
        eval_episodes: Full episodes per evaluation (during training and in ``validate``/``test``),
            one per env of a separate evaluation env with raw full-game scores.
        eval_greedy: Evaluate with the most likely action instead of a sampled one (the study samples).
        obs_stack: Observe the last ``obs_stack`` observations of a non-Atari env (``[k, *obs_shape]``);
            Atari games stack frames with ``atari.frame_stack``.
    """

    def __init__(
        self,
        env_id: str,
        *,
        num_envs: PositiveInt = 8,
        num_steps: PositiveInt = 128,
        num_minibatches: PositiveInt = 4,
        update_epochs: PositiveInt = 4,
        seed: NonNegativeInt | None = None,
        backend: Backend = "auto",
        vectorization: Vectorization = "sync",
        env_groups: PositiveInt = 2,
        atari: AtariOptions | None = None,
        eval_episodes: PositiveInt = 5,
        eval_greedy: bool = False,
        obs_stack: PositiveInt = 1,
    ) -> None:
        super().__init__()
        check_env_id(env_id)
        for name, value in (
            ("num_envs", num_envs),
            ("num_steps", num_steps),
            ("num_minibatches", num_minibatches),
            ("update_epochs", update_epochs),
            ("eval_episodes", eval_episodes),
            ("obs_stack", obs_stack),
            ("env_groups", env_groups),
        ):
            if value < 1:
                raise ConfigError(f"data.{name}={value}; expected a positive integer")
        if (num_envs * num_steps) % num_minibatches:
            raise ConfigError(
                f"data.num_minibatches={num_minibatches} does not divide the rollout of "
                f"num_envs * num_steps = {num_envs * num_steps} transitions; use a divisor of it"
            )
        # Plain ints (not jsonargparse's PositiveInt) so checkpoints load with weights_only.
        num_envs, num_steps = int(num_envs), int(num_steps)
        seed = None if seed is None else int(seed)
        num_minibatches, update_epochs, eval_episodes = int(num_minibatches), int(update_epochs), int(eval_episodes)
        env_groups = int(env_groups)
        self.save_hyperparameters()
        self.env_id, self.num_envs, self.num_steps = env_id, num_envs, num_steps
        self.num_minibatches, self.update_epochs, self._seed = num_minibatches, update_epochs, seed
        self.backend, self.vectorization = backend, vectorization
        self.env_groups = env_groups
        self.atari = atari if atari is not None else AtariOptions()
        self.eval_episodes, self.eval_greedy = eval_episodes, eval_greedy
        self.obs_stack = int(obs_stack)
        if self.obs_stack > 1 and is_atari(env_id):
            raise ConfigError(f"data.obs_stack={obs_stack} with the Atari game {env_id}; use data.atari.frame_stack")
        self._env_spec: EnvSpec | None = None
        self.collector: RolloutCollector | None = None

    @property
    def batch_size(self) -> int:
        """Transitions per rollout and process."""
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def seed(self) -> int:
        """The env seed: ``data.seed``, or the run's seed (``torch.initial_seed()`` after ``seed_everything``,
        read once)."""
        if self._seed is None:
            self._seed = torch.initial_seed() % 2**31
        return self._seed

    def env_seed(self, rank: int = 0, env_steps: int = 0) -> int:
        """Seed of the first reset of rank ``rank``'s training envs (env ``i`` adds ``i``).

        ``seed + rank * num_envs`` at the start of a run; after ``env_steps > 0`` (a resume), a seed
        drawn from ``(seed, env_steps)``, so the same checkpoint always resumes with the same episodes.
        """
        if env_steps == 0:
            base = self.seed
        else:
            base = int(np.random.SeedSequence([self.seed, env_steps]).generate_state(1)[0]) % 2**30
        return base + rank * self.num_envs

    @property
    def game(self) -> str:
        """Short env name for file names: ``PongNoFrameskip-v4`` → ``Pong``."""
        return game_name(self.env_id)

    @property
    def env_spec(self) -> EnvSpec:
        """Observation shape/dtype and action count, from one probe env closed at once."""
        if self._env_spec is None:
            env = self.make_env(num_envs=1)
            try:
                space, action_space = env.single_observation_space, env.single_action_space
                if not hasattr(action_space, "n"):
                    raise ConfigError(f"{self.env_id} has actions {action_space}; lit_rl supports Discrete actions")
                dtype = "uint8" if space.dtype == "uint8" else "float32"
                self._env_spec = EnvSpec(tuple(space.shape), dtype, int(action_space.n), self.num_envs)
            finally:
                env.close()
        return self._env_spec

    def make_env(self, num_envs: int, evaluation: bool = False) -> VectorEnv:
        """A vector env with this datamodule's settings (``evaluation``: raw full-game episodes).

        Seed it with its first ``reset(seed=...)``.
        """
        return make_vector_env(
            self.env_id,
            num_envs=num_envs,
            backend=self.backend,
            atari=self.atari,
            vectorization=self.vectorization,
            evaluation=evaluation,
            obs_stack=self.obs_stack,
            env_groups=1 if evaluation else self.env_groups,
        )

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.collector is None:
            module: RolloutLearner | None = self.trainer.lightning_module if self.trainer is not None else None
            if module is not None:
                if not isinstance(module, RolloutLearner):
                    raise TypeError(f"{type(module).__name__} is not a RolloutLearner (lit_rl.data.protocol)")
                self.check_sequence_minibatches(module.policy.seq_len)
            rank = self.trainer.global_rank if self.trainer is not None else 0
            seed = self.env_seed(rank)  # a resume reseeds once the checkpoint's env steps are known
            device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
            # An intrinsic-reward module says what it needs to see of each next observation.
            view = None if module is None else module.next_obs_view
            self.collector = RolloutCollector(self.make_env(self.num_envs), self.num_steps, seed, device, view)

    def run_evaluation(self, policy: Policy, index: int = 0, rank: int = 0) -> EvaluationEpisodes:
        """``eval_episodes`` full episodes with ``policy`` on a fresh evaluation env.

        Evaluation ``index`` of process ``rank`` resets with seeds disjoint from the training envs' and
        from every other evaluation's.
        """
        env = self.make_env(self.eval_episodes, evaluation=True)
        seed = (self.seed + EVAL_SEED_OFFSET * (1 + rank) + index * self.eval_episodes) % 2**31
        device = next(policy.parameters()).device
        # The sampled actions come from their own RNG state, seeded like the episodes: an evaluation
        # depends only on the policy and its index, and never shifts the training's random stream.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.default_generator.manual_seed(seed)
            if device.type == "cuda":
                torch.cuda.manual_seed(seed)
            try:
                return run_episodes(policy, env, seed=seed, greedy=self.eval_greedy)
            finally:
                env.close()

    def val_dataloader(self) -> DataLoader:
        """``lit-rl validate``: one batch, the :class:`EvaluationEpisodes` of ``eval_episodes`` episodes."""
        return self._evaluation_loader()

    def test_dataloader(self) -> DataLoader:
        """``lit-rl test``: as :meth:`val_dataloader`."""
        return self._evaluation_loader()

    def _evaluation_loader(self) -> DataLoader | list:
        if self.trainer is not None and self.trainer.state.fn == "fit":
            return []  # during fit the Evaluation callback evaluates every N env steps instead
        return DataLoader(_EvaluationDataset(self), batch_size=None, num_workers=0)

    def teardown(self, stage: str) -> None:
        if stage == "fit" and self.collector is not None:
            self.collector.close()
            self.collector = None

    def on_exception(self, exception: BaseException) -> None:
        # Lightning skips teardown when fit raises; async workers (which ignore SIGTERM) must end now.
        self.teardown("fit")

    def train_dataloader(self) -> DataLoader:
        # batch_size=None: the dataset yields ready minibatches; num_workers=0: envs live here.
        return DataLoader(_RolloutDataset(self), batch_size=None, num_workers=0)

    def minibatches(
        self, rollout: Rollout, generator: torch.Generator | None = None, seq_len: int | None = None
    ) -> Iterator[Rollout]:
        """``update_epochs`` shuffled passes over a rollout, ``num_minibatches`` each.

        Feed-forward: shuffled transitions of the flattened rollout. Recurrent (``seq_len``): the
        rollout cut into chunks of ``seq_len`` steps (:meth:`Rollout.to_sequences`), shuffled and
        split into ``num_minibatches`` groups of whole chunks (sizes differ by at most one chunk).
        """
        if seq_len is not None:
            chunks = rollout.to_sequences(seq_len)
            num_chunks = chunks.actions.shape[1]
            for _ in range(self.update_epochs):
                perm = torch.randperm(num_chunks, device=chunks.actions.device, generator=generator)
                for index in perm.tensor_split(self.num_minibatches):
                    yield chunks.select_envs(index)
            return
        flat = rollout.flatten()
        size = self.minibatch_size
        for _ in range(self.update_epochs):
            perm = torch.randperm(flat.num_transitions, device=flat.actions.device, generator=generator)
            for start in range(0, flat.num_transitions, size):
                yield flat[perm[start : start + size]]

    def check_sequence_minibatches(self, seq_len: int | None) -> None:
        """Raise :class:`ConfigError` if ``seq_len`` exceeds a rollout or ``num_minibatches`` its chunks."""
        if seq_len is None:
            return
        if seq_len > self.num_steps:
            raise ConfigError(
                f"model.extractor.init_args.seq_len={seq_len} is longer than a rollout "
                f"(data.num_steps={self.num_steps}); use seq_len <= {self.num_steps} or more data.num_steps"
            )
        chunks = -(-self.num_steps // seq_len) * self.num_envs
        if self.num_minibatches > chunks:
            raise ConfigError(
                f"data.num_minibatches={self.num_minibatches} exceeds the {chunks} sequence chunks of a rollout "
                f"(num_envs={self.num_envs} x ceil(num_steps={self.num_steps} / seq_len={seq_len})); "
                f"use at most {chunks}"
            )


class _EvaluationDataset(IterableDataset):
    """One item: the results of ``eval_episodes`` episodes of the current policy on this rank."""

    def __init__(self, datamodule: RolloutDataModule) -> None:
        self.dm = datamodule

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[EvaluationEpisodes]:
        trainer = self.dm.trainer
        yield self.dm.run_evaluation(trainer.lightning_module.policy, rank=trainer.global_rank)


class _RolloutDataset(IterableDataset):
    """Each iteration (= Lightning epoch) collects one rollout and yields its minibatches."""

    def __init__(self, datamodule: RolloutDataModule) -> None:
        self.dm = datamodule

    def __len__(self) -> int:
        return self.dm.update_epochs * self.dm.num_minibatches

    def __iter__(self) -> Iterator[Rollout]:
        module: RolloutLearner = self.dm.trainer.lightning_module
        collector = self.dm.collector
        env_steps = int(module.env_steps)
        if collector.total_steps == 0 and env_steps > 0:
            # Resumed from a checkpoint (restored after setup built the envs): fresh episodes seeded by the step.
            collector.reset(self.dm.env_seed(self.dm.trainer.global_rank, env_steps))
        while module.warmup_pending:  # RND's observation statistics: random-policy rollouts first
            module.warm_up(collector.random_rollout())
        policy = module.policy
        # Acting never uses dropout (the PPO ratio starts at exactly 1); the module decides the update's mode.
        was_training = policy.training
        policy.eval()
        rollout, episodes = collector.collect(policy)
        policy.train(was_training)
        yield from self.dm.minibatches(module.prepare_rollout(rollout, episodes), seq_len=policy.seq_len)
