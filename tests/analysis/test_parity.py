"""The parity test (lit_rl.analysis.parity): exact p-values against a brute-force enumeration written here, its
false rejection rate and power on synthetic runs against what it states, and the step alignment."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from lit_rl.analysis.parity import align, compare, compare_runs, power, size
from lit_rl.analysis.scores import Runs

STUDY_STEPS = np.arange(1, 6) * 200_000  # the study's first 5 evaluations
OUR_STEPS = np.array([200_704, 401_408, 600_064, 800_768, 1_001_472])  # lit_rl's 16 x 128 rollouts past them


def runs(evals: np.ndarray, steps: np.ndarray = STUDY_STEPS) -> Runs:
    evals = np.asarray(evals, dtype=float)
    return Runs(np.asarray(steps), evals, tuple(range(evals.shape[1])))


def reference_pvalues(ours: np.ndarray, study: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The test as the README states it, with loops: statistics, every relabelling, raw and max-T p-values."""
    pooled = np.concatenate([ours, study], axis=1)  # [S, n]
    n_steps, n = pooled.shape
    rows = [pooled[e] for e in range(n_steps)] + [pooled[: e + 1].mean(axis=0) for e in range(n_steps)]
    table = []
    for chosen in itertools.combinations(range(n), ours.shape[1]):  # the first is the observed labelling
        mine = np.zeros(n, dtype=bool)
        mine[list(chosen)] = True
        table.append([abs(r[mine].mean() - r[~mine].mean()) / r.std() if r.std() > 0 else 0.0 for r in rows])
    t = np.array(table)  # [C, 2S]
    raw = np.array([np.mean(t[:, k] >= t[0, k] - 1e-9) for k in range(t.shape[1])])
    adjusted = np.array([np.mean(t.max(axis=1) >= t[0, k] - 1e-9) for k in range(t.shape[1])])
    return raw, adjusted


def test_a_hand_computed_case() -> None:
    # One step; ours 10, 11 against 0, 1, 2: of the C(5, 2) = 10 relabellings only the observed one puts
    # both high values on one side, so it alone has the largest |difference| (9.5): p = 1/10.
    result = compare_runs("Pong", "NA", runs([[10.0, 11.0]], [200_000]), runs([[0.0, 1.0, 2.0]], [200_000]),
                          alpha=0.1, tolerance=1)  # fmt: skip
    assert (result.p_point[0], result.p_mean[0], result.adj_point[0]) == (0.1, 0.1, 0.1)
    assert result.outside.tolist() == [True] and result.num_splits == 10 and result.size == 0.1


@pytest.mark.parametrize(("n_ours", "n_study", "n_steps"), [(2, 5, 1), (3, 5, 5), (4, 5, 3), (5, 5, 2)])
def test_pvalues_equal_a_brute_force_enumeration(n_ours: int, n_study: int, n_steps: int) -> None:
    rng = np.random.default_rng(n_ours * 100 + n_steps)
    for _ in range(3):
        ours = rng.gamma(2.0, size=(n_steps, n_ours)) + rng.normal(size=(1, n_ours))
        study = rng.gamma(2.0, size=(n_steps, n_study))
        steps = STUDY_STEPS[:n_steps]
        result = compare_runs("Pong", "NA", runs(ours, steps + 704), runs(study, steps), alpha=0.05, tolerance=2048)
        raw, adjusted = reference_pvalues(ours, study)
        np.testing.assert_allclose(np.concatenate([result.p_point, result.p_mean]), raw)
        np.testing.assert_allclose(np.concatenate([result.adj_point, result.adj_mean]), adjusted)
        assert result.num_splits == math.comb(n_ours + n_study, n_ours)


def test_ties_count_as_reaching_the_observed_statistic() -> None:
    # Pong at 200 k: every run scores -21 (as in the study's data): no evidence either way, p = 1.
    ours, study = runs(np.full((2, 3), -21.0), STUDY_STEPS[:2]), runs(np.full((2, 5), -21.0), STUDY_STEPS[:2])
    result = compare_runs("Pong", "NA", ours, study, alpha=0.05, tolerance=1)
    np.testing.assert_array_equal(result.adj_point, [1.0, 1.0])
    assert not result.outside.any()


def test_steps_are_matched_within_one_rollout_after_the_studys() -> None:
    ours = np.array([50_176, 200_000, 401_408, 402_000, 602_048, 800_768])
    i_study, i_ours = align(STUDY_STEPS, ours, tolerance=2048)
    # 50,176: before any study step; 402,000: a second match for 400 k (the first is kept);
    # 602,048 = 600,000 + 2,048 is one rollout late (the window is half open).
    assert list(zip(STUDY_STEPS[i_study].tolist(), ours[i_ours].tolist(), strict=True)) == [
        (200_000, 200_000), (400_000, 401_408), (800_000, 800_768),
    ]  # fmt: skip
    result = compare_runs("Pong", "NA", runs(np.ones((6, 3)), ours), runs(np.ones((5, 5))), alpha=0.05, tolerance=2048)
    assert result.dropped == (50_176, 402_000, 602_048)


def synthetic_curves(rng: np.random.Generator, n_runs: int, shift: float = 0.0) -> np.ndarray:
    """Skewed, correlated learning curves ``[5, n_runs]``: a per-run level and slope plus exponential noise."""
    level = rng.gamma(2.0, size=n_runs)
    slope = rng.lognormal(0.0, 0.5, size=n_runs)
    noise = rng.exponential(0.5, size=(5, n_runs))
    return level + slope * np.arange(1, 6)[:, None] + noise + shift


@pytest.mark.parametrize(("n_ours", "trials"), [(3, 4000), (5, 2000)])
def test_false_rejection_rate_is_the_stated_size(n_ours: int, trials: int) -> None:
    rng = np.random.default_rng(7 + n_ours)
    rejections = 0
    for _ in range(trials):
        ours = {"Breakout": {"NA": runs(synthetic_curves(rng, n_ours), OUR_STEPS)}}
        study = {"Breakout": {"NA": runs(synthetic_curves(rng, 5))}}
        (result,) = compare(ours, study, alpha=0.05)
        rejections += bool(result.outside.any())
    # Exchangeable runs, continuous scores: rejected with probability floor(0.05 C) / C exactly (C relabellings).
    count = math.comb(n_ours + 5, n_ours)
    stated = math.floor(0.05 * count) / count  # 2/56 for 3 runs, 12/252 for 5
    assert size(n_ours, 5, 0.05) == pytest.approx(stated)
    tolerance = 4 * math.sqrt(stated * (1 - stated) / trials)  # 4 binomial standard errors
    assert abs(rejections / trials - stated) < tolerance, (rejections / trials, stated, tolerance)


@pytest.mark.parametrize(("rho", "readme"), [(1.0, 0.52), (0.0, 0.94)])
def test_rejects_a_shifted_curve_at_the_stated_power(rho: float, readme: float) -> None:
    # The README states the power of the evidence runs' design (3 runs against 5, 5 steps) for a shift of every
    # evaluation by 2 seed standard deviations. Simulated here independently: own generator, own seeds, the
    # full comparison on each draw.
    rng = np.random.default_rng(2026)
    trials, shift, sigma = 1500, 2.0, 30.0
    curve = np.linspace(300.0, 750.0, 5)[:, None]  # an Assault-like rise; the test does not depend on it
    rejections = 0
    for _ in range(trials):
        values = math.sqrt(rho) * rng.standard_normal((1, 8)) + math.sqrt(1 - rho) * rng.standard_normal((5, 8))
        values = curve + sigma * values
        values[:, :3] += shift * sigma
        ours = {"Assault": {"CWRA": runs(values[:, :3], OUR_STEPS)}}
        study = {"Assault": {"CWRA": runs(values[:, 3:])}}
        (result,) = compare(ours, study)
        rejections += bool(result.outside.any())
    stated = power(3, 5, 5, shift, rho=rho)  # the tool's own statement (2,000 simulated trials)
    tolerance = 4 * math.sqrt(stated * (1 - stated) * (1 / trials + 1 / 2000))
    assert abs(rejections / trials - stated) < tolerance, (rejections / trials, stated, tolerance)
    assert abs(readme - stated) < 0.005  # the number printed in the README is the tool's, rounded
