"""Training-episode metrics: mean raw return, length and rooms of the episodes that ended in an update,
and the rooms any env of any rank has been in since the start (Montezuma's Revenge)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric

from lit_rl.data.episodes import RolloutEpisodes

#: Room ids are one RAM byte (Montezuma's Revenge).
NUM_ROOM_IDS = 256


class EpisodeMetrics(nn.Module):
    """Accumulates :class:`RolloutEpisodes` per update; :meth:`compute` returns the ``rollout/*`` metrics.

    The rooms seen so far are the owner's buffer (``rooms_seen``, ``[NUM_ROOM_IDS]`` bool, saved in
    checkpoints), passed in.
    """

    def __init__(self) -> None:
        super().__init__()
        self.episode_return = MeanMetric()
        self.episode_length = MeanMetric()
        self.episode_rooms = MeanMetric()
        self.latest_return = float("nan")  # of the last rollout with a finished episode (progress bar)

    def update(self, episodes: RolloutEpisodes, rooms_seen: Tensor, reduce_sum: Callable[[Tensor], Tensor]) -> None:
        """Add the episodes that ended in the last rollout; mark the rooms of every rank in ``rooms_seen``."""
        if episodes.returns.size:
            self.episode_return.update(torch.as_tensor(episodes.returns, dtype=torch.float32))
            self.episode_length.update(torch.as_tensor(episodes.lengths, dtype=torch.float32))
            self.latest_return = float(episodes.returns.mean())
        if episodes.rooms.size:
            self.episode_rooms.update(torch.as_tensor(episodes.rooms, dtype=torch.float32))
        if episodes.rooms_seen.size or rooms_seen.any():
            seen = rooms_seen.float()
            seen[torch.as_tensor(episodes.rooms_seen, device=seen.device)] = 1.0
            # Every rank reaches this point once per rollout, so the reduction is collective.
            rooms_seen.copy_(reduce_sum(seen) > 0)

    def compute(self, rooms_seen: Tensor) -> dict[str, float]:
        """The metrics of this update over all ranks (those without an episode are left out); resets."""
        metrics = {}
        if rooms_seen.any():
            metrics["rollout/rooms_total"] = float(rooms_seen.sum())
        for name, metric in [
            ("rollout/episode_return", self.episode_return),
            ("rollout/episode_length", self.episode_length),
            ("rollout/episode_rooms", self.episode_rooms),
        ]:
            # Every rank computes every metric (a collective under DDP), updated or not.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*compute.*before.*update", category=UserWarning)
                value = float(metric.compute())
            metric.reset()
            if not math.isnan(value):
                metrics[name] = value
        return metrics
