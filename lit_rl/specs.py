"""What a model needs to know about an environment, without seeing gymnasium spaces."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EnvSpec:
    """Static description of a (vector) environment for building models.

    Args:
        obs_shape: Shape of one observation, e.g. ``(4, 84, 84)`` or ``(4,)``.
        obs_dtype: ``"uint8"`` for images (scaled by 1/255 in the policy) or ``"float32"``.
        num_actions: Size of the discrete action set.
        num_envs: Number of parallel environments per process.
    """

    obs_shape: tuple[int, ...]
    obs_dtype: str
    num_actions: int
    num_envs: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "obs_shape", tuple(int(d) for d in self.obs_shape))
        if self.obs_dtype not in ("uint8", "float32"):
            raise ValueError(f"obs_dtype={self.obs_dtype!r}; expected 'uint8' or 'float32'")
        if self.num_actions < 1 or any(d < 1 for d in self.obs_shape):
            raise ValueError(f"invalid EnvSpec: obs_shape={self.obs_shape}, num_actions={self.num_actions}")
