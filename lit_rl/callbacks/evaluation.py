"""Periodic and final evaluation on a separate env with raw full-game scores (spec §3)."""

from __future__ import annotations

import lightning as L
import numpy as np
from jsonargparse.typing import NonNegativeInt, PositiveInt
from lightning.pytorch.utilities import rank_zero_info

from lit_rl.evaluation import run_episodes


class Evaluation(L.Callback):
    """Evaluates every ``every_n_env_steps`` and when the budget is reached; rank 0 only.

    Args:
        every_n_env_steps: Evaluation period in env steps (0: only the final evaluation).
        num_episodes: Full episodes per evaluation, one per env.
        greedy: Greedy actions instead of sampled ones (the study samples).
        seed: Seed of the evaluation envs' resets (offset by the evaluation index).
    """

    def __init__(
        self,
        every_n_env_steps: NonNegativeInt = 200_000,
        num_episodes: PositiveInt = 5,
        greedy: bool = False,
        seed: int = 10_000,
    ) -> None:
        self.every_n_env_steps = every_n_env_steps
        self.num_episodes = num_episodes
        self.greedy = greedy
        self.seed = seed
        self._last_step = 0
        self.history: list[tuple[int, np.ndarray, np.ndarray]] = []

    def _due(self, env_steps: int) -> bool:
        n = self.every_n_env_steps
        return n > 0 and env_steps // n > self._last_step // n

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        env_steps = int(pl_module.env_steps)
        final = pl_module.budget_reached
        if not (self._due(env_steps) or final) or trainer.sanity_checking:
            return
        self._last_step = env_steps
        if trainer.is_global_zero:
            env = trainer.datamodule.make_env(self.num_episodes, evaluation=True)
            try:
                returns, lengths = run_episodes(
                    pl_module.policy, env, seed=self.seed + len(self.history), greedy=self.greedy
                )
            finally:
                env.close()
            self.history.append((env_steps, returns, lengths))
            metrics = {
                "eval/episode_return": float(returns.mean()),
                "eval/episode_return_std": float(returns.std()),
                "eval/episode_length": float(lengths.mean()),
                "env_steps": float(env_steps),
            }
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=env_steps)
            label = "Final evaluation" if final else "Evaluation"
            rank_zero_info(
                f"{label} at {env_steps:,} env steps: return {returns.mean():.2f} ± {returns.std():.2f} "
                f"(mean ± std over {len(returns)} episodes)"
            )
        trainer.strategy.barrier("evaluation")
