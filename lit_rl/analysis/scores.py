"""Evaluation scores of many runs as one table: ``game → agent → Runs``.

Two sources give the same form: lit_rl run directories (``config.yaml`` + ``evaluations.npz``) and the
study's published ``post_processed_results_56.pkl`` (JianxiaoSun/self-attention-rl; README, "Analysis and
interpretability"), read with
an unpickler that allows only numpy's array reconstruction.
"""

from __future__ import annotations

import csv
import pickle
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

from lit_rl.analysis.curves import load_evaluations
from lit_rl.envs.factory import game_name
from lit_rl.errors import ConfigError

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


#: The layout :func:`load_study_results` expects, for its error message.
STUDY_LAYOUT = "{'<Game>NoFrameskip-v4': {agent: {'timesteps': [E], 'mean_per_eval': [E, R], ...}}}"


def load_study_results(path: str | Path) -> Scores:
    """The study's ``post_processed_results_56.pkl`` (the user's copy) as :data:`Scores`.

    Each agent's ``mean_per_eval [50, 5]`` becomes ``Runs.evals``; the pickle does not record which
    column is which seed.

    Raises:
        ConfigError: The file cannot be read, holds more than numpy arrays, or has another layout.
    """
    try:
        with open(path, "rb") as f:
            raw = _NumpyOnlyUnpickler(f).load()
    except OSError as err:
        raise ConfigError(f"cannot read the study's pickle {path}: {err.strerror or err}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as err:
        raise ConfigError(f"{path} is not the study's results pickle ({err})") from None
    scores: Scores = {}
    for env_id, agents in _items(raw, path, "the top level"):
        for agent, data in _items(agents, path, f"{env_id!r}"):
            scores.setdefault(game_name(str(env_id)), {})[str(agent)] = _study_runs(data, path, f"{env_id!r}/{agent!r}")
    return scores


def _items(mapping: object, path: str | Path, where: str) -> list[tuple[object, object]]:
    if not isinstance(mapping, dict) or not mapping:
        found = type(mapping).__name__ + (" (empty)" if isinstance(mapping, dict) else "")
        raise ConfigError(f"{path} is not the study's results pickle: {where} is a {found}; expected {STUDY_LAYOUT}")
    return list(mapping.items())


def _study_runs(data: object, path: str | Path, where: str) -> Runs:
    keys = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
    if not isinstance(data, dict) or not {"timesteps", "mean_per_eval"} <= set(data):
        raise ConfigError(f"{path} is not the study's results pickle: {where} holds {keys}; expected {STUDY_LAYOUT}")
    timesteps = np.asarray(data["timesteps"])
    evals = np.asarray(data["mean_per_eval"])
    ok = timesteps.ndim == 1 and evals.ndim == 2 and evals.shape[0] == len(timesteps) and len(timesteps) > 0
    if not ok or not np.issubdtype(evals.dtype, np.number) or np.any(np.diff(timesteps) <= 0):
        raise ConfigError(
            f"{path} is not the study's results pickle: {where} has timesteps {timesteps.shape} and mean_per_eval "
            f"{evals.shape}; expected {STUDY_LAYOUT} with increasing timesteps"
        )
    return Runs(timesteps, evals.astype(np.float64), (None,) * evals.shape[1])


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

    Runs of a group are cut to the evaluations they all reached; a ``UserWarning`` names the runs and
    the env steps of the evaluations left out.

    Raises:
        ConfigError: A directory lacks ``config.yaml`` or ``evaluations.npz``, or two runs share a seed.
    """
    groups: dict[tuple[str, str], list[tuple[int, np.ndarray, np.ndarray]]] = {}
    for run_dir in map(Path, run_dirs):
        if not (run_dir / "config.yaml").is_file():
            raise ConfigError(f"{run_dir} is not a lit_rl run directory (needs config.yaml and evaluations.npz)")
        if not (run_dir / "evaluations.npz").is_file():
            raise ConfigError(
                f"{run_dir} has no evaluations.npz: the run has not finished its first evaluation "
                "(evaluation.every_n_env_steps); pass run directories that hold config.yaml and evaluations.npz"
            )
        game, agent, seed = describe_run(run_dir)
        groups.setdefault((game, agent), []).append((seed, *load_evaluations(run_dir)))
    scores: Scores = {}
    for (game, agent), runs in sorted(groups.items()):
        runs.sort(key=lambda r: r[0])
        seeds = [seed for seed, _, _ in runs]
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"{game}/{agent}: several runs with the same seed {seeds}")
        steps = runs[0][1]
        for _, run_steps, _ in runs[1:]:
            steps = np.intersect1d(steps, run_steps)
        if len(steps) == 0:
            raise ConfigError(f"{game}/{agent}: the runs {seeds} share no evaluation step; evaluate them alike")
        for seed, run_steps, _ in runs:
            left_out = np.setdiff1d(run_steps, steps)
            if len(left_out):
                warnings.warn(
                    f"{game}/{agent} seed {seed}: evaluations at {left_out.tolist()} env steps left out "
                    f"(not reached by every run of {game}/{agent}; the runs are compared at {len(steps)} "
                    "shared evaluations)",
                    UserWarning,
                    stacklevel=2,
                )
        evals = np.stack([means[np.searchsorted(run_steps, steps)] for _, run_steps, means in runs], axis=1)
        scores.setdefault(game, {})[agent] = Runs(steps, evals, tuple(seeds))
    return scores


def axis_classes() -> dict[str, str]:
    """The study's main axis of dynamics of each of its 56 games (shipped as ``data/axis_classes.csv``)."""
    text = resources.files("lit_rl.analysis").joinpath("data/axis_classes.csv").read_text()
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {row["game"]: row["axis_class"] for row in rows}
