"""The non-finite state check runs once per update, however many evaluations and checkpoints reuse it."""

from __future__ import annotations

from pathlib import Path

import pytest

import lit_rl.algos.nonfinite as nonfinite
from lit_rl.cli import run

QUICKSTART = str(Path(__file__).parents[2] / "configs" / "quickstart.yaml")


def test_the_state_is_checked_once_per_update(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    entries = nonfinite.nonfinite_entries

    def counting(module, reduce_sum):
        calls.append(int(module.num_updates))
        return entries(module, reduce_sum)

    monkeypatch.setattr(nonfinite, "nonfinite_entries", counting)
    rollout = 4 * 16
    cli = run(
        [
            "fit",
            "--config",
            QUICKSTART,
            "--data.num_envs=4",
            "--data.num_steps=16",
            "--data.num_minibatches=2",
            "--data.update_epochs=2",
            "--data.eval_episodes=1",
            f"--model.total_env_steps={3 * rollout}",
            "--trainer.enable_progress_bar=false",
            f"--trainer.logger.init_args.save_dir={tmp_path}",
            f"--evaluation.every_n_env_steps={rollout}",  # an evaluation and a checkpoint at every update
            f"--checkpoint.every_n_env_steps={rollout}",
            f"--checkpoint.dirpath={tmp_path / 'ckpt'}",
        ]
    )
    assert int(cli.model.num_updates) == 3 * 2 * 2
    assert len(list((tmp_path / "ckpt").glob("*.ckpt"))) >= 3
    assert calls == [4, 8, 12]  # once per update, after its last minibatch
