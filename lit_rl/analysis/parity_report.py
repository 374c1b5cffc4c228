"""The parity test's outputs: ``parity.md`` / ``parity.csv`` and the ``parity`` figure (see README, "Parity with
the study's curves"). The numbers come from :mod:`lit_rl.analysis.parity`; this module only lays them out.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from lit_rl.analysis.parity import Parity, power
from lit_rl.analysis.plots import pyplot_or_none
from lit_rl.analysis.scores import Scores

#: Shifts (in seed standard deviations) of the power statement, and its simulated trials.
POWER_SHIFTS = (1.0, 2.0, 3.0)
POWER_TRIALS = 2000
CSV_COLUMNS = (
    "game agent study_step our_step seeds ours ours_mean study study_mean study_min study_max "
    "p_point p_mean adj_point adj_mean outside"
).split()


def _seeds(result: Parity) -> str:
    return ", ".join("?" if s is None else str(s) for s in result.seeds)


def _verdict(outside: bool) -> str:
    return "**outside**" if outside else "in"


def summary_markdown(results: list[Parity]) -> str:
    """One row per game × agent: runs, common steps, verdict, smallest adjusted p-value."""
    lines = [
        "| game | agent | our runs (seeds) | common steps | verdict | smallest adjusted p |",
        "| --- | --- | --- | --- | --- | ---: |",
    ]
    for r in results:
        outside = r.outside
        steps = f"{len(r.study_steps)} ({int(r.study_steps[0]):,}–{int(r.study_steps[-1]):,})"
        verdict = (
            "**outside** at " + ", ".join(f"{int(s):,}" for s in r.study_steps[outside])
            if outside.any()
            else "in the study's distribution"
        )
        smallest = float(np.minimum(r.adj_point, r.adj_mean).min())
        lines.append(
            f"| {r.game} | {r.agent} | {r.ours.shape[1]} ({_seeds(r)}) | {steps} | {verdict} | {smallest:.3f} |"
        )
    return "\n".join(lines) + "\n"


def steps_markdown(results: list[Parity]) -> str:
    """One row per game × agent × common step."""
    lines = [
        "| game | agent | step (study / ours) | ours, per seed | ours, mean | study, mean [min, max] (sd) "
        "| p point | p mean to step | adjusted p (point / mean) | verdict |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        for e in range(len(r.study_steps)):
            study = r.study[e]
            cells = [
                r.game,
                r.agent,
                f"{int(r.study_steps[e]):,} / {int(r.our_steps[e]):,}",
                ", ".join(f"{v:,.1f}" for v in r.ours[e]),
                f"{r.ours[e].mean():,.1f}",
                f"{study.mean():,.1f} [{study.min():,.1f}, {study.max():,.1f}] ({study.std(ddof=1):,.1f})",
                f"{r.p_point[e]:.3f}",
                f"{r.p_mean[e]:.3f}",
                f"{r.adj_point[e]:.3f} / {r.adj_mean[e]:.3f}",
                _verdict(bool(r.outside[e])),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def power_lines(results: list[Parity]) -> list[str]:
    """The power of each design (runs × runs × steps) of ``results``, simulated (:func:`power`)."""
    designs = sorted({(r.ours.shape[1], r.study.shape[1], len(r.study_steps)) for r in results})
    alpha = results[0].alpha
    shifts = " / ".join(f"{s:g}" for s in POWER_SHIFTS)
    lines = []
    for n_ours, n_study, steps in designs:
        persistent = " / ".join(f"{power(n_ours, n_study, steps, s, rho=1.0, alpha=alpha):.2f}" for s in POWER_SHIFTS)
        independent = " / ".join(f"{power(n_ours, n_study, steps, s, rho=0.0, alpha=alpha):.2f}" for s in POWER_SHIFTS)
        lines.append(
            f"Power with {n_ours} runs against {n_study} at {steps} common step(s) "
            f"({POWER_TRIALS:,} simulated trials): "
            f"every evaluation shifted by {shifts} seed standard deviations is detected with probability "
            f"{persistent} if a run's deviations persist along its curve, {independent} if they are independent "
            "at each evaluation."
        )
    return lines


def parity_markdown(results: list[Parity]) -> str:
    """``parity.md``: the test stated, the summary, the power, the per-step table and notes."""
    r0 = results[0]
    k = len(results)
    sizes = sorted({(r.num_splits, r.size) for r in results})
    size_text = ", ".join(f"{round(s * c)}/{c} = {100 * s:.1f} %" for c, s in sizes)
    text = [
        "Exact permutation test of our runs against the study's, per game × agent: at each common evaluation "
        "step the point evaluation and the mean of the evaluations up to it (|difference of means| over the "
        "pooled standard deviation); all relabellings of whole runs enumerated; p-values max-T adjusted over "
        f"the steps and both statistics (family-wise); a step is outside when an adjusted p ≤ α = {r0.alpha:g} "
        f"(exact size {size_text}).",
        "",
        summary_markdown(results),
        *power_lines(results),
        "",
        f"Each game × agent is tested at its own level: over these {k} tests the chance of at least one false "
        f"rejection is up to {100 * (1 - np.prod([1 - r.size for r in results])):.1f} %.",
        "",
        steps_markdown(results),
    ]
    for r in results:
        if r.dropped:
            text.append(
                f"{r.game}/{r.agent}: our evaluations at {', '.join(f'{s:,}' for s in r.dropped)} have no study "
                "step and are left out."
            )
    return "\n".join(text).rstrip() + "\n"


def parity_csv(results: list[Parity]) -> str:
    """``parity.csv``: one row per game × agent × common step (per-seed values joined by ``;``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in results:
        for e in range(len(r.study_steps)):
            study = r.study[e]
            writer.writerow(
                [r.game, r.agent, int(r.study_steps[e]), int(r.our_steps[e]), ";".join(map(str, r.seeds))]
                + [";".join(map(repr, r.ours[e].tolist())), repr(float(r.ours[e].mean()))]
                + [";".join(map(repr, study.tolist())), *(repr(float(f(study))) for f in (np.mean, np.min, np.max))]
                + [repr(float(v[e])) for v in (r.p_point, r.p_mean, r.adj_point, r.adj_mean)]
                + [str(bool(r.outside[e])).lower()]
            )
    return out.getvalue()


def plot_parity(results: list[Parity], study: Scores, out: Path) -> None:
    """``parity.png`` / ``.pdf``: per game × agent, the study's per-seed curves and their min–max band up to
    our last step, our runs' per-seed curves over it, and a red cross at each step found outside."""
    plt = pyplot_or_none()
    if plt is None:
        return
    cols = min(3, len(results))
    rows = -(-len(results) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False)
    for ax, r in zip(axes.ravel(), results, strict=False):
        runs = study[r.game][r.agent]
        last = np.searchsorted(runs.timesteps, r.study_steps[-1], side="right")
        steps, evals = runs.timesteps[:last], runs.evals[:last]
        ax.fill_between(steps, evals.min(axis=1), evals.max(axis=1), color="0.85", label="study: min–max")
        ax.plot(steps, evals, color="0.55", linewidth=0.8)
        ax.plot([], [], color="0.55", linewidth=0.8, label=f"study: {evals.shape[1]} seeds")
        for i, seed in enumerate(r.seeds):
            ax.plot(r.our_steps, r.ours[:, i], color=f"C{i}", marker="o", markersize=3, label=f"ours: seed {seed}")
        outside = r.outside
        if outside.any():
            top = np.maximum(r.ours.max(axis=1), r.study.max(axis=1))[outside]
            ax.plot(r.our_steps[outside], top, "x", color="red", markersize=8, label=f"outside (α = {r.alpha:g})")
        verdict = "outside" if outside.any() else "in"
        ax.set(title=f"{r.game} {r.agent}: {verdict}", xlabel="env steps", ylabel="evaluation return")
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(results) :]:
        ax.axis("off")
    fig.tight_layout()
    for suffix in ("png", "pdf"):
        fig.savefig(out / f"parity.{suffix}", dpi=150)
    plt.close(fig)
