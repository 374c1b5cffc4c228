"""One vector env made of groups of envs that step in the background: the rollout pipeline's env.

ale-py's C++ ``AtariVectorEnv`` steps its games on its own threads between ``send(actions)`` and
``recv()``. Split into two groups, the collector can compute the next actions of one group while
the other steps (:meth:`lit_rl.data.collector.RolloutCollector.collect`), instead of leaving the
env threads idle during inference and the network idle during stepping.

:class:`EnvGroups` is also a plain gymnasium ``VectorEnv`` of all the envs (``step`` sends to every
group, then receives from every group), so evaluation and other code see no difference: env ``i``
of the whole is env ``i - offset`` of its group, seeded with ``seed + i``, and infos are merged to
the whole's rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space


class EnvGroups(VectorEnv):
    """Concatenation of ``groups`` (vector envs with ``send``/``recv``), in order.

    Args:
        groups: Two or more vector envs with the same spaces, in ``SAME_STEP`` autoreset mode, whose
            ``step`` is ``send(actions)`` (returns at once) then ``recv()`` (waits for the results).
    """

    def __init__(self, groups: list[VectorEnv]) -> None:
        if len(groups) < 2:
            raise ValueError(f"EnvGroups needs at least 2 groups, got {len(groups)}")
        self.groups = groups
        sizes = [g.num_envs for g in groups]
        self.offsets = np.cumsum([0, *sizes[:-1]]).tolist()
        self.slices = [slice(o, o + n) for o, n in zip(self.offsets, sizes, strict=True)]
        first = groups[0]
        self.num_envs = sum(sizes)
        self.single_observation_space = first.single_observation_space
        self.single_action_space = first.single_action_space
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}
        self.render_mode = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset every env; env ``i`` of the whole gets ``seed + i``."""
        if seed is not None:
            self.action_space.seed(seed)
        results = [
            g.reset(seed=None if seed is None else seed + o, options=options)
            for g, o in zip(self.groups, self.offsets, strict=True)
        ]
        return np.concatenate([obs for obs, _ in results]), self._merge_infos([info for _, info in results])

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        actions = np.asarray(actions)
        for group, rows in zip(self.groups, self.slices, strict=True):
            group.send(actions[rows])
        results = [group.recv() for group in self.groups]
        obs, rewards, terminated, truncated = (np.concatenate([r[k] for r in results]) for k in range(4))
        return obs, rewards, terminated, truncated, self._merge_infos([r[4] for r in results])

    def _merge_infos(self, infos: list[dict[str, Any]]) -> dict[str, Any]:
        merged = merge_infos(infos, [g.num_envs for g in self.groups])
        if "env_id" in merged:  # ale-py's own index of the env within its group
            merged["env_id"] = np.concatenate(
                [np.asarray(i["env_id"]) + o for i, o in zip(infos, self.offsets, strict=True)]
            )
        return merged

    def close_extras(self, **kwargs: Any) -> None:
        for group in self.groups:
            group.close()


def merge_infos(infos: list[dict[str, Any]], sizes: list[int]) -> dict[str, Any]:
    """Per-env info arrays of consecutive groups as one info of all their envs.

    A key missing from some groups gets zeros (``False`` for masks) in their rows; nested dicts
    (``info["episode"]``) are merged the same way.
    """
    keys = list(dict.fromkeys(k for info in infos for k in info))
    merged: dict[str, Any] = {}
    for key in keys:
        present = [info[key] for info in infos if key in info]
        if isinstance(present[0], dict):
            merged[key] = merge_infos([info.get(key, {}) for info in infos], sizes)
            continue
        like = np.asarray(present[0])
        parts = [
            np.asarray(info[key]) if key in info else np.zeros((n, *like.shape[1:]), dtype=like.dtype)
            for info, n in zip(infos, sizes, strict=True)
        ]
        merged[key] = np.concatenate(parts)
    return merged
