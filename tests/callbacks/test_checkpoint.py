"""Checkpoints named as the study's, rebuilt from the file alone; evaluating a checkpoint."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lit_rl.algos.ppo import PPO
from lit_rl.callbacks.checkpoint import EnvStepCheckpoint
from lit_rl.cli import run
from lit_rl.errors import ConfigError

STUDY = Path(__file__).parents[2] / "configs" / "study"


@pytest.mark.atari
def test_checkpoint_names_follow_the_study(cwrca_run) -> None:
    names = sorted(p.name for p in (cwrca_run.log_dir / "checkpoints").iterdir())
    assert names == [
        "Breakout_CWRCA_42_model_checkpoint_256_steps.ckpt",
        "Breakout_CWRCA_42_model_checkpoint_512_steps.ckpt",
        "last.ckpt",
    ]


@pytest.mark.atari
def test_checkpoint_alone_rebuilds_the_agent_with_identical_greedy_actions(cwrca_run) -> None:
    path = cwrca_run.log_dir / "checkpoints" / "Breakout_CWRCA_42_model_checkpoint_512_steps.ckpt"
    restored = PPO.load_from_checkpoint(path, weights_only=True)
    assert type(restored.policy.extractor.attention).__name__ == "CWRCA"
    assert int(restored.env_steps) == 512
    # Real observations from the run's evaluation env, not zeros: every action must agree.
    env = cwrca_run.cli.datamodule.make_env(4, evaluation=True)
    try:
        obs, _ = env.reset(seed=3)
        frames = [obs]
        for _ in range(30):
            obs, *_ = env.step(env.action_space.sample())
            frames.append(obs)
    finally:
        env.close()
    batch = torch.as_tensor(np.concatenate(frames))
    trained = cwrca_run.cli.model.policy.eval()
    logits_trained = trained(batch).logits
    logits_restored = restored.policy.eval()(batch).logits
    torch.testing.assert_close(logits_restored, logits_trained)
    assert torch.equal(restored.policy.act(batch, greedy=True).actions, trained.act(batch, greedy=True).actions)


def _evaluate_args(subcommand: str, ckpt: Path, save_dir: Path) -> list[str]:
    return [
        subcommand,
        "--config",
        str(STUDY / "CWRCA.yaml"),
        "--data.env_id=BreakoutNoFrameskip-v4",
        "--data.eval_episodes=2",
        "--data.eval_greedy=true",
        f"--trainer.logger.init_args.save_dir={save_dir}",
        "--trainer.enable_progress_bar=false",
        f"--ckpt_path={ckpt}",
    ]


@pytest.mark.atari
def test_lit_rl_validate_prints_mean_and_std_of_the_checkpoint(cwrca_run, tmp_path: Path) -> None:
    ckpt = cwrca_run.log_dir / "checkpoints" / "Breakout_CWRCA_42_model_checkpoint_256_steps.ckpt"
    cmd = [sys.executable, "-m", "lit_rl", *_evaluate_args("validate", ckpt, tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # The checkpoint was loaded: the printed step count is the checkpoint's, not a fresh model's 0.
    line = re.search(r"Validation at 256 env steps: return (\S+) ± (\S+) \(mean ± std over 2 episodes\)", proc.stderr)
    assert line is not None, proc.stderr[-2000:]
    # The same numbers in the metrics table Lightning prints.
    table = re.search(r"val/episode_return[\s│┃|]+([-+.\deE]+)", proc.stdout + proc.stderr)  # plain or rich
    assert table is not None and float(line.group(1)) == pytest.approx(float(table.group(1)), abs=0.005)


@pytest.mark.atari
def test_lit_rl_test_is_deterministic_with_greedy_actions(cwrca_run, tmp_path: Path) -> None:
    ckpt = cwrca_run.log_dir / "checkpoints" / "Breakout_CWRCA_42_model_checkpoint_512_steps.ckpt"
    scores = []
    for _ in range(2):
        metrics = run(_evaluate_args("test", ckpt, tmp_path)).trainer.callback_metrics
        scores.append((float(metrics["test/episode_return"]), float(metrics["test/episode_length"])))
    assert scores[0] == scores[1]
    assert scores[0][1] > 100  # full games of Breakout, not single lives


def test_bad_filename_template_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"checkpoint.filename='\{game\}_\{run\}'.*\{env_steps\}"):
        EnvStepCheckpoint(filename="{game}_{run}")
