"""One short Atari run of a study agent, shared by the evaluation and checkpoint tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from lit_rl.cli import LitRLCLI, run

STUDY = Path(__file__).parents[2] / "configs" / "study"

# 2 envs x 64 steps = 128 env steps per rollout; 4 rollouts; evaluation and checkpoint every 256 steps.
SHORT_RUN = [
    "--data.env_id=BreakoutNoFrameskip-v4",
    "--seed_everything=42",
    "--data.num_envs=2",
    "--data.num_steps=64",
    "--data.num_minibatches=2",
    "--data.update_epochs=1",
    "--data.eval_episodes=3",
    "--model.total_env_steps=512",
    "--evaluation.every_n_env_steps=256",
    "--checkpoint.every_n_env_steps=256",
    "--trainer.enable_progress_bar=false",
]


@dataclass(frozen=True)
class StudyRun:
    cli: LitRLCLI
    log_dir: Path


@pytest.fixture(scope="session")
def cwrca_run(tmp_path_factory: pytest.TempPathFactory) -> StudyRun:
    """``lit-rl fit --config configs/study/CWRCA.yaml`` on Breakout, 512 env steps."""
    root = tmp_path_factory.mktemp("study_run")
    cli = run(["fit", "--config", str(STUDY / "CWRCA.yaml"), f"--trainer.logger.init_args.save_dir={root}", *SHORT_RUN])
    return StudyRun(cli, Path(cli.trainer.log_dir))
