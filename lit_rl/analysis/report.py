"""``lit-rl-analyze``: the study's tables and aggregate figures from run directories or its pickle.

    lit-rl-analyze --runs runs/NA/version_* runs/CWCA/version_* --out analysis/
    lit-rl-analyze --study-pickle ../shared/data/self-attention-rl/post_processed_results_56.pkl --out study/
    lit-rl-analyze --runs runs/parity/*/* --parity ../shared/data/self-attention-rl/post_processed_results_56.pkl \
        --out parity/

Writes into ``--out``: ``per_game.md`` / ``per_game.csv`` (mean ± SE of the run score, winners, wins),
``wins_per_class.md``, ``aggregates.md`` / ``aggregates.csv`` (median, IQM, mean, optimality gap of
human-normalised scores with 95 % stratified-bootstrap intervals), ``probability_of_improvement.md``
(every pair, or every agent against ``--baseline``) and the figures ``aggregates``,
``performance_profiles``, ``sample_efficiency`` (IQM of point-in-time scores per evaluation) and
``learning_curves`` (per game, debiased-EMA smoothed, 95 % interval over runs) as PNG and PDF.

With ``--parity`` it writes only the parity test of the runs against the study's
(:mod:`lit_rl.analysis.parity`): ``parity.md`` / ``parity.csv`` and the figure ``parity``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from lit_rl.analysis.aggregate import (
    METRICS,
    aggregate_estimates,
    normalized_matrix,
    performance_profiles,
    probability_of_improvement,
    sample_efficiency,
)
from lit_rl.analysis.curves import bootstrap_band, debiased_ema
from lit_rl.analysis.parity import compare
from lit_rl.analysis.parity_report import parity_csv, parity_markdown, plot_parity
from lit_rl.analysis.scores import Scores, axis_classes, load_run_dirs, load_study_results
from lit_rl.analysis.tables import game_table, markdown, to_csv, wins_per_class
from lit_rl.errors import ConfigError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lit-rl-analyze", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--runs", nargs="+", type=Path, help="lit_rl run directories (config.yaml + evaluations.npz)")
    source.add_argument("--study-pickle", type=Path, help="the study's post_processed_results_56.pkl (your copy)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the tables and figures")
    parser.add_argument("--agents", nargs="+", help="agents and their order (default: those of the first game)")
    parser.add_argument(
        "--baseline", default=None, help="compare every agent with this one in P(X > Y) (default: every pair)"
    )
    parser.add_argument("--reps", type=int, default=50_000, help="bootstrap resamples of the aggregates (rliable)")
    parser.add_argument("--poi-reps", type=int, default=2_000, help="bootstrap resamples of P(X > Y)")
    parser.add_argument("--no-figures", action="store_true", help="tables only (no matplotlib needed)")
    parser.add_argument("--curve-games", nargs="+", help="games of the learning-curve figure (default: the first 6)")
    parser.add_argument("--ema-weight", type=float, default=0.98, help="learning-curve smoothing weight")
    parity = parser.add_argument_group("parity with the study (README, 'Parity with the study's curves')")
    parity.add_argument(
        "--parity",
        type=Path,
        metavar="STUDY_PICKLE",
        help="instead of the tables: test the --runs against the study's runs in this pickle, per game x agent",
    )
    parity.add_argument("--alpha", type=float, default=0.05, help="family-wise level of each game x agent test")
    parity.add_argument(
        "--step-tolerance",
        type=int,
        default=2048,
        help="our evaluation at step s matches the study's at t when 0 <= s - t < this (default: one rollout)",
    )
    args = parser.parse_args(argv)
    if args.parity is not None and args.runs is None:
        parser.error("--parity compares run directories with the study: give them with --runs")
    return args


def aggregates_markdown(estimates: dict[str, dict]) -> str:
    lines = ["| agent | " + " | ".join(METRICS) + " |", "| --- |" + " ---: |" * len(METRICS)]
    for agent, per_metric in estimates.items():
        cells = [f"{e.point:.3f} [{e.low:.3f}, {e.high:.3f}]" for e in per_metric.values()]
        lines.append(f"| {agent} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_tables(scores: Scores, agents: list[str], out: Path) -> None:
    rows = game_table(scores, agents)
    (out / "per_game.md").write_text(markdown(rows))
    (out / "per_game.csv").write_text(to_csv(rows))
    per_class = wins_per_class(rows, axis_classes())
    lines = ["| axis class | " + " | ".join(agents) + " |", "| --- |" + " ---: |" * len(agents)]
    lines += [f"| {c} | " + " | ".join(str(w[a]) for a in agents) + " |" for c, w in sorted(per_class.items())]
    (out / "wins_per_class.md").write_text("\n".join(lines) + "\n")


def plot_aggregates(estimates: dict[str, dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.2 * len(METRICS), 0.5 * len(estimates) + 1.5))
    agents = list(estimates)
    for ax, metric in zip(axes, METRICS, strict=True):
        for i, agent in enumerate(agents):
            e = estimates[agent][metric]
            ax.barh(i, e.high - e.low, left=e.low, height=0.6, color=f"C{i}", alpha=0.75)
            ax.vlines(e.point, i - 0.3, i + 0.3, color="black")
        ax.set_yticks(range(len(agents)), agents if metric == METRICS[0] else [""] * len(agents))
        ax.set_title(metric.replace("_", " "))
        ax.set_xlabel("human-normalised score")
    fig.tight_layout()
    for suffix in ("png", "pdf"):
        fig.savefig(out / f"aggregates.{suffix}", dpi=150)
    plt.close(fig)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: Path, stem: str) -> None:
    for suffix in ("png", "pdf"):
        fig.savefig(out / f"{stem}.{suffix}", dpi=150)
    fig.clf()


def plot_sample_efficiency(scores: Scores, agents: list[str], out: Path, reps: int) -> None:
    plt = _pyplot()
    steps, iqm, intervals = sample_efficiency(scores, agents, reps=reps)
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, agent in enumerate(agents):
        ax.plot(steps, iqm[agent], color=f"C{i}", marker="o", markersize=3, label=agent)
        ax.fill_between(steps, intervals[agent][0], intervals[agent][1], color=f"C{i}", alpha=0.2)
    ax.set(xlabel="env steps", ylabel="IQM human-normalised score")
    ax.legend()
    fig.tight_layout()
    _save(fig, out, "sample_efficiency")


def plot_learning_curves(scores: Scores, agents: list[str], games: list[str], out: Path, weight: float) -> None:
    plt = _pyplot()
    cols = min(3, len(games))
    rows = -(-len(games) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, game in zip(axes.ravel(), games, strict=False):
        for i, agent in enumerate(agents):
            runs = scores[game][agent]
            smoothed = debiased_ema(runs.evals.T, weight)  # [R, E]
            band = bootstrap_band([(runs.timesteps, curve) for curve in smoothed])
            ax.plot(band.steps, band.mean, color=f"C{i}", label=agent)
            ax.fill_between(band.steps, band.low, band.high, color=f"C{i}", alpha=0.2)
        ax.set(title=game, xlabel="env steps", ylabel="evaluation return")
    for ax in axes.ravel()[len(games) :]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    _save(fig, out, "learning_curves")


def plot_profiles(matrices: dict, out: Path, reps: int) -> None:
    plt = _pyplot()

    taus, profiles, bands = performance_profiles(matrices, reps=reps)
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, agent in enumerate(matrices):
        ax.plot(taus, profiles[agent], color=f"C{i}", label=agent)
        ax.fill_between(taus, bands[agent][0], bands[agent][1], color=f"C{i}", alpha=0.2)
    ax.set(xlabel="human-normalised score τ", ylabel="fraction of runs with score > τ")
    ax.legend()
    fig.tight_layout()
    for suffix in ("png", "pdf"):
        fig.savefig(out / f"performance_profiles.{suffix}", dpi=150)
    plt.close(fig)


def write_parity(args: argparse.Namespace) -> None:
    study = load_study_results(args.parity)
    results = compare(load_run_dirs(args.runs), study, alpha=args.alpha, tolerance=args.step_tolerance)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "parity.md").write_text(parity_markdown(results))
    (args.out / "parity.csv").write_text(parity_csv(results))
    if not args.no_figures:
        plot_parity(results, study, args.out)
    verdicts = ", ".join(f"{r.game}/{r.agent} {'OUTSIDE' if r.outside.any() else 'in'}" for r in results)
    print(f"parity: {verdicts}; wrote parity.md, parity.csv{'' if args.no_figures else ' and figures'} to {args.out}")


def write_report(args: argparse.Namespace) -> None:
    scores = load_run_dirs(args.runs) if args.runs else load_study_results(args.study_pickle)
    agents = args.agents or list(scores[sorted(scores)[0]])
    others = sorted({a for per_game in scores.values() for a in per_game} - set(agents))
    if others:
        warnings.warn(
            f"agents {others} left out: they lack runs of {sorted(scores)[0]}; name the agents with --agents",
            UserWarning,
            stacklevel=2,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    write_tables(scores, agents, args.out)
    matrices = {agent: normalized_matrix(scores, agent) for agent in agents}
    estimates = aggregate_estimates(matrices, reps=args.reps)
    (args.out / "aggregates.md").write_text(aggregates_markdown(estimates))
    with open(args.out / "aggregates.csv", "w") as f:
        f.write("agent,metric,point,low,high\n")
        for agent, per_metric in estimates.items():
            f.writelines(f"{agent},{m},{e.point},{e.low},{e.high}\n" for m, e in per_metric.items())
    if args.baseline:
        pairs = [(agent, args.baseline) for agent in agents if agent != args.baseline]
    else:  # every pair once; P(Y > X) is 1 - P(X > Y) up to ties
        pairs = [(x, y) for i, x in enumerate(agents) for y in agents[i + 1 :]]
    poi = probability_of_improvement(matrices, pairs, reps=args.poi_reps)
    lines = ["| X | Y | P(X > Y) [95 % CI] |", "| --- | --- | ---: |"]
    lines += [f"| {x} | {y} | {e.point:.3f} [{e.low:.3f}, {e.high:.3f}] |" for (x, y), e in poi.items()]
    (args.out / "probability_of_improvement.md").write_text("\n".join(lines) + "\n")
    if not args.no_figures:
        plot_aggregates(estimates, args.out)
        plot_profiles(matrices, args.out, reps=min(args.poi_reps, 2_000))
        plot_sample_efficiency(scores, agents, args.out, reps=min(args.poi_reps, 2_000))
        games = args.curve_games or sorted(scores)[:6]
        plot_learning_curves(scores, agents, games, args.out, args.ema_weight)
    print(f"wrote tables{'' if args.no_figures else ' and figures'} to {args.out}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        if args.parity is not None:
            write_parity(args)
        else:
            write_report(args)
    except ConfigError as err:
        print(f"lit-rl-analyze: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
