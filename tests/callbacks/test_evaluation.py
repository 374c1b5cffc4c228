"""Periodic evaluation: RL Zoo's evaluations.npz, TensorBoard scalars, resumable history."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lit_rl.callbacks.evaluation import Evaluation


def _callback(cli, cls):
    (callback,) = [c for c in cli.trainer.callbacks if isinstance(c, cls)]
    return callback


@pytest.mark.atari
def test_short_atari_run_writes_rl_zoo_npz(cwrca_run) -> None:
    data = np.load(cwrca_run.log_dir / "evaluations.npz")
    assert sorted(data.files) == ["ep_lengths", "results", "timesteps"]
    # Evaluations at 256 and 512 env steps (the latter is also the final one, recorded once), 3 episodes each.
    np.testing.assert_array_equal(data["timesteps"], [256, 512])
    assert data["results"].shape == (2, 3) and data["ep_lengths"].shape == (2, 3)
    assert data["timesteps"].dtype == np.int64 and data["ep_lengths"].dtype == np.int64
    # Full Breakout games (5 lives, raw scores): far longer than one life, whole-number scores.
    assert (data["ep_lengths"] > 100).all()
    np.testing.assert_array_equal(data["results"], np.round(data["results"]))
    assert (data["results"] >= 0).all()


@pytest.mark.atari
def test_evaluations_are_logged_to_tensorboard_against_env_steps(cwrca_run) -> None:
    data = np.load(cwrca_run.log_dir / "evaluations.npz")
    (events,) = cwrca_run.log_dir.glob("events.out.tfevents.*")
    acc = EventAccumulator(str(events))
    acc.Reload()
    logged = acc.Scalars("eval/episode_return")
    assert [e.step for e in logged] == [256, 512]
    np.testing.assert_allclose([e.value for e in logged], data["results"].mean(axis=1), rtol=1e-6)


def test_history_round_trips_through_state_dict_and_npz(tmp_path: Path) -> None:
    first = Evaluation(every_n_env_steps=100)
    first.timesteps = [100, 200]
    first.results = [np.array([1.0, 2.0]), np.array([3.0, 5.0])]
    first.ep_lengths = [np.array([10, 20]), np.array([30, 50])]
    first._last_step = 200
    resumed = Evaluation(every_n_env_steps=100)
    resumed.load_state_dict(first.state_dict())
    assert resumed._due(300) and not resumed._due(299)
    resumed.write_npz(tmp_path / "evaluations.npz")
    data = np.load(tmp_path / "evaluations.npz")
    np.testing.assert_array_equal(data["timesteps"], [100, 200])
    np.testing.assert_array_equal(data["results"], [[1.0, 2.0], [3.0, 5.0]])
    np.testing.assert_array_equal(data["ep_lengths"], [[10, 20], [30, 50]])
    assert not (tmp_path / "evaluations.npz.tmp").exists()


@pytest.mark.parametrize(("period", "steps", "due"), [(200, [128, 256, 384, 512], [256, 512]), (0, [128, 256], [])])
def test_due_once_per_period_crossed(period: int, steps: list[int], due: list[int]) -> None:
    callback = Evaluation(every_n_env_steps=period)
    fired = []
    for s in steps:
        if callback._due(s):
            fired.append(s)
            callback._last_step = s
    assert fired == due
