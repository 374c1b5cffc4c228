"""Learning curves over seeds: mean and a 95 % percentile-bootstrap interval at each evaluation.

The bootstrap resamples whole runs (seeds) with replacement, as rliable does for one task; with the
handful of seeds RL papers use the interval is wide, which is the honest answer.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class CurveBand:
    """Mean evaluation return over runs and its interval at shared evaluation steps. Shapes: ``[E]``."""

    steps: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    num_runs: int


def tensorboard_scalars(log_dir: str | Path, tag: str) -> list[tuple[int, float]]:
    """``(env_steps, value)`` of every point of scalar ``tag`` in the TensorBoard events of ``log_dir``
    (``[]`` if the run never logged it).

    A resumed run has one events file per start (oldest first by the timestamp in its name); a later
    start's points replace those the earlier start logged at or after the later one's first step.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    points: list[tuple[int, float]] = []
    files = sorted(Path(log_dir).glob("events.out.tfevents.*"), key=lambda p: (int(p.name.split(".")[3]), p.name))
    for events in files:
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        if tag not in acc.Tags()["scalars"]:
            continue
        new = [(int(e.step), float(e.value)) for e in acc.Scalars(tag)]
        if new:
            points = [p for p in points if p[0] < new[0][0]] + new
    return points


def load_evaluation_results(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(timesteps [E], returns of every episode [E, K])`` from an RL Zoo-style ``evaluations.npz``
    (a run directory's, :class:`lit_rl.callbacks.Evaluation`); ``path`` may be the run directory."""
    path = Path(path)
    with np.load(path / "evaluations.npz" if path.is_dir() else path) as data:
        return data["timesteps"], data["results"]


def load_evaluations(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(timesteps [E], mean return per evaluation [E])`` from an ``evaluations.npz`` or its run directory."""
    steps, results = load_evaluation_results(path)
    return steps, results.mean(axis=1)


def bootstrap_band(
    runs: list[tuple[np.ndarray, np.ndarray]], *, confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> CurveBand:
    """Mean over ``runs`` and a percentile-bootstrap interval of that mean, per evaluation step.

    Args:
        runs: One ``(steps [E_r], returns [E_r])`` per run; only the steps every run reached are kept
            (a ``UserWarning`` names those left out).
        confidence: Coverage of the interval.
        resamples: Bootstrap resamples of the runs.
        seed: Seed of the resampling.
    """
    if not runs:
        raise ValueError("bootstrap_band needs at least one run")
    steps = np.asarray(runs[0][0])
    for run_steps, _ in runs[1:]:
        steps = np.intersect1d(steps, run_steps)
    left_out = sorted({int(t) for s, _ in runs for t in np.setdiff1d(s, steps)})
    if left_out:
        warnings.warn(
            f"learning curve: evaluations at {left_out} env steps left out (not reached by every run)",
            UserWarning,
            stacklevel=2,
        )
    table = np.stack([np.asarray(r)[np.searchsorted(s, steps)] for s, r in runs])  # [R, E]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(runs), size=(resamples, len(runs)))
    means = table[picks].mean(axis=1)  # [resamples, E]
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(means, [tail, 100 - tail], axis=0)
    return CurveBand(steps, table.mean(axis=0), low, high, len(runs))


def debiased_ema(values: np.ndarray, weight: float = 0.98) -> np.ndarray:
    """TensorBoard's smoothing: ``s_0 = 0``, ``s_t = w·s_{t−1} + (1 − w)·x_t``, returned as ``s_t / (1 − w^t)``.

    Shapes: ``values`` ``[..., E]`` (smoothed along the last axis), returns the same shape.
    """
    values = np.asarray(values, dtype=np.float64)
    out = np.empty_like(values)
    state = np.zeros(values.shape[:-1])
    for t in range(values.shape[-1]):
        state = weight * state + (1.0 - weight) * values[..., t]
        out[..., t] = state / (1.0 - weight ** (t + 1))
    return out
