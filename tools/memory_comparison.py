"""Why memory matters on CartPole: five agents over several seeds, one figure and one table.

Trains ``configs/memory/<agent>.yaml`` for each agent and seed (``lit-rl fit`` subprocesses, ``--jobs``
at a time with one torch thread each), then reads every run's ``evaluations.npz`` and writes

- ``memory_comparison.png`` / ``.pdf``: evaluation return vs env steps, mean over seeds with a 95 %
  percentile-bootstrap interval (needs the ``analysis`` extra);
- ``memory_comparison.md`` / ``.csv``: per agent and per seed the final evaluation (the mean of the
  last two evaluations), the first evaluation step reaching 400 and 475, and the wall time of the run.

    python -m tools.memory_comparison --jobs 2                     # every agent, seeds 0-9
    python -m tools.memory_comparison --agents stateless_gtrxl --seeds 0 1 2
    python -m tools.memory_comparison --report-only          # re-read finished runs
    python -m tools.memory_comparison --greedy --out bench_results/memory_greedy   # RL Zoo's protocol

Evaluations sample their actions unless ``--greedy`` asks for the most likely ones (RL Zoo's protocol,
under which its "500 ± 0" anchor is measured). Each run records its protocol in ``eval_protocol``; a
folder holds runs of one protocol only, and a call with the other one is refused before anything runs.

Runs go to ``--out/runs/<agent>/seed_<s>``; a run whose ``evaluations.npz`` already reaches the
budget is not trained again, and a lit_rl run cut off earlier resumes from its ``last.ckpt``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from lit_rl.analysis.curves import CurveBand, bootstrap_band, load_evaluations
from lit_rl.analysis.plots import pyplot_or_none
from lit_rl.sweep import fit_args

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "memory"
SB3 = "sb3_recurrent_ppo"  # the anchor: tools/sb3_recurrent_ppo.py (sb3-contrib, RL Zoo's settings)
AGENTS = ("cartpole_mlp", "stateless_mlp", "stateless_stack4_mlp", "stateless_lstm", "stateless_gtrxl", SB3)
LABELS = {
    "cartpole_mlp": "full state, MLP",
    "stateless_mlp": "stateless, MLP",
    "stateless_stack4_mlp": "stateless, 4 stacked obs, MLP",
    "stateless_lstm": "stateless, LSTM",
    "stateless_gtrxl": "stateless, GTrXL",
    SB3: "stateless, sb3-contrib RecurrentPPO (RL Zoo)",
}
#: Each agent's budget in env steps unless --steps is given: its config's total_env_steps; RL Zoo's for SB3.
SB3_STEPS = 100_000


def run_dir(out: Path, agent: str, seed: int) -> Path:
    return out / "runs" / agent / f"seed_{seed}"


def budget(agent: str, args: argparse.Namespace) -> int:
    """Env steps of ``agent``'s runs: ``--steps``, else its config's ``total_env_steps`` (RL Zoo's for SB3)."""
    if args.steps is not None:
        return args.steps
    if agent == SB3:
        return SB3_STEPS
    import yaml

    return int(yaml.safe_load((CONFIGS / f"{agent}.yaml").read_text())["model"]["total_env_steps"])


def protocol(args: argparse.Namespace) -> str:
    return "greedy" if args.greedy else "sampled"


def check_protocol(args: argparse.Namespace) -> None:
    """Refuse, in one line, a folder whose runs were evaluated under the other protocol."""
    for path in sorted((args.out / "runs").glob("*/seed_*/eval_protocol")):
        found = path.read_text().strip()
        if found != protocol(args):
            flag = "with" if found == "greedy" else "without"
            raise SystemExit(
                f"error: {path.parent} was evaluated with {found} actions, this call asks for {protocol(args)}; "
                f"call {flag} --greedy, or give another --out"
            )


def command(agent: str, seed: int, args: argparse.Namespace) -> list[str]:
    if agent == SB3:
        script = Path(__file__).with_name("sb3_recurrent_ppo.py")
        return [
            *(sys.executable, str(script), f"--seed={seed}", f"--steps={budget(agent, args)}"),
            f"--eval-every={args.eval_every}",
            f"--eval-episodes={args.eval_episodes}",
            *(["--greedy"] if args.greedy else []),
            f"--out={run_dir(args.out, agent, seed)}",
        ]
    overrides = [
        f"--model.total_env_steps={budget(agent, args)}",
        f"--evaluation.every_n_env_steps={args.eval_every}",
        f"--data.eval_episodes={args.eval_episodes}",
        f"--data.eval_greedy={str(args.greedy).lower()}",
    ]
    # A run cut off earlier resumes from its last.ckpt (--ckpt_path last); a new one starts fresh.
    config = CONFIGS / f"{agent}.yaml"
    return [
        sys.executable,
        "-m",
        "lit_rl",
        *fit_args(config, run_dir(args.out, agent, seed), seed=seed, overrides=overrides),
    ]


def train(agent: str, seed: int, args: argparse.Namespace) -> tuple[str, int, float]:
    """One training subprocess; returns its wall time in seconds, also written to ``wall_time_s`` in the
    run directory (0 if the run was already done)."""
    directory = run_dir(args.out, agent, seed)
    npz = directory / "evaluations.npz"
    if npz.exists() and load_evaluations(npz)[0].max(initial=0) >= budget(agent, args):
        return agent, seed, 0.0
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    log = args.out / "logs" / f"{agent}_seed_{seed}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "eval_protocol").write_text(protocol(args) + "\n")
    start = time.perf_counter()
    with open(log, "w") as f:
        subprocess.run(command(agent, seed, args), env=env, stdout=f, stderr=subprocess.STDOUT, check=True)
    seconds = time.perf_counter() - start
    (directory / "wall_time_s").write_text(f"{seconds:.1f}\n")
    return agent, seed, seconds


def first_step_reaching(steps: np.ndarray, returns: np.ndarray, threshold: float) -> float:
    hits = np.flatnonzero(returns >= threshold)
    return float(steps[hits[0]]) if hits.size else float("nan")


def final_evaluation(returns: np.ndarray) -> float:
    """The issue's "final evaluation": the mean of the last two evaluations (each over all its episodes)."""
    return float(np.mean(returns[-2:]))


def _step(value: float) -> str:
    return "never" if np.isnan(value) else f"{value:,.0f}"


def per_seed_rows(agent: str, args: argparse.Namespace) -> list[dict]:
    """One row per finished seed: final evaluation, first steps reaching 400 and 475, wall time."""
    rows = []
    for seed in args.seeds:
        directory = run_dir(args.out, agent, seed)
        if not (directory / "evaluations.npz").exists():
            continue
        steps, returns = load_evaluations(directory / "evaluations.npz")
        if steps[-1] < budget(agent, args):  # still running (or cut off): not a result yet
            print(f"{agent} seed {seed}: in progress at {steps[-1]:,} of {budget(agent, args):,} env steps")
            continue
        wall = directory / "wall_time_s"
        rows.append(
            {
                "agent": agent,
                "seed": seed,
                "steps": int(steps[-1]),
                "final": final_evaluation(returns),
                "first_400": first_step_reaching(steps, returns, 400.0),
                "first_475": first_step_reaching(steps, returns, 475.0),
                "wall_s": float(wall.read_text()) if wall.exists() else float("nan"),
                "curve": (steps, returns),
            }
        )
    return rows


def report(args: argparse.Namespace) -> dict[str, CurveBand]:
    """Per seed and per agent tables (Markdown on stdout and in ``--out``, CSV) and the figure."""
    bands, seed_lines, agent_lines = {}, [], []
    csv = ["agent,seed,env_steps,final_evaluation,first_step_400,first_step_475,wall_time_s"]
    for agent in args.agents:
        rows = per_seed_rows(agent, args)
        if not rows:
            continue
        bands[agent] = bootstrap_band([r["curve"] for r in rows])
        for r in rows:
            seed_lines.append(
                f"| {LABELS.get(agent, agent)} | {r['seed']} | {r['steps']:,} | {r['final']:.1f} "
                f"| {_step(r['first_400'])} | {_step(r['first_475'])} | {r['wall_s']:.0f} |"
            )
            csv.append(f"{agent},{r['seed']},{r['steps']},{r['final']},{r['first_400']},{r['first_475']},{r['wall_s']}")
        finals = np.array([r["final"] for r in rows])
        # A seed that never reached a threshold counts as later than any step: the median is then
        # "never" only if half the seeds or more never reached it.
        firsts = {k: np.array([r[k] for r in rows]) for k in ("first_400", "first_475")}
        medians = {k: np.median(np.where(np.isnan(v), np.inf, v)) for k, v in firsts.items()}
        agent_lines.append(
            f"| {LABELS.get(agent, agent)} | {len(rows)} | {np.median(finals):.1f} | {finals.min():.1f} "
            f"| {(finals >= 450).sum()} / {(finals >= 475).sum()} "
            f"| {_step(np.nan if np.isinf(medians['first_400']) else medians['first_400'])} "
            f"| {_step(np.nan if np.isinf(medians['first_475']) else medians['first_475'])} "
            f"| {np.median([r['wall_s'] for r in rows]):.0f} |"
        )
    seed_table = [
        "| agent | seed | env steps | final evaluation | first step ≥ 400 | first step ≥ 475 | wall time (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *seed_lines,
    ]
    agent_table = [
        "| agent | seeds | median final | worst final | seeds with final ≥ 450 / ≥ 475 "
        "| median first step ≥ 400 | median first step ≥ 475 | median wall time (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *agent_lines,
    ]
    text = "\n".join(agent_table) + "\n\n" + "\n".join(seed_table) + "\n"
    (args.out / "memory_comparison.md").write_text(text)
    (args.out / "memory_comparison.csv").write_text("\n".join(csv) + "\n")
    print(text)
    plot(bands, args.out / "memory_comparison")
    return bands


def plot(bands: dict[str, CurveBand], stem: Path) -> None:
    plt = pyplot_or_none()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for agent, band in bands.items():
        (line,) = ax.plot(band.steps, band.mean, label=f"{LABELS.get(agent, agent)} ({band.num_runs} seeds)")
        ax.fill_between(band.steps, band.low, band.high, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set(xlabel="env steps", ylabel="evaluation return (mean over its episodes)", ylim=(0, 510))
    ax.set_title("PPO on CartPole: full state vs StatelessCartPole with and without memory", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    for suffix in (".png", ".pdf"):
        fig.savefig(stem.with_suffix(suffix), dpi=130)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", nargs="+", choices=AGENTS, default=list(AGENTS), help="configs/memory/<agent>.yaml")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(range(10)), help="seeds (networks and envs)")
    parser.add_argument("--steps", type=int, default=None, help="env steps per run (default: each config's)")
    parser.add_argument("--eval-every", type=int, default=25_000, help="evaluation period in env steps")
    parser.add_argument("--eval-episodes", type=int, default=20, help="episodes per evaluation")
    parser.add_argument("--greedy", action="store_true", help="evaluate the most likely actions (RL Zoo's protocol)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--out", type=Path, default=Path("bench_results/memory_comparison"), help="output folder")
    parser.add_argument("--report-only", action="store_true", help="only read finished runs and write the report")
    args = parser.parse_args(argv)
    check_protocol(args)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        # Slowest agents first, so the last job to finish is a short one.
        jobs = [(a, s) for a in sorted(args.agents, key=lambda a: -AGENTS.index(a)) for s in args.seeds]
        with ThreadPoolExecutor(args.jobs) as pool:
            for agent, seed, seconds in pool.map(lambda job: train(*job, args), jobs):
                print(f"{agent} seed {seed}: {seconds:.0f} s", flush=True)
    report(args)


if __name__ == "__main__":
    main()
