"""Periodic and final evaluation on a separate env with raw full-game scores (the axis-attention study's
protocol; README, "Using the CLI").

Results go to TensorBoard (``eval/*`` against env steps) and to ``evaluations.npz`` in the run's log
directory with the keys and shapes of RL Zoo's ``EvalCallback`` — ``timesteps [E]``,
``results [E, K]``, ``ep_lengths [E, K]`` — so existing RL tooling reads it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from jsonargparse.typing import NonNegativeInt
from lightning.pytorch.utilities import rank_zero_info

from lit_rl.callbacks.checkpoint import preempting
from lit_rl.data.episodes import EvaluationEpisodes


class Evaluation(L.Callback):
    """Evaluates every ``every_n_env_steps`` and when the budget is reached, on global rank 0 only.

    The other ranks wait at a barrier. The episodes (``data.eval_episodes``, sampled or greedy
    actions: ``data.eval_greedy``) are run by the datamodule's :meth:`run_evaluation`. The history is
    callback state, so a resumed run continues its ``evaluations.npz`` (rows written after the
    checkpoint by the interrupted run are replaced, none is repeated). A periodic evaluation that falls
    on the update at which the run is preempted is left to the resumed run, which runs it first, with
    the same parameters and episode seeds.

    Args:
        every_n_env_steps: Evaluation period in env steps (0: only the final evaluation).
        npz_name: File name in the run's log directory (``None``: no file).
    """

    def __init__(self, every_n_env_steps: NonNegativeInt = 200_000, npz_name: str | None = "evaluations.npz") -> None:
        self.every_n_env_steps = int(every_n_env_steps)
        self.npz_name = npz_name
        self._last_step = 0
        self.timesteps: list[int] = []
        self.results: list[np.ndarray] = []
        self.ep_lengths: list[np.ndarray] = []

    def _due(self, env_steps: int) -> bool:
        n = self.every_n_env_steps
        return n > 0 and env_steps // n > self._last_step // n

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A resumed run first runs the evaluation its checkpoint's update was due (left out on preemption).
        env_steps = int(pl_module.env_steps)
        if env_steps > self._last_step and (self._due(env_steps) or pl_module.budget_reached):
            self._evaluate(trainer, pl_module, env_steps, pl_module.budget_reached)
        elif self.timesteps and self.npz_name is not None:
            # Drop rows the interrupted run wrote after its checkpoint (trainer.log_dir: a collective).
            npz_path = Path(trainer.log_dir or ".") / self.npz_name
            if trainer.is_global_zero:
                self.write_npz(npz_path)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        env_steps = int(pl_module.env_steps)
        final = pl_module.budget_reached
        if not (self._due(env_steps) or final) or trainer.sanity_checking or env_steps == self._last_step:
            return
        if not final and preempting(trainer):
            return  # preempted: the checkpoint is written now, the resumed run evaluates first
        self._evaluate(trainer, pl_module, env_steps, final)

    def _evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule, env_steps: int, final: bool) -> None:
        # A NaN policy is reported by name, not by the sampler (normally the check of this update, reused).
        check = getattr(pl_module, "check_finite_state", None)
        if check is not None:
            check()  # every rank: a collective under DDP
        self._last_step = env_steps
        # trainer.log_dir is a collective under DDP: every rank asks for it, outside the rank-0 branch.
        npz_path = Path(trainer.log_dir or ".") / self.npz_name if self.npz_name is not None else None
        if trainer.is_global_zero:
            results = trainer.datamodule.run_evaluation(pl_module.policy, index=len(self.timesteps))
            self._record(trainer, env_steps, results, npz_path)
            label = "Final evaluation" if final else "Evaluation"
            rank_zero_info(f"{label} at {env_steps:,} env steps: {results.summary()}")
        trainer.strategy.barrier("evaluation")

    def _record(self, trainer: L.Trainer, env_steps: int, results: EvaluationEpisodes, npz_path: Path | None) -> None:
        self.timesteps.append(env_steps)
        self.results.append(results.returns)
        self.ep_lengths.append(results.lengths)
        metrics = {
            "eval/episode_return": float(results.returns.mean()),
            "eval/episode_return_std": float(results.returns.std()),
            "eval/episode_length": float(results.lengths.mean()),
            "env_steps": float(env_steps),
        }
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=env_steps)
        if npz_path is not None:
            self.write_npz(npz_path)

    def write_npz(self, path: Path) -> None:
        """Write the history atomically (temporary file, then rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(
                f,
                timesteps=np.asarray(self.timesteps, dtype=np.int64),
                results=np.stack(self.results).astype(np.float64),
                ep_lengths=np.stack(self.ep_lengths).astype(np.int64),
            )
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def state_dict(self) -> dict[str, Any]:
        return {
            "last_step": self._last_step,
            "timesteps": list(self.timesteps),
            "results": [r.tolist() for r in self.results],
            "ep_lengths": [r.tolist() for r in self.ep_lengths],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._last_step = int(state_dict["last_step"])
        self.timesteps = [int(t) for t in state_dict["timesteps"]]
        self.results = [np.asarray(r, dtype=np.float64) for r in state_dict["results"]]
        self.ep_lengths = [np.asarray(r, dtype=np.int64) for r in state_dict["ep_lengths"]]
