"""Checkpoints every N env steps and at the end of training, written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
from jsonargparse.typing import NonNegativeInt

from lit_rl.errors import ConfigError


class EnvStepCheckpoint(L.Callback):
    """Saves a checkpoint every ``every_n_env_steps`` and keeps ``last.ckpt`` up to date.

    The periodic files are named as the study's published ones,
    ``<Game>_<Agent>_<Seed>_model_checkpoint_<steps>_steps.ckpt`` by default. Files are written to a
    temporary name and renamed, so an interrupted write never replaces an earlier checkpoint.

    Args:
        dirpath: Directory; default ``<trainer.log_dir>/checkpoints``.
        every_n_env_steps: Period in env steps (0: only ``last.ckpt`` at the end).
        save_last: Also keep ``last.ckpt`` up to date.
        filename: Name template of the periodic files (without ``.ckpt``), with the fields ``{game}``
            (``PongNoFrameskip-v4`` → ``Pong``), ``{agent}``, ``{seed}`` (the env seed) and ``{env_steps}``.
        agent: The ``{agent}`` field; default the logger's name (the study configs set it to the
            agent: NA, SWA, CWRA, CWCA, CWRCA), or the extractor's class name without a logger.
    """

    def __init__(
        self,
        dirpath: str | None = None,
        every_n_env_steps: NonNegativeInt = 500_000,
        save_last: bool = True,
        filename: str = "{game}_{agent}_{seed}_model_checkpoint_{env_steps}_steps",
        agent: str | None = None,
    ) -> None:
        try:
            filename.format(game="g", agent="a", seed=0, env_steps=0)
        except (KeyError, IndexError, ValueError) as err:
            raise ConfigError(
                f"checkpoint.filename={filename!r} is not a valid template ({err}); "
                "use the fields {game}, {agent}, {seed} and {env_steps}"
            ) from None
        self.dirpath = dirpath
        self.every_n_env_steps = int(every_n_env_steps)
        self.save_last = save_last
        self.filename = filename
        self.agent = agent
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
            self._save(trainer, directory / (self.format_filename(trainer, pl_module, env_steps) + ".ckpt"))
        if self.save_last:
            self._save(trainer, directory / "last.ckpt")

    def format_filename(self, trainer: L.Trainer, pl_module: L.LightningModule, env_steps: int) -> str:
        """The periodic checkpoint's file name (without ``.ckpt``) at ``env_steps``."""
        agent = self.agent
        if agent is None:
            agent = trainer.logger.name if trainer.logger is not None else type(pl_module.policy.extractor).__name__
        datamodule = trainer.datamodule
        return self.filename.format(game=datamodule.game, agent=agent, seed=datamodule.seed, env_steps=env_steps)

    def _save(self, trainer: L.Trainer, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        if trainer.is_global_zero:
            path.parent.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(tmp, weights_only=False)  # full: optimiser and callback state too
        if trainer.is_global_zero:
            os.replace(tmp, path)
            self.saved.append(path)
        trainer.strategy.barrier("checkpoint")
