"""Checkpoints every N env steps, at the end of training and on preemption, written atomically.

A checkpoint holds everything an exact resume needs: the module (parameters, env-step counter,
running statistics), the optimiser, Lightning's loop state, every callback's state (the evaluation
history, the last checkpointed step) and, here, the RNG states of every process (torch, CUDA,
numpy, python) and the run's log directory.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from jsonargparse.typing import NonNegativeInt
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities import rank_zero_warn

from lit_rl._lightning_compat import hpc_save_path
from lit_rl.errors import ConfigError

#: Written to the run's log directory when a run reaches its budget (holds the env-step count).
DONE = "DONE"


def rng_states() -> dict[str, Any]:
    """This process's RNG states as tensors and plain lists (they load with ``weights_only``)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        # The current device's only: a resume may see another number of GPUs per process.
        "cuda": [torch.cuda.get_rng_state()] if torch.cuda.is_initialized() else [],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
        "python": [version, list(internal), gauss_next],
    }


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` returned."""
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["cuda"][0])
    name, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))


class EnvStepCheckpoint(L.Callback):
    """Saves a checkpoint every ``every_n_env_steps`` and keeps ``last.ckpt`` up to date.

    A run that reaches its budget writes ``DONE`` into its log directory.

    The periodic files are named as the study's published ones,
    ``<Game>_<Agent>_<Seed>_model_checkpoint_<steps>_steps.ckpt`` by default. Every file is written
    to a temporary name, flushed to disk and renamed, so a process killed at any moment (even with
    ``kill -9``) leaves the previous checkpoint of that name loadable. When the run is preempted
    (:class:`lit_rl.callbacks.preemption.Preemption`) ``last.ckpt`` is written at the end of the current
    update, and under SLURM also Lightning's ``hpc_ckpt_<n>.ckpt`` in ``trainer.default_root_dir``, from
    which a requeued job resumes on its own.

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
        self._trainer: L.Trainer | None = None
        self.saved: list[Path] = []

    def resolve_dir(self, trainer: L.Trainer) -> Path:
        return Path(self.dirpath if self.dirpath is not None else Path(trainer.log_dir or ".") / "checkpoints")

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        env_steps = int(pl_module.env_steps)
        n = self.every_n_env_steps
        periodic = n > 0 and env_steps // n > self._last_step // n
        final = pl_module.budget_reached
        preempted = preempting(trainer)
        if not (periodic or final or preempted) or trainer.sanity_checking or trainer.fast_dev_run:
            return
        self._last_step = env_steps
        directory = self.resolve_dir(trainer)
        if periodic:
            self._save(trainer, directory / (self.format_filename(trainer, pl_module, env_steps) + ".ckpt"))
        if self.save_last or preempted:
            self._save(trainer, directory / "last.ckpt")
        if preempted and SLURMEnvironment.detect():
            # Lightning resumes a requeued SLURM job from the newest hpc_ckpt_<n>.ckpt in default_root_dir.
            self._save(trainer, Path(hpc_save_path(trainer, trainer.default_root_dir)))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A finished run marks its directory (sweeps skip it); a preempted or failed one does not.
        log_dir = trainer.log_dir  # a collective under DDP
        if pl_module.budget_reached and trainer.is_global_zero and log_dir is not None:
            (Path(log_dir) / DONE).write_text(f"{int(pl_module.env_steps)}\n")

    def format_filename(self, trainer: L.Trainer, pl_module: L.LightningModule, env_steps: int) -> str:
        """The periodic checkpoint's file name (without ``.ckpt``) at ``env_steps``."""
        agent = self.agent
        if agent is None:
            agent = trainer.logger.name if trainer.logger is not None else type(pl_module.policy.extractor).__name__
        datamodule = trainer.datamodule
        return self.filename.format(game=datamodule.game, agent=agent, seed=datamodule.seed, env_steps=env_steps)

    def _save(self, trainer: L.Trainer, path: Path) -> None:
        # Not named hpc_ckpt_*: Lightning takes any such name for a finished SLURM checkpoint.
        tmp = path.with_name(path.name.replace("hpc_ckpt_", "hpc-partial-") + ".tmp")
        if trainer.is_global_zero:
            path.parent.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(tmp, weights_only=False)  # full: optimiser and callback state too
        if trainer.is_global_zero:
            with open(tmp, "rb") as f:  # on disk before the rename, so a crash cannot leave a torn file
                os.fsync(f.fileno())
            os.replace(tmp, path)
            _fsync_dir(path.parent)
            self.saved.append(path)
        trainer.strategy.barrier("checkpoint")

    def state_dict(self) -> dict[str, Any]:
        # Called on every rank while a checkpoint is written: the RNG states of all ranks are gathered.
        states = [rng_states()]
        trainer = self._trainer
        if trainer is not None and trainer.world_size > 1 and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, states[0])
            states = gathered
        log_dir = trainer.log_dir if trainer is not None and trainer.logger is not None else None
        datamodule = trainer.datamodule if trainer is not None else None
        seed = getattr(datamodule, "seed", None)
        return {"last_step": self._last_step, "rng_states": states, "log_dir": log_dir, "seed": seed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._last_step = int(state_dict.get("last_step", 0))
        states = state_dict.get("rng_states")
        trainer = self._trainer
        if not states or (trainer is not None and trainer.state.fn != "fit"):
            return  # validate/test: the run's own seed decides the evaluation, not the checkpoint's RNG
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        if len(states) != world:
            rank_zero_warn(
                f"the checkpoint holds the RNG states of {len(states)} processes, this run has {world}: "
                "RNG states are not restored (the run goes on from the seed of seed_everything)"
            )
            return
        set_rng_states(states[rank])


def preempting(trainer: L.Trainer) -> bool:
    """True once a :class:`Preemption` callback has decided to stop after this update."""
    return any(getattr(cb, "stopping", False) for cb in trainer.callbacks)


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
