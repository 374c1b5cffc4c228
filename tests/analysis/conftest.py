"""Fake lit_rl run directories for the analysis tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml


def _make_run(root: Path, name: str, env_id: str, agent: str | None, seed: int, timesteps, means) -> Path:
    run = root / name
    run.mkdir(parents=True)
    config = {
        "seed_everything": seed,
        "data": {"env_id": env_id},
        "trainer": {"logger": {"init_args": {"name": "logger_name"}}},
        "checkpoint": {"agent": agent},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    results = np.repeat(np.asarray(means, dtype=float)[:, None], 3, axis=1)  # 3 episodes, same score
    np.savez(run / "evaluations.npz", timesteps=np.asarray(timesteps), results=results, ep_lengths=results)
    return run


@pytest.fixture
def make_run():
    """``make_run(root, name, env_id, agent, seed, timesteps, means)``: a run directory with a saved
    config and an ``evaluations.npz`` whose every episode scored ``means[e]`` at evaluation ``e``."""
    return _make_run


#: Evaluation steps of the fake study pickle (the study's first five) and of lit_rl runs evaluated like it.
STUDY_STEPS = [200_000, 400_000, 600_000, 800_000, 1_000_000]
OUR_STEPS = [200_704, 401_408, 600_064, 800_768, 1_001_472]


def study_values(game: str) -> np.ndarray:
    """The fake study's evaluations ``[5 steps, 5 seeds]``: ``2(e + 1) + j`` at step ``e`` for seed column ``j``
    (Breakout), minus 21 (Pong)."""
    values = 2.0 * np.arange(1, 6)[:, None] + np.arange(5)[None, :]
    return values - 21.0 if game == "Pong" else values


@pytest.fixture
def study_pickle(tmp_path: Path) -> Path:
    """A pickle with the study's layout: Breakout and Pong × NA and CWRA, 5 evaluations × 5 seeds."""
    import pickle

    data = {}
    for game in ("Breakout", "Pong"):
        evals = study_values(game)
        entry = {"timesteps": np.array(STUDY_STEPS), "mean_per_eval": evals, "mean": evals.mean(axis=1)}
        data[f"{game}NoFrameskip-v4"] = {"NA": entry, "CWRA": entry}
    path = tmp_path / "study.pkl"
    path.write_bytes(pickle.dumps(data))
    return path
