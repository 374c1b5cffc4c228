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
