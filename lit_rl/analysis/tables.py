"""The study's per-game table, winners and win counts (README, "Analysis and interpretability").

A cell is the mean over runs of the run score ``S_r`` ± its standard error ``std(S_r, ddof=0) / √R``;
the winner of a game is the agent with the highest mean.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from collections import Counter
from dataclasses import dataclass

from lit_rl.analysis.scores import Scores


@dataclass(frozen=True)
class GameRow:
    """One game of the table: mean and standard error of the run score per agent, and the winner."""

    game: str
    mean: dict[str, float]
    se: dict[str, float]
    winner: str


def game_table(scores: Scores, agents: list[str] | None = None) -> list[GameRow]:
    """One row per game (sorted by name) with every agent of ``agents`` (default: those of the first game).

    Raises:
        ValueError: A game lacks one of the agents.
    """
    games = sorted(scores)
    agents = list(agents or scores[games[0]])
    rows = []
    for game in games:
        missing = [a for a in agents if a not in scores[game]]
        if missing:
            raise ValueError(f"{game} has no runs of {missing}; agents there: {sorted(scores[game])}")
        run_scores = {a: scores[game][a].run_scores for a in agents}
        mean = {a: float(s.mean()) for a, s in run_scores.items()}
        se = {a: float(s.std(ddof=0) / math.sqrt(len(s))) for a, s in run_scores.items()}
        rows.append(GameRow(game, mean, se, winner=max(agents, key=lambda a: mean[a])))
    return rows


def wins_per_agent(rows: list[GameRow]) -> dict[str, int]:
    """Games won by each agent (every agent listed, 0 included)."""
    counts = Counter(row.winner for row in rows)
    return {agent: counts.get(agent, 0) for agent in rows[0].mean}


def wins_per_class(rows: list[GameRow], classes: dict[str, str]) -> dict[str, dict[str, int]]:
    """``wins[axis_class][agent]`` over the games of each class; games without a class are left out,
    with a ``UserWarning`` naming them."""
    unclassified = [row.game for row in rows if row.game not in classes]
    if unclassified:
        warnings.warn(
            f"wins per class: {unclassified} left out (no axis class; the study labels its 56 games)",
            UserWarning,
            stacklevel=2,
        )
    out: dict[str, dict[str, int]] = {}
    for row in rows:
        if row.game in classes:
            per_class = out.setdefault(classes[row.game], dict.fromkeys(row.mean, 0))
            per_class[row.winner] += 1
    return out


def markdown(rows: list[GameRow]) -> str:
    """The per-game table in Markdown: ``mean ± se`` per agent, the winner in bold."""
    agents = list(rows[0].mean)
    lines = ["| game | " + " | ".join(agents) + " |", "| --- |" + " ---: |" * len(agents)]
    for row in rows:
        cells = []
        for a in agents:
            cell = f"{row.mean[a]:,.1f} ± {row.se[a]:,.1f}"
            cells.append(f"**{cell}**" if a == row.winner else cell)
        lines.append(f"| {row.game} | " + " | ".join(cells) + " |")
    wins = wins_per_agent(rows)
    lines.append("| wins | " + " | ".join(str(wins[a]) for a in agents) + " |")
    return "\n".join(lines) + "\n"


def to_csv(rows: list[GameRow]) -> str:
    """The per-game table as CSV: ``game, <agent>_mean, <agent>_se, ..., winner``."""
    agents = list(rows[0].mean)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["game", *[f"{a}_{k}" for a in agents for k in ("mean", "se")], "winner"])
    for row in rows:
        writer.writerow([row.game, *[repr(v) for a in agents for v in (row.mean[a], row.se[a])], row.winner])
    return out.getvalue()
