"""Checkpoints every N env steps and at the end of training, written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
from jsonargparse.typing import NonNegativeInt


class EnvStepCheckpoint(L.Callback):
    """Saves ``step_<env_steps>.ckpt`` every ``every_n_env_steps`` and ``last.ckpt`` with it.

    Files are written to a temporary name and renamed, so an interrupted write never replaces an
    earlier checkpoint.

    Args:
        dirpath: Directory; default ``<trainer.log_dir>/checkpoints``.
        every_n_env_steps: Period in env steps (0: only ``last.ckpt`` at the end).
        save_last: Also keep ``last.ckpt`` up to date.
    """

    def __init__(
        self, dirpath: str | None = None, every_n_env_steps: NonNegativeInt = 500_000, save_last: bool = True
    ) -> None:
        self.dirpath = dirpath
        self.every_n_env_steps = every_n_env_steps
        self.save_last = save_last
        self._last_step = 0
        self.saved: list[Path] = []

    def resolve_dir(self, trainer: L.Trainer) -> Path:
        return Path(self.dirpath if self.dirpath is not None else Path(trainer.log_dir or ".") / "checkpoints")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        env_steps = int(pl_module.env_steps)
        n = self.every_n_env_steps
        periodic = n > 0 and env_steps // n > self._last_step // n
        final = pl_module.budget_reached
        if not (periodic or final) or trainer.sanity_checking or trainer.fast_dev_run:
            return
        self._last_step = env_steps
        directory = self.resolve_dir(trainer)
        if periodic:
            self._save(trainer, directory / f"step_{env_steps}.ckpt")
        if self.save_last:
            self._save(trainer, directory / "last.ckpt")

    def _save(self, trainer: L.Trainer, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        if trainer.is_global_zero:
            path.parent.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(tmp, weights_only=False)  # full: optimiser and callback state too
        if trainer.is_global_zero:
            os.replace(tmp, path)
            self.saved.append(path)
        trainer.strategy.barrier("checkpoint")
