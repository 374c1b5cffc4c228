"""Human-normalised scores and rliable's aggregate statistics (README, "Analysis and interpretability").

The statistics are rliable's (Agarwal et al., 2021): median, IQM, mean and optimality gap of a
runs × games score matrix, the probability of improvement, and performance profiles, each with
stratified-bootstrap percentile intervals. lit_rl only arranges the matrices; rliable is imported
here, lazily, with a message naming the ``analysis`` extra.
"""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass
from importlib import resources

import numpy as np

from lit_rl.analysis.scores import Scores

METRICS = ("median", "iqm", "mean", "optimality_gap")


def _rliable():
    try:
        from rliable import library, metrics
    except ImportError as err:
        raise ImportError("lit_rl.analysis.aggregate needs rliable: pip install 'lit_rl[analysis]'") from err
    # rliable seeds arch's bootstrap with a RandomState, which arch deprecates; the draws are unchanged.
    warnings.filterwarnings("ignore", message="random_state is deprecated", category=FutureWarning)
    return library, metrics


def human_random_scores() -> dict[str, tuple[float, float]]:
    """``game → (random, human)`` of the Agent57 tables (shipped as ``data/atari_human_random.csv``)."""
    text = resources.files("lit_rl.analysis").joinpath("data/atari_human_random.csv").read_text()
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {row["game"]: (float(row["random"]), float(row["human"])) for row in rows}


def normalized_matrix(scores: Scores, agent: str, games: list[str] | None = None) -> np.ndarray:
    """Human-normalised run scores ``(S_r − random) / (human − random)`` of ``agent``: ``[R, G]``.

    Games in sorted order (default: every game of ``scores``); every game needs the same number of runs.
    """
    table = human_random_scores()
    games = sorted(scores) if games is None else games
    unknown = [g for g in games if g not in table]
    if unknown:
        raise ValueError(f"no random/human scores for {unknown}; known games: the 56 of the study (and Surround)")
    columns = []
    for game in games:
        random, human = table[game]
        columns.append((scores[game][agent].run_scores - random) / (human - random))
    if len({len(c) for c in columns}) != 1:
        raise ValueError(f"{agent} has different numbers of runs per game: {[len(c) for c in columns]}")
    return np.stack(columns, axis=1)


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its bootstrap interval."""

    point: float
    low: float
    high: float


def _aggregates(matrix: np.ndarray) -> np.ndarray:
    _, metrics = _rliable()
    return np.array(
        [
            metrics.aggregate_median(matrix),
            metrics.aggregate_iqm(matrix),
            metrics.aggregate_mean(matrix),
            metrics.aggregate_optimality_gap(matrix),
        ]
    )


def aggregate_estimates(matrices: dict[str, np.ndarray], reps: int = 50_000, seed: int = 0) -> dict[str, dict]:
    """``estimates[agent][metric]``: median, IQM, mean and optimality gap with 95 % stratified-bootstrap
    percentile intervals (runs resampled within each game), from ``[R, G]`` matrices."""
    library, _ = _rliable()
    points, intervals = library.get_interval_estimates(
        matrices, _aggregates, reps=reps, random_state=np.random.RandomState(seed)
    )
    return {
        agent: {
            name: Estimate(float(points[agent][i]), float(intervals[agent][0, i]), float(intervals[agent][1, i]))
            for i, name in enumerate(METRICS)
        }
        for agent in matrices
    }


def probability_of_improvement(
    matrices: dict[str, np.ndarray], pairs: list[tuple[str, str]], reps: int = 2_000, seed: int = 0
) -> dict[tuple[str, str], Estimate]:
    """``P(X > Y)`` for each pair ``(X, Y)``: per game the Mann-Whitney probability over run pairs (ties
    ½), averaged over games, with stratified-bootstrap intervals."""
    library, metrics = _rliable()
    paired = {f"{x},{y}": (matrices[x], matrices[y]) for x, y in pairs}
    points, intervals = library.get_interval_estimates(
        paired, metrics.probability_of_improvement, reps=reps, random_state=np.random.RandomState(seed)
    )
    return {(x, y): Estimate(float(points[f"{x},{y}"]), *map(float, intervals[f"{x},{y}"].ravel())) for x, y in pairs}


def performance_profiles(
    matrices: dict[str, np.ndarray], taus: np.ndarray | None = None, reps: int = 2_000
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Fraction of runs with a normalised score above each ``τ`` (default ``linspace(0, 8, 81)``) and its
    bootstrap band: ``(taus, profiles[agent] [T], bands[agent] [2, T])``."""
    library, _ = _rliable()
    taus = np.linspace(0.0, 8.0, 81) if taus is None else np.asarray(taus)
    profiles, bands = library.create_performance_profile(matrices, taus, reps=reps)
    return taus, profiles, bands


def sample_efficiency(
    scores: Scores, agents: list[str], steps: list[int] | None = None, reps: int = 2_000, seed: int = 0
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """IQM of the human-normalised point-in-time evaluation scores at each step, with point-wise
    stratified-bootstrap intervals: ``(steps [S], iqm[agent] [S], intervals[agent] [2, S])``.

    ``steps`` default to the evaluation steps every run of every game reached (a ``UserWarning``
    names those left out); a given step that some game's runs did not reach is an error.
    """
    library, metrics = _rliable()
    table = human_random_scores()
    games = sorted(scores)
    if steps is None:
        common = None
        for game in games:
            for agent in agents:
                ts = scores[game][agent].timesteps
                common = ts if common is None else np.intersect1d(common, ts)
        steps = list(common)
        left_out = sorted({int(t) for g in games for a in agents for t in np.setdiff1d(scores[g][a].timesteps, steps)})
        if left_out:
            warnings.warn(
                f"sample efficiency: evaluations at {left_out} env steps left out (not reached by every game "
                "and agent)",
                UserWarning,
                stacklevel=2,
            )
    cubes = {}
    for agent in agents:
        per_game = []
        for game in games:
            runs = scores[game][agent]
            missing = np.setdiff1d(steps, runs.timesteps)
            if len(missing):
                raise ValueError(f"{game}/{agent} has no evaluation at {missing.tolist()} env steps")
            rows = runs.evals[np.searchsorted(runs.timesteps, steps)]  # [S, R]
            random, human = table[game]
            per_game.append(((rows - random) / (human - random)).T)  # [R, S]
        cubes[agent] = np.stack(per_game, axis=1)  # [R, G, S]

    def iqm_per_step(cube: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(cube[..., i]) for i in range(cube.shape[-1])])

    points, intervals = library.get_interval_estimates(
        cubes, iqm_per_step, reps=reps, random_state=np.random.RandomState(seed)
    )
    return np.asarray(steps), points, intervals
