"""``lit-rl-analyze``: the study's tables and aggregate figures from run directories or its pickle.

    lit-rl-analyze --runs runs/NA/version_* runs/CWCA/version_* --out analysis/
    lit-rl-analyze --study-pickle ../shared/data/self-attention-rl/post_processed_results_56.pkl --out study/

Writes into ``--out``: ``per_game.md`` / ``per_game.csv`` (mean ± SE of the run score, winners, wins),
``wins_per_class.md``, ``aggregates.md`` / ``aggregates.csv`` (median, IQM, mean, optimality gap of
human-normalised scores with 95 % stratified-bootstrap intervals), ``probability_of_improvement.md``
and the figures ``aggregates`` and ``performance_profiles`` as PNG and PDF.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lit_rl.analysis.aggregate import (
    METRICS,
    aggregate_estimates,
    normalized_matrix,
    performance_profiles,
    probability_of_improvement,
)
from lit_rl.analysis.scores import Scores, axis_classes, load_run_dirs, load_study_results
from lit_rl.analysis.tables import game_table, markdown, to_csv, wins_per_class


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lit-rl-analyze", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--runs", nargs="+", type=Path, help="lit_rl run directories (config.yaml + evaluations.npz)")
    source.add_argument("--study-pickle", type=Path, help="the study's post_processed_results_56.pkl (your copy)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the tables and figures")
    parser.add_argument("--agents", nargs="+", help="agents and their order (default: those of the first game)")
    parser.add_argument("--baseline", default=None, help="agent every other is compared with in P(X > Y)")
    parser.add_argument("--reps", type=int, default=50_000, help="bootstrap resamples of the aggregates (rliable)")
    parser.add_argument("--poi-reps", type=int, default=2_000, help="bootstrap resamples of P(X > Y)")
    parser.add_argument("--no-figures", action="store_true", help="tables only (no matplotlib needed)")
    return parser.parse_args(argv)


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


def plot_profiles(matrices: dict, out: Path, reps: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    scores = load_run_dirs(args.runs) if args.runs else load_study_results(args.study_pickle)
    agents = args.agents or list(scores[sorted(scores)[0]])
    args.out.mkdir(parents=True, exist_ok=True)
    write_tables(scores, agents, args.out)
    matrices = {agent: normalized_matrix(scores, agent) for agent in agents}
    estimates = aggregate_estimates(matrices, reps=args.reps)
    (args.out / "aggregates.md").write_text(aggregates_markdown(estimates))
    with open(args.out / "aggregates.csv", "w") as f:
        f.write("agent,metric,point,low,high\n")
        for agent, per_metric in estimates.items():
            f.writelines(f"{agent},{m},{e.point},{e.low},{e.high}\n" for m, e in per_metric.items())
    baseline = args.baseline or agents[0]
    pairs = [(agent, baseline) for agent in agents if agent != baseline]
    poi = probability_of_improvement(matrices, pairs, reps=args.poi_reps)
    lines = ["| X | Y | P(X > Y) [95 % CI] |", "| --- | --- | ---: |"]
    lines += [f"| {x} | {y} | {e.point:.3f} [{e.low:.3f}, {e.high:.3f}] |" for (x, y), e in poi.items()]
    (args.out / "probability_of_improvement.md").write_text("\n".join(lines) + "\n")
    if not args.no_figures:
        plot_aggregates(estimates, args.out)
        plot_profiles(matrices, args.out, reps=min(args.poi_reps, 2_000))
    print(f"wrote tables{'' if args.no_figures else ' and figures'} to {args.out}")


if __name__ == "__main__":
    main()
