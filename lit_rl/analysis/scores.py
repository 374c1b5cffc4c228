"""Evaluation scores of many runs as one table: ``game → agent → Runs``.

Two sources give the same form: lit_rl run directories (``config.yaml`` + ``evaluations.npz``) and the
study's published ``post_processed_results_56.pkl`` (JianxiaoSun/self-attention-rl; README, "Analysis and
interpretability"), read with
an unpickler that allows only numpy's array reconstruction.
"""

from __future__ import annotations

import csv
import pickle
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

from lit_rl.envs.factory import game_name

#: What the restricted unpickler may build: numpy arrays, dtypes and scalars (numpy 1 and 2 paths).
_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
}


@dataclass(frozen=True)
class Runs:
    """The evaluations of the runs (seeds) of one agent on one game.

    Attributes:
        timesteps: Env steps of each evaluation, ``[E]``.
        evals: Mean evaluation return of run ``r`` at evaluation ``e``, ``[E, R]``.
        seeds: Seed of each run, or ``None`` where the source does not record it (the study's pickle).
    """

    timesteps: np.ndarray
    evals: np.ndarray
    seeds: tuple[int | None, ...]

    @property
    def run_scores(self) -> np.ndarray:
        """The study's run score ``S_r``: the mean over all evaluations of each run, ``[R]``."""
        return self.evals.mean(axis=0)


#: ``scores[game][agent]``, games by short name (``Pong``).
Scores = dict[str, dict[str, Runs]]


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> type:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")
        return super().find_class(module, name)


def load_study_results(path: str | Path) -> Scores:
    """The study's ``post_processed_results_56.pkl`` (the user's copy) as :data:`Scores`.

    Each agent's ``mean_per_eval [50, 5]`` becomes ``Runs.evals``; the pickle does not record which
    column is which seed.
    """
    with open(path, "rb") as f:
        raw = _NumpyOnlyUnpickler(f).load()
    scores: Scores = {}
    for env_id, agents in raw.items():
        scores[game_name(env_id)] = {
            agent: Runs(
                np.asarray(data["timesteps"]),
                np.asarray(data["mean_per_eval"], dtype=np.float64),
                (None,) * np.asarray(data["mean_per_eval"]).shape[1],
            )
            for agent, data in agents.items()
        }
    return scores


def describe_run(run_dir: str | Path) -> tuple[str, str, int]:
    """``(game, agent, seed)`` of a lit_rl run directory, from its saved ``config.yaml``.

    The agent is ``checkpoint.agent`` (the study configs set it), else the logger's name.
    """
    config = yaml.safe_load((Path(run_dir) / "config.yaml").read_text())
    agent = (config.get("checkpoint") or {}).get("agent")
    if agent is None:
        logger = config["trainer"].get("logger") or {}
        agent = (logger.get("init_args") or {}).get("name", "agent")
    return game_name(config["data"]["env_id"]), str(agent), int(config["seed_everything"])


def load_run_dirs(run_dirs: list[str | Path]) -> Scores:
    """lit_rl run directories as :data:`Scores` (runs of one game and agent grouped, ordered by seed).

    Runs of a group are cut to the evaluations they all reached.

    Raises:
        ValueError: A directory lacks ``config.yaml`` or ``evaluations.npz``, or two runs share a seed.
    """
    groups: dict[tuple[str, str], list[tuple[int, np.ndarray, np.ndarray]]] = {}
    for run_dir in map(Path, run_dirs):
        if not (run_dir / "config.yaml").is_file() or not (run_dir / "evaluations.npz").is_file():
            raise ValueError(f"{run_dir} is not a lit_rl run directory (needs config.yaml and evaluations.npz)")
        game, agent, seed = describe_run(run_dir)
        data = np.load(run_dir / "evaluations.npz")
        groups.setdefault((game, agent), []).append((seed, data["timesteps"], data["results"].mean(axis=1)))
    scores: Scores = {}
    for (game, agent), runs in sorted(groups.items()):
        runs.sort(key=lambda r: r[0])
        seeds = [seed for seed, _, _ in runs]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"{game}/{agent}: several runs with the same seed {seeds}")
        steps = runs[0][1]
        for _, run_steps, _ in runs[1:]:
            steps = np.intersect1d(steps, run_steps)
        evals = np.stack([means[np.searchsorted(run_steps, steps)] for _, run_steps, means in runs], axis=1)
        scores.setdefault(game, {})[agent] = Runs(steps, evals, tuple(seeds))
    return scores


def axis_classes() -> dict[str, str]:
    """The study's main axis of dynamics of each of its 56 games (shipped as ``data/axis_classes.csv``)."""
    text = resources.files("lit_rl.analysis").joinpath("data/axis_classes.csv").read_text()
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {row["game"]: row["axis_class"] for row in rows}
