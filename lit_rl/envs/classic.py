"""Classic-control envs of lit_rl: StatelessCartPole, and observation stacking for any env.

StatelessCartPole follows RLlib's GTrXL release test (Parisotto et al., 2020, as RLlib runs it) and RLlib's
``ray/rllib/examples/envs/classes/stateless_cartpole.py``: CartPole-v1's dynamics, rewards and
500-step time limit, with the two velocities removed from the observation, so a memoryless policy
cannot tell which way the cart and the pole move.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

from lit_rl.errors import ConfigError

STATELESS_CARTPOLE_ID = "lit_rl/StatelessCartPole-v1"

#: Observation bounds ``[x, θ]``: twice the termination thresholds (2.4 m, 12° = 0.2094 rad), as CartPole-v1.
STATELESS_CARTPOLE_HIGH = np.array([4.8, 0.4189], dtype=np.float32)


class StatelessCartPoleEnv(CartPoleEnv):
    """CartPole-v1 observing ``[x, θ]`` only (cart position, pole angle).

    Registered by ``import lit_rl``: ``gym.make("lit_rl/StatelessCartPole-v1")`` (``TimeLimit`` of
    500 steps, a truncation).
    """

    def __init__(self, render_mode: str | None = None) -> None:
        super().__init__(render_mode=render_mode)
        self.observation_space = gym.spaces.Box(-STATELESS_CARTPOLE_HIGH, STATELESS_CARTPOLE_HIGH, dtype=np.float32)

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        state, reward, terminated, truncated, info = super().step(action)
        return self._observe(state), reward, terminated, truncated, info

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        state, info = super().reset(seed=seed, options=options)
        return self._observe(state), info

    @staticmethod
    def _observe(state: np.ndarray) -> np.ndarray:
        return np.asarray(state, dtype=np.float32)[[0, 2]]


def register_envs() -> None:
    """Register lit_rl's env ids with gymnasium (idempotent; ``import lit_rl`` calls it)."""
    from lit_rl.envs.cue import CUE_MEMORY_ID, CueMemoryEnv

    if STATELESS_CARTPOLE_ID not in gym.registry:
        gym.register(
            id=STATELESS_CARTPOLE_ID,
            entry_point=StatelessCartPoleEnv,
            max_episode_steps=500,
            reward_threshold=475.0,
        )
    if CUE_MEMORY_ID not in gym.registry:
        gym.register(id=CUE_MEMORY_ID, entry_point=CueMemoryEnv)


def stack_observations(env: gym.Env, num_stack: int) -> gym.Env:
    """The last ``num_stack`` observations of ``env`` as one ``[num_stack, *obs_shape]`` observation.

    gymnasium's ``FrameStackObservation`` with its ``"reset"`` padding: at an episode start the stack
    is filled with the first observation (no velocity seen yet), never with the previous episode's.
    ``num_stack = 1`` returns ``env`` unchanged.
    """
    if num_stack < 1:
        raise ConfigError(f"obs_stack={num_stack}; expected a positive integer (1 = no stacking)")
    if num_stack == 1:
        return env
    return gym.wrappers.FrameStackObservation(env, num_stack)
