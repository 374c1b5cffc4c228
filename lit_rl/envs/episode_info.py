"""The episode-statistics contract every lit_rl vector env follows.

Every vector env from :func:`lit_rl.envs.factory.make_vector_env` uses gymnasium's
``AutoresetMode.SAME_STEP`` and reports, at the step where a *full* episode ends (a game over or a
time limit, never a training-only life loss), ``episode["r"]`` (the raw, unclipped return) and
``episode["l"]`` (its length in agent steps) with the boolean mask ``_episode``, as gymnasium's
``RecordEpisodeStatistics`` does. gymnasium's vector envs put them in ``info["final_info"]`` (the info
of the final step, since the returned info belongs to the reset); ale-py's C++ backend in ``info``.
The observation that ended an episode is in ``info["final_obs"]`` (rows where ``info["_final_obs"]``).
Montezuma's Revenge envs of the gymnasium backend also report ``info["room"]`` every step and
``episode["rooms"]`` (distinct rooms of the game) when it ends (:class:`lit_rl.envs.atari.RoomTracker`).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def finished_episodes(info: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Env indices, raw returns and lengths of the episodes that ended at this step.

    Returns:
        ``(env_indices, returns, lengths)``, each of shape ``[E]`` for ``E`` finished episodes.
    """
    if "final_info" in info and "episode" in info["final_info"]:
        info = info["final_info"]
    if "episode" not in info:
        empty = np.zeros(0)
        return empty.astype(np.int64), empty, empty.astype(np.int64)
    mask = np.asarray(info["_episode"], dtype=bool)
    idx = np.flatnonzero(mask)
    episode = info["episode"]
    return idx, np.asarray(episode["r"], dtype=np.float64)[idx], np.asarray(episode["l"], dtype=np.int64)[idx]


def final_observations(info: dict[str, Any], env_indices: np.ndarray) -> np.ndarray:
    """Stack ``info["final_obs"]`` rows for the given envs into one array ``[E, *obs_shape]``."""
    final = info["final_obs"]
    if isinstance(final, np.ndarray) and final.dtype != object:
        return final[env_indices]
    return np.stack([np.asarray(final[i]) for i in env_indices])


def finished_episode_rooms(info: dict[str, Any]) -> np.ndarray:
    """Distinct rooms visited in each episode that ended at this step, ``[E]`` (empty without room tracking)."""
    if "final_info" in info and "episode" in info["final_info"]:
        info = info["final_info"]
    if "episode" not in info or "rooms" not in info["episode"]:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(info["episode"]["rooms"], dtype=np.int64)[np.asarray(info["_episode"], dtype=bool)]


def current_rooms(info: dict[str, Any]) -> np.ndarray:
    """Room of every env after this step, ``[N]``, including the last room of envs whose game just ended;
    empty without room tracking."""
    if "room" not in info:
        return np.zeros(0, dtype=np.int64)
    rooms = np.asarray(info["room"], dtype=np.int64)
    final = info.get("final_info", {})
    if "room" in final:
        ended = np.asarray(final["_room"], dtype=bool)
        rooms = np.concatenate([rooms, np.asarray(final["room"], dtype=np.int64)[ended]])
    return rooms
