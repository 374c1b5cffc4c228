"""A cue to remember: the smallest task that a policy without memory cannot solve.

A T-maze in the spirit of Bakker (2002), "Reinforcement Learning with Long Short-Term Memory": the first
observation shows a cue (left or right); then ``delay`` blank steps in which actions do nothing; then a
decision step whose observation says only "decide now". The action taken there ends the episode with
reward +1 if it names the cue and -1 otherwise. At the decision the cue has been invisible for ``delay``
steps, so a memoryless policy succeeds with probability 1/2 at best, and a policy with memory can reach 1.
"""

from __future__ import annotations

from typing import ClassVar

import gymnasium as gym
import numpy as np

from lit_rl.errors import ConfigError

CUE_MEMORY_ID = "lit_rl/CueMemory-v0"


class CueMemoryEnv(gym.Env):
    """Observations ``[cue_left, cue_right, decide]`` (float32), two actions (0: left, 1: right).

    Step 0 shows the cue (one-hot), steps ``1 … delay - 1`` show zeros, step ``delay`` shows
    ``[0, 0, 1]``; the action taken on it ends the episode (``terminated``) with reward +1 if it equals
    the cue and -1 otherwise (``info["success"]``). Every other step gives reward 0. An episode is
    ``delay + 1`` steps long.

    Args:
        delay: Steps between the cue and the decision (>= 1).
    """

    metadata: ClassVar[dict] = {"render_modes": []}

    def __init__(self, delay: int = 10) -> None:
        if delay < 1:
            raise ConfigError(f"CueMemory delay={delay}; expected a positive number of steps")
        self.delay = int(delay)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (3,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self._cue, self._t = 0, 0

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._cue, self._t = int(self.np_random.integers(2)), 0
        obs = np.zeros(3, dtype=np.float32)
        obs[self._cue] = 1.0
        return obs, {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs = np.zeros(3, dtype=np.float32)
        if self._t == self.delay:  # the decision
            success = int(action) == self._cue
            return obs, 1.0 if success else -1.0, True, False, {"success": success}
        self._t += 1
        if self._t == self.delay:
            obs[2] = 1.0
        return obs, 0.0, False, False, {}
