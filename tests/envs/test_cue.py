"""lit_rl/CueMemory-v0: the cue, the blank corridor, the decision and its reward, as the docstring states."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import lit_rl  # noqa: F401
from lit_rl.envs.cue import CueMemoryEnv
from lit_rl.errors import ConfigError


@pytest.mark.parametrize("action_is_cue", [True, False])
def test_cue_then_blank_steps_then_a_rewarded_decision(action_is_cue: bool) -> None:
    env = gym.make("lit_rl/CueMemory-v0")
    cues = set()
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        cue = int(np.argmax(obs))
        cues.add(cue)
        assert obs.tolist() == [float(cue == 0), float(cue == 1), 0.0]
        for step in range(1, 11):  # 9 blank observations, then "decide now" on the 10th
            obs, reward, terminated, truncated, _ = env.step(1 - cue)  # actions before the decision do nothing
            assert (reward, terminated, truncated) == (0.0, False, False)
            assert obs.tolist() == ([0.0, 0.0, 1.0] if step == 10 else [0.0, 0.0, 0.0])
        _, reward, terminated, truncated, info = env.step(cue if action_is_cue else 1 - cue)
        assert (reward, terminated, truncated, info["success"]) == (
            (1.0, True, False, True) if action_is_cue else (-1.0, True, False, False)
        )
    assert cues == {0, 1}


def test_delay_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="delay=0; expected a positive number of steps"):
        CueMemoryEnv(delay=0)


def test_import_lit_rl_registers_its_envs() -> None:
    """In a fresh interpreter: `import lit_rl` is all gymnasium.make needs."""
    code = (
        "import gymnasium, lit_rl; [gymnasium.make(i) for i in ('lit_rl/StatelessCartPole-v1', 'lit_rl/CueMemory-v0')]"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-1000:]
