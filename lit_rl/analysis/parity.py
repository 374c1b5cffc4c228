"""Learning parity with the study: do our runs' evaluation curves lie in the study's distribution?

The test, per game × agent, compares our ``R₁`` runs with the study's ``R₂`` runs at every evaluation
step both have (our step ``s`` is matched to the study's step ``t`` when ``0 ≤ s − t < tolerance``:
lit_rl evaluates at the end of the first rollout at or past each multiple of its period, the study
exactly at each multiple). It is an exact two-sample permutation test (Fisher; Good, *Permutation
Tests*, 2005) with a single-step max-T adjustment over steps (Westfall & Young, *Resampling-Based
Multiple Testing*, 1993):

- Two statistics per common step ``e``: the point-in-time evaluation, and the mean of the evaluations
  at the common steps up to ``e`` (the area under the curve up to ``e`` over equally spaced steps; at
  the last step it is the study's run score ``S_r`` cut there). For each, ``T = |mean(ours) −
  mean(study)| / σ``, with ``σ`` the standard deviation of all ``R₁ + R₂`` values (ddof 0), which no
  relabelling changes, so the per-statistic test is the plain permutation test of the difference of
  means and ``σ`` only puts the statistics on one scale for the maximum.
- Null hypothesis: our runs and the study's are exchangeable (drawn from one distribution of curves).
  All ``C(R₁ + R₂, R₁)`` relabellings of whole runs are enumerated (3 + 5 runs: 56), so the p-values
  are exact, not Monte Carlo: ``p = #{relabellings with T ≥ T_observed} / C``.
- Multiple comparisons: the adjusted p-value of a statistic is the fraction of relabellings whose
  *largest* ``T`` over all steps and both statistics reaches its observed ``T``. Relabelling whole runs
  keeps the dependence between steps, so the chance that any statistic of a game × agent is rejected
  when the null holds is at most the test's size (family-wise error rate over the steps, without
  Bonferroni's loss to correlated steps).
- Verdict: a step is *outside* the study's distribution when an adjusted p-value there is ``≤ α``.
  With ``C`` relabellings the attainable levels are multiples of ``1/C``; the exact size is
  ``⌊α·C⌋ / C`` (3 + 5 runs, α = 0.05: 2/56 = 3.6 %) for continuous scores, less with ties.
- Each game × agent is its own family: across ``k`` of them the chance of at least one false
  rejection is up to ``1 − (1 − size)^k``. Correcting across them (Bonferroni, Holm) would make a
  rejection impossible with 3 runs against 5 (the smallest p-value is 1/56), so it is reported, not
  corrected.

:func:`power` states what the test detects: the probability of a rejection when every evaluation of
our runs is shifted by ``shift`` standard deviations of the seeds, by simulation.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from lit_rl.analysis.scores import Runs, Scores
from lit_rl.errors import ConfigError

#: The most relabellings enumerated (C(R₁ + R₂, R₁)); more runs than that are refused.
MAX_SPLITS = 1_000_000
#: Floating-point slack when a relabelling's statistic equals the observed one (ties count as ≥).
_TIE = 1e-9


def splits(n_ours: int, n_study: int) -> np.ndarray:
    """Every way to label ``n_ours`` of the ``n_ours + n_study`` pooled runs as ours: ``[C, n]`` 0/1.

    Row 0 is the observed labelling (ours are the first ``n_ours`` columns).
    """
    n = n_ours + n_study
    count = math.comb(n, n_ours)
    if count > MAX_SPLITS:
        raise ConfigError(f"{n_ours} runs against {n_study}: {count:,} relabellings, more than {MAX_SPLITS:,}")
    masks = np.zeros((count, n))
    for i, chosen in enumerate(itertools.combinations(range(n), n_ours)):
        masks[i, list(chosen)] = 1.0
    return masks


def statistics(ours: np.ndarray, study: np.ndarray) -> np.ndarray:
    """The ``2S`` statistics' values to test: point evaluations, then the means up to each step.

    Shapes: ``ours [..., S, R₁]``, ``study [..., S, R₂]`` → ``[..., 2S, R₁ + R₂]`` (ours first).
    """
    pooled = np.concatenate([ours, study], axis=-1)
    running = np.cumsum(pooled, axis=-2) / np.arange(1, pooled.shape[-2] + 1)[:, None]
    return np.concatenate([pooled, running], axis=-2)


def split_statistics(values: np.ndarray, n_ours: int, masks: np.ndarray) -> np.ndarray:
    """``T = |mean(ours) − mean(study)| / σ`` of every statistic under every relabelling.

    Shapes: ``values [..., K, n]``, ``masks [C, n]`` → ``[..., K, C]``; ``σ`` is the std of the ``n``
    values (0 gives ``T = 0``: no evidence either way).
    """
    n = values.shape[-1]
    sum_ours = values @ masks.T  # [..., K, C]
    diff = sum_ours / n_ours - (values.sum(axis=-1, keepdims=True) - sum_ours) / (n - n_ours)
    scale = values.std(axis=-1, keepdims=True)
    return np.abs(diff) / np.where(scale > 0, scale, np.inf)


def permutation_pvalues(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw and max-T adjusted p-values of the observed labelling (column 0).

    Shapes: ``t [..., K, C]`` → ``(raw [..., K], adjusted [..., K])``.
    """
    observed = t[..., :1] - _TIE  # [..., K, 1]
    raw = (t >= observed).mean(axis=-1)
    max_t = t.max(axis=-2, keepdims=True)  # [..., 1, C]
    adjusted = (max_t >= observed).mean(axis=-1)
    return raw, adjusted


def size(n_ours: int, n_study: int, alpha: float) -> float:
    """The exact size ``⌊α·C⌋ / C`` of the test at level ``alpha`` (continuous scores)."""
    count = math.comb(n_ours + n_study, n_ours)
    return math.floor(alpha * count + _TIE) / count


@dataclass(frozen=True)
class Parity:
    """The test of one game × agent. Shapes: ``[S]`` per common step, ``[S, R]`` for evaluations.

    Attributes:
        study_steps, our_steps: The matched evaluation steps.
        ours, study: Evaluations (mean return of each evaluation's episodes) of each run.
        p_point, p_mean: Raw p-values of the point evaluation and of the mean up to the step.
        adj_point, adj_mean: Their max-T adjusted p-values.
        dropped: Our evaluation steps with no study step to match (left out).
    """

    game: str
    agent: str
    seeds: tuple[int | None, ...]
    study_steps: np.ndarray
    our_steps: np.ndarray
    ours: np.ndarray
    study: np.ndarray
    p_point: np.ndarray
    p_mean: np.ndarray
    adj_point: np.ndarray
    adj_mean: np.ndarray
    alpha: float
    dropped: tuple[int, ...] = ()

    @property
    def outside(self) -> np.ndarray:
        """Per step: the runs lie outside the study's distribution there (family-wise level α)."""
        return np.minimum(self.adj_point, self.adj_mean) <= self.alpha

    @property
    def num_splits(self) -> int:
        return math.comb(self.ours.shape[1] + self.study.shape[1], self.ours.shape[1])

    @property
    def size(self) -> float:
        return size(self.ours.shape[1], self.study.shape[1], self.alpha)


def align(study_steps: np.ndarray, our_steps: np.ndarray, tolerance: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(i_study, i_ours)`` of the step pairs with ``0 ≤ our − study < tolerance`` (the first of
    ours for each study step), in step order."""
    i_study, i_ours = [], []
    for i, t in enumerate(study_steps):
        (within,) = np.nonzero((our_steps >= t) & (our_steps - t < tolerance))
        if len(within):
            i_study.append(i)
            i_ours.append(int(within[0]))
    return np.array(i_study, dtype=int), np.array(i_ours, dtype=int)


def _steps_text(steps: np.ndarray) -> str:
    shown = [f"{int(s):,}" for s in steps[:3]]
    return ", ".join(shown) + (f", …, {int(steps[-1]):,}" if len(steps) > 3 else "")


def compare_runs(game: str, agent: str, ours: Runs, study: Runs, *, alpha: float, tolerance: int) -> Parity:
    """Test one game × agent (see the module docstring); :class:`ConfigError` when it cannot be tested."""
    i_study, i_ours = align(study.timesteps, ours.timesteps, tolerance)
    if len(i_ours) == 0:
        raise ConfigError(
            f"{game}/{agent}: no evaluation step of our runs ({_steps_text(ours.timesteps)}) lies within "
            f"{tolerance:,} env steps after one of the study's ({_steps_text(study.timesteps)}); evaluate at "
            f"the study's steps (evaluation.every_n_env_steps={int(study.timesteps[0])}) or widen --step-tolerance"
        )
    n_ours, n_study = ours.evals.shape[1], study.evals.shape[1]
    if math.floor(alpha * math.comb(n_ours + n_study, n_ours) + _TIE) == 0:
        raise ConfigError(
            f"{game}/{agent}: {n_ours} run(s) against the study's {n_study} cannot be rejected at α = {alpha} "
            f"(the smallest p-value is 1/{math.comb(n_ours + n_study, n_ours)}); give more seeds or a larger --alpha"
        )
    mine, theirs = ours.evals[i_ours], study.evals[i_study]
    masks = splits(n_ours, n_study)
    raw, adjusted = permutation_pvalues(split_statistics(statistics(mine, theirs), n_ours, masks))
    s, kept = len(i_ours), set(i_ours.tolist())
    return Parity(
        game=game,
        agent=agent,
        seeds=ours.seeds,
        study_steps=study.timesteps[i_study],
        our_steps=ours.timesteps[i_ours],
        ours=mine,
        study=theirs,
        p_point=raw[:s],
        p_mean=raw[s:],
        adj_point=adjusted[:s],
        adj_mean=adjusted[s:],
        alpha=alpha,
        dropped=tuple(int(t) for j, t in enumerate(ours.timesteps) if j not in kept),
    )


def compare(ours: Scores, study: Scores, *, alpha: float = 0.05, tolerance: int = 2048) -> list[Parity]:
    """Test every game × agent of ``ours`` against the study's runs of it, in sorted order.

    Raises:
        ConfigError: A game or agent the study does not have, steps that do not line up, too few runs.
    """
    if not 0 < alpha < 1:
        raise ConfigError(f"--alpha={alpha}; expected a level between 0 and 1, e.g. 0.05")
    if tolerance < 1:
        raise ConfigError(f"--step-tolerance={tolerance}; expected a positive number of env steps, e.g. 2048")
    results = []
    for game in sorted(ours):
        if game not in study:
            raise ConfigError(f"the study has no game {game!r}; it has {len(study)}: {', '.join(sorted(study))}")
        for agent in sorted(ours[game]):
            if agent not in study[game]:
                raise ConfigError(
                    f"the study has no agent {agent!r} on {game}; its agents are {', '.join(study[game])} "
                    "(a run's agent is its checkpoint.agent, which lit-rl-sweep sets)"
                )
            runs = ours[game][agent]
            results.append(compare_runs(game, agent, runs, study[game][agent], alpha=alpha, tolerance=tolerance))
    return results


def power(
    n_ours: int,
    n_study: int,
    num_steps: int,
    shift: float,
    *,
    rho: float,
    alpha: float = 0.05,
    trials: int = 2000,
    seed: int = 0,
) -> float:
    """The probability that the test rejects, by simulation.

    Model: run ``r``'s evaluation at step ``e`` is ``shift·[r is ours] + √ρ·u_r + √(1 − ρ)·ε_{r,e}``
    with ``u, ε`` standard normal: every evaluation of ours is shifted by ``shift`` seed standard
    deviations; ``ρ`` is the correlation of a run's deviations across steps (0: independent at each
    evaluation, 1: a fixed level per run, so all steps say the same). Real curves lie in between.
    """
    rng = np.random.default_rng(seed)
    n = n_ours + n_study
    masks = splits(n_ours, n_study)
    rejected = 0
    chunk = max(1, 200_000 // (masks.shape[0] * num_steps))
    for start in range(0, trials, chunk):
        m = min(chunk, trials - start)
        level = rng.standard_normal((m, 1, n))
        noise = rng.standard_normal((m, num_steps, n))
        values = math.sqrt(rho) * level + math.sqrt(1 - rho) * noise
        values[..., :n_ours] += shift
        t = split_statistics(statistics(values[..., :n_ours], values[..., n_ours:]), n_ours, masks)
        _, adjusted = permutation_pvalues(t)
        rejected += int((adjusted.min(axis=-1) <= alpha).sum())
    return rejected / trials
