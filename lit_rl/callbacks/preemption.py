"""Preemption: SIGTERM / SIGUSR1 end the current update, write a checkpoint and stop the run cleanly.

Clusters announce a preemption or the end of a time limit with a signal (SLURM sends SIGTERM, or
the signal of ``#SBATCH --signal=USR1@<seconds>`` that many seconds before), then kill the job a
grace period later. Stopping at once would checkpoint a half-done update, which cannot be resumed
exactly; an update takes seconds, so the run finishes it, writes ``last.ckpt`` (under SLURM also
Lightning's ``hpc_ckpt_<n>.ckpt``, see :class:`EnvStepCheckpoint`) and exits with status
``128 + signal`` (143 for SIGTERM, 138 for SIGUSR1), which tells a scheduler and a shell that the run
did not finish. Under SLURM the job is requeued first (``scontrol requeue``) and the requeued job
resumes from the checkpoint on its own.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any, Literal

import lightning as L
import torch
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from lit_rl._lightning_compat import take_over_sigterm

Signal = Literal["SIGTERM", "SIGUSR1", "SIGUSR2", "SIGINT"]


class Preemption(L.Callback):
    """Turns the ``signals`` into a checkpoint at the end of the current update and a clean stop.

    Under DDP every rank learns of a signal received by any rank (one reduction per update), so all
    ranks stop after the same update; Lightning's subprocess launcher's children get the signal too.

    Args:
        signals: The signals that mean "preempted" (SLURM: SIGTERM, and SIGUSR1 with ``--signal``).
        requeue: Under SLURM, requeue the job (``scontrol requeue``) before exiting.
    """

    def __init__(self, signals: list[Signal] | None = None, requeue: bool = True) -> None:
        names = ["SIGTERM", "SIGUSR1"] if signals is None else list(signals)
        self.signals = [signal.Signals[name] for name in names]
        self.requeue = requeue
        self.received: int | None = None
        self.stopping = False
        self._previous: dict[int, Any] = {}
        self._trainer: L.Trainer | None = None

    @property
    def exit_code(self) -> int | None:
        """``128 + signal`` once the run stopped because of a signal, else ``None``."""
        return 128 + self.received if self.stopping and self.received is not None else None

    # -- signal handling ----------------------------------------------------------------------

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Installed after Lightning's own handlers (registered just before the fit loop starts): its
        # SIGTERM handler would stop the run after the current minibatch, without a checkpoint.
        self._trainer = trainer
        self.received, self.stopping = None, False
        if take_over_sigterm(trainer):
            # A SIGTERM in the moment before this: take it over (Lightning would exit with status 0).
            self.received = signal.SIGTERM
        if sys.platform == "win32" or threading.current_thread() is not threading.main_thread():
            return
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is None:
            sys.stderr.write(
                f"lit-rl: received {signal.Signals(signum).name}: finishing this update, then writing a checkpoint\n"
            )
            trainer = self._trainer
            launcher = trainer.strategy.launcher if trainer is not None else None
            if launcher is not None and hasattr(launcher, "kill"):
                launcher.kill(signum)  # ranks started by Lightning from this process
        self.received = signum

    def _restore_handlers(self) -> None:
        # Before Lightning's own teardown, which then restores the handlers from before the run.
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore_handlers()

    # -- stopping -------------------------------------------------------------------------------

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Runs before the evaluation and checkpoint callbacks (the CLI adds it first).
        flag = torch.tensor(0.0 if self.received is None else float(self.received), device=pl_module.device)
        if trainer.world_size > 1:
            flag = trainer.strategy.reduce(flag, reduce_op="max")
        if flag.item() == 0 or pl_module.budget_reached:  # a signal at the last update: the run is done
            return
        self.received = self.received or int(flag.item())
        self.stopping = True
        trainer.should_stop = True
        rank_zero_info(
            f"Preempted ({signal.Signals(self.received).name}) at {int(pl_module.env_steps):,} env steps: "
            "writing the checkpoint and stopping"
        )

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_handlers()
        if self.stopping and self.requeue and SLURMEnvironment.detect() and trainer.is_global_zero:
            requeue_slurm_job()


def requeue_slurm_job(run: Callable[..., Any] = subprocess.run) -> bool:
    """``scontrol requeue`` this job (or array task); ``True`` if scontrol succeeded."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array_job else os.environ.get("SLURM_JOB_ID", "")
    if not re.fullmatch(r"[0-9_]+", job):
        rank_zero_warn(f"cannot requeue: SLURM job id {job!r} is not a job id")
        return False
    try:
        result = run(["scontrol", "requeue", job], check=False)
    except FileNotFoundError:
        rank_zero_warn("cannot requeue: scontrol is not on PATH")
        return False
    if result.returncode != 0:
        rank_zero_warn(f"scontrol requeue {job} failed with exit status {result.returncode}")
        return False
    rank_zero_info(f"Requeued SLURM job {job}")
    return True
