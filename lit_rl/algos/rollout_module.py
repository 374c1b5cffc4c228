"""What an on-policy learner fed by :class:`lit_rl.data.datamodule.RolloutDataModule` needs besides its
update: the env-step counter and budget, training-episode metrics, the non-finite state guard, one log
line per update against env steps, and the evaluation episodes of ``lit-rl validate`` / ``test``.

:class:`lit_rl.algos.ppo.PPO` subclasses it and adds the update (``training_step``, :meth:`process_rollout`).
"""

from __future__ import annotations

import time
from typing import Literal

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from lit_rl.algos.episode_metrics import NUM_ROOM_IDS, EpisodeMetrics
from lit_rl.algos.loss_sums import LossSums
from lit_rl.algos.nonfinite import NonFiniteGuard
from lit_rl.data.episodes import EvaluationEpisodes, RolloutEpisodes
from lit_rl.data.rollout import Rollout
from lit_rl.errors import ConfigError


class RolloutModule(L.LightningModule):
    """A :class:`lit_rl.data.protocol.RolloutLearner` without its update; one Lightning epoch is one update.

    A learner built on it adds the update (``training_step``, ``configure_optimizers``), its
    ``process_rollout(rollout) -> Rollout`` (count :attr:`env_steps`, add what the update trains on)
    and its ``update_metrics() -> dict[str, float]`` (logged once per update beside env steps, steps/s
    and the episodes'), and may extend :meth:`on_update_end`.

    Args:
        total_env_steps: Training budget in env steps over all processes.
        stop_at_env_steps: End the run here instead (``None``: at ``total_env_steps``).
        nonfinite: ``stop`` or ``skip`` (see :class:`lit_rl.algos.nonfinite.NonFiniteGuard`).
    """

    def __init__(self, *, total_env_steps: int, stop_at_env_steps: int | None, nonfinite: Literal["stop", "skip"]):
        super().__init__()
        if total_env_steps <= 0:
            raise ConfigError(f"model.total_env_steps={total_env_steps}; expected a positive integer")
        if stop_at_env_steps is not None and not 0 < stop_at_env_steps <= total_env_steps:
            raise ConfigError(
                f"model.stop_at_env_steps={stop_at_env_steps}; expected a positive number of env steps up to "
                f"model.total_env_steps={total_env_steps}"
            )
        if nonfinite not in ("stop", "skip"):
            raise ConfigError(f"model.nonfinite={nonfinite!r}; expected 'stop' or 'skip'")
        self.total_env_steps = total_env_steps
        self.end_env_steps = total_env_steps if stop_at_env_steps is None else stop_at_env_steps
        self.nonfinite = NonFiniteGuard(nonfinite)
        # Module state, so checkpoints resume the schedules exactly.
        self.register_buffer("env_steps", torch.zeros((), dtype=torch.int64))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.int64))
        self.episode_metrics = EpisodeMetrics()
        # Rooms any env of any rank has been in since the start of training (Montezuma's Revenge).
        self.register_buffer("rooms_seen", torch.zeros(NUM_ROOM_IDS, dtype=torch.bool))
        self._stop_update = False  # end this update before its next minibatch (on every rank)
        self._epoch_start = (time.perf_counter(), 0)
        self._update_end = self._epoch_start[0]

    @property
    def progress_remaining(self) -> float:
        """``1 - env_steps / total_env_steps``, clamped to ``[0, 1]``."""
        return max(0.0, 1.0 - int(self.env_steps) / self.total_env_steps)

    @property
    def budget_reached(self) -> bool:
        return int(self.env_steps) >= self.end_env_steps

    @property
    def latest_episode_return(self) -> float:
        """Mean return of the last rollout in which an episode ended (the progress bar's)."""
        return self.episode_metrics.latest_return

    def _reduce_sum(self, x: Tensor) -> Tensor:
        """Sum over ranks (identity in one process or without a trainer)."""
        return x if self._trainer is None else self.trainer.strategy.reduce(x, reduce_op="sum")

    def prepare_rollout(self, rollout: Rollout, episodes: RolloutEpisodes) -> Rollout:
        """Record the episodes that ended in the rollout; return :meth:`process_rollout`'s rollout."""
        self.episode_metrics.update(episodes, self.rooms_seen, self._reduce_sum)
        return self.process_rollout(rollout)

    # -- the non-finite state guard --------------------------------------------------------------

    def check_finite_state(self) -> None:
        """Raise :class:`lit_rl.errors.NonFiniteError` naming the first NaN or infinite tensor of the
        state dict (on any rank), unless checked since it last changed; one host sync when it runs."""
        where = f"at env step {int(self.env_steps)} (after {int(self.num_updates)} updates)"
        self.nonfinite.check_state(self, self._reduce_sum, where)

    def step_is_finite(self, stats: Tensor, loss_sums: LossSums, batch_idx: int, scaled: bool) -> bool:
        """Whether a minibatch's loss terms and gradient norm (``stats``) are finite on every rank, before
        its optimiser step (see :meth:`lit_rl.algos.nonfinite.NonFiniteGuard.step_is_finite`)."""
        where = f"at env step {int(self.env_steps)} (minibatch {batch_idx} of this rollout, "
        where += f"after {int(self.num_updates)} updates)"
        keys, num_terms = loss_sums.keys, loss_sums.num_loss_terms
        return self.nonfinite.step_is_finite(stats, num_terms, keys, where, self._reduce_sum, scaled)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        self.check_finite_state()  # never write a bad state (normally this update's check, reused)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Checkpoints written before room tracking have no rooms_seen buffer: start it empty.
        checkpoint["state_dict"].setdefault("rooms_seen", torch.zeros(NUM_ROOM_IDS, dtype=torch.bool))
        self.nonfinite.state_changed()

    # -- one update per epoch ---------------------------------------------------------------------

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        # Rollouts are collected on the module's device already; move only if they are not.
        # Evaluation episodes are host arrays of raw scores and stay there.
        if not isinstance(batch, Rollout) or batch.actions.device == device:
            return batch
        return batch.to(device)

    def on_train_start(self) -> None:
        if self.budget_reached:  # resumed from the checkpoint of a finished run: nothing left to do
            rank_zero_info(f"The budget of {self.end_env_steps:,} env steps is already reached")
            self.trainer.should_stop = True

    def on_train_epoch_start(self) -> None:
        self._epoch_start = (time.perf_counter(), int(self.env_steps))
        self._update_end = self._epoch_start[0]

    def on_train_batch_start(self, batch: Rollout, batch_idx: int) -> int | None:
        return -1 if self._stop_update else None  # -1 ends this epoch (= this update) on every rank

    def on_train_batch_end(self, outputs: Tensor, batch: Rollout, batch_idx: int) -> None:
        # Lightning runs callbacks' epoch-end hooks (evaluation, checkpoints) before the module's,
        # so steps/s is measured to the end of the last minibatch: collection + update only.
        self._update_end = time.perf_counter()
        if self._stop_update or batch_idx == self.trainer.num_training_batches - 1:
            self.on_update_end()
            self.check_finite_state()  # once per update, before evaluations and checkpoints

    def on_update_end(self) -> None:
        """After the update's last minibatch, before evaluation and checkpoints (epoch-end hooks)."""

    def on_train_epoch_end(self) -> None:
        self.check_finite_state()  # a no-op unless the update ended without its last minibatch
        start_time, start_steps = self._epoch_start
        env_steps = int(self.env_steps)
        sps = (env_steps - start_steps) / max(self._update_end - start_time, 1e-9)
        metrics = {"env_steps": float(env_steps), "perf/sps": sps, **self.update_metrics()}
        metrics.update(self.episode_metrics.compute(self.rooms_seen))
        for logger in self.loggers:
            logger.log_metrics(metrics, step=env_steps)
        self.log("env_steps", float(env_steps), prog_bar=True, logger=False)
        self.log("sps", round(sps), prog_bar=True, logger=False)
        self.log("ep_return", self.latest_episode_return, prog_bar=True, logger=False)
        if self.budget_reached:
            self.trainer.should_stop = True

    # -- evaluating a checkpoint: lit-rl validate / lit-rl test ---------------------------------

    def validation_step(self, batch: EvaluationEpisodes, batch_idx: int) -> None:
        self._log_episodes(batch, "val")

    def test_step(self, batch: EvaluationEpisodes, batch_idx: int) -> None:
        self._log_episodes(batch, "test")

    def _log_episodes(self, episodes: EvaluationEpisodes, stage: str) -> None:
        """Log mean, std and length over the episodes of every rank (the datamodule ran them)."""
        returns = self.all_gather(torch.as_tensor(episodes.returns, dtype=torch.float64)).flatten()
        lengths = self.all_gather(torch.as_tensor(episodes.lengths, dtype=torch.float64)).flatten()
        gathered = EvaluationEpisodes(returns.cpu().numpy(), lengths.cpu().numpy())
        size = len(gathered.returns)
        self.log(f"{stage}/episode_return", float(gathered.returns.mean()), batch_size=size)
        self.log(f"{stage}/episode_return_std", float(gathered.returns.std()), batch_size=size)
        self.log(f"{stage}/episode_length", float(gathered.lengths.mean()), batch_size=size)
        rank_zero_info(
            f"{'Validation' if stage == 'val' else 'Test'} at {int(self.env_steps):,} env steps: {gathered.summary()}"
        )
