"""Learning-curve bands over seeds, and the memory-comparison report on fake runs."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from lit_rl.analysis.curves import bootstrap_band, load_evaluation_results, load_evaluations
from tools import memory_comparison


def test_band_is_the_mean_over_runs_at_shared_steps_with_a_bootstrap_interval() -> None:
    runs = [
        (np.array([10, 20, 30]), np.array([1.0, 2.0, 9.0])),
        (np.array([10, 20]), np.array([3.0, 6.0])),  # stopped earlier: step 30 is dropped
    ]
    with pytest.warns(UserWarning, match=r"learning curve: evaluations at \[30\] env steps left out"):
        band = bootstrap_band(runs, resamples=4000)
    np.testing.assert_array_equal(band.steps, [10, 20])
    np.testing.assert_allclose(band.mean, [2.0, 4.0])
    # Two runs: a resampled mean is one run's value or the average of both, so the 95 % interval
    # spans from the lower run to the higher one.
    np.testing.assert_allclose(band.low, [1.0, 2.0])
    np.testing.assert_allclose(band.high, [3.0, 6.0])
    assert band.num_runs == 2


def test_interval_matches_the_exact_bootstrap_distribution() -> None:
    values = np.array([0.0, 1.0, 2.0, 10.0])
    means = np.sort([np.mean(pick) for pick in itertools.product(values, repeat=4)])  # all 256 resamples
    cdf = np.arange(1, len(means) + 1) / len(means)
    low, high = means[np.searchsorted(cdf, 0.025)], means[np.searchsorted(cdf, 0.975)]  # exact quantiles
    band = bootstrap_band([(np.array([1]), np.array([v])) for v in values], resamples=100_000)
    assert (band.low[0], band.high[0]) == (low, high)
    assert band.low[0] < band.mean[0] == 3.25 < band.high[0]


def test_memory_comparison_report_reads_runs_and_writes_table_and_figure(tmp_path: Path) -> None:
    for agent, level in (("stateless_mlp", 30.0), ("stateless_gtrxl", 450.0)):
        for seed in (1, 2, 3):
            run = memory_comparison.run_dir(tmp_path, agent, seed)
            run.mkdir(parents=True)
            steps = np.array([100, 200, 300][: 2 if seed == 3 else 3])  # seed 3 stopped short of the budget
            results = np.stack([np.full(20, level - 100), np.full(20, level + 40), np.full(20, level + seed)])
            results = results[: len(steps)]
            np.savez(run / "evaluations.npz", timesteps=steps, results=results, ep_lengths=results.astype(int))
            (run / "wall_time_s").write_text(f"{10.0 * seed}\n")
    memory_comparison.main(["--report-only", "--out", str(tmp_path), "--seeds", "1", "2", "3", "--steps", "300"])
    table = (tmp_path / "memory_comparison.md").read_text()
    # Final = mean of the last two evaluations: (490 + 451) / 2 and (490 + 452) / 2; first >= 400 at 200,
    # >= 475 at 200 (490); seed 3 is in progress and not reported.
    assert "| stateless, GTrXL | 1 | 300 | 470.5 | 200 | 200 | 10 |" in table
    assert "| stateless, GTrXL | 2 | 300 | 471.0 | 200 | 200 | 20 |" in table
    assert "| stateless, GTrXL | 3 |" not in table
    assert "| stateless, GTrXL | 2 | 470.8 | 470.5 | 2 / 0 | 200 | 200 | 15 |" in table
    assert "| stateless, MLP | 1 | 300 | 50.5 | never | never | 10 |" in table
    # matplotlib comes with the dev extra
    assert (tmp_path / "memory_comparison.png").stat().st_size > 10_000
    assert load_evaluations(memory_comparison.run_dir(tmp_path, "stateless_mlp", 1) / "evaluations.npz")[1][2] == 31.0


def test_debiased_ema_by_hand() -> None:
    from lit_rl.analysis.curves import debiased_ema

    x = np.array([4.0, 0.0, 2.0])
    w = 0.5
    s1 = 0.5 * 4.0  # s_1 = w*0 + (1-w)*4
    s2 = w * s1 + 0.5 * 0.0
    s3 = w * s2 + 0.5 * 2.0
    expected = [s1 / (1 - w), s2 / (1 - w**2), s3 / (1 - w**3)]
    np.testing.assert_allclose(debiased_ema(x, weight=w), expected)
    np.testing.assert_allclose(debiased_ema(np.full((2, 5), 7.0)), 7.0)  # a constant stays unbiased


def test_evaluations_read_from_the_file_or_its_run_directory(tmp_path: Path) -> None:
    results = np.array([[1.0, 3.0], [10.0, 20.0]])
    np.savez(tmp_path / "evaluations.npz", timesteps=np.array([5, 9]), results=results, ep_lengths=results.astype(int))
    steps, episodes = load_evaluation_results(tmp_path)
    assert steps.tolist() == [5, 9] and episodes.tolist() == results.tolist()
    assert load_evaluations(tmp_path / "evaluations.npz")[1].tolist() == [2.0, 15.0]


def test_scalars_of_a_resumed_run_replace_what_the_interrupted_start_logged_after_its_checkpoint(
    tmp_path: Path,
) -> None:
    from torch.utils.tensorboard import SummaryWriter

    from lit_rl.analysis.curves import tensorboard_scalars

    for start, points in ((100, [(1, 1.0), (2, 2.0), (3, 3.0)]), (200, [(2, 20.0), (4, 40.0)])):
        with SummaryWriter(tmp_path / "tmp", filename_suffix=f".{start}") as writer:
            for step, value in points:
                writer.add_scalar("perf/sps", value, step)
        (events,) = (tmp_path / "tmp").glob("events.*")
        events.rename(tmp_path / f"events.out.tfevents.{start}.host.1.0")  # started at time `start`
    assert tensorboard_scalars(tmp_path, "perf/sps") == [(1, 1.0), (2, 20.0), (4, 40.0)]
    assert tensorboard_scalars(tmp_path, "loss/value") == []
