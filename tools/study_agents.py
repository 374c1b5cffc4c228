"""The study's five agents side by side on one game: training throughput and short learning runs.

Both modes run ``lit-rl fit --config configs/study/<Agent>.yaml`` in this process with the same
game, seed and settings for every agent, and read the results back from each run's TensorBoard
events and ``evaluations.npz``.

    # steps/s of every agent relative to NA (and of NA on the gymnasium backend), interleaved in each
    # repeat (the order rotates from repeat to repeat); --runs picks some of them
    python tools/study_agents.py throughput --game BreakoutNoFrameskip-v4 --rollouts 4 --repeats 3
    python tools/study_agents.py throughput --runs NA NA-gymnasium --rollouts 3 --repeats 5

    # the PPO update alone: minibatch-256 forward + backward + Adam of each agent's network
    python tools/study_agents.py update --repeats 10

    # a short learning run per agent, with its evaluation curve (PNG needs the `analysis` extra);
    # unknown arguments go to every lit-rl run
    python tools/study_agents.py learn --game RoadRunnerNoFrameskip-v4 --steps 150000 --eval-every 50000 \
        --model.anneal_lr=false --model.anneal_clip=false

Results go to ``--out`` as ``<mode>.md`` (a Markdown table), ``<mode>.json`` and, for ``learn``,
``curves.csv`` and ``curves.png``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from lit_rl.analysis.curves import tensorboard_scalars as scalars
from lit_rl.analysis.plots import pyplot_or_none
from lit_rl.cli import run

AGENTS = ("NA", "SWA", "CWRA", "CWCA", "CWRCA")
STUDY = Path(__file__).resolve().parents[1] / "configs" / "study"
ROLLOUT = 16 * 128  # the study's configs: 16 envs x 128 steps
COMPUTE_ESTIMATE = {"NA": "1.00", "SWA": "≈ 1.19", "CWRA": "≈ 1.19", "CWCA": "≈ 1.19", "CWRCA": "≈ 1.28"}


def fit(
    agent: str, root: Path, args: argparse.Namespace, *, steps: int, eval_every: int, extra: list[str] = ()
) -> Path:
    """Train one agent; returns its log directory."""
    cli = run(
        [
            "fit",
            "--config",
            str(STUDY / f"{agent}.yaml"),
            f"--data.env_id={args.game}",
            f"--seed_everything={args.seed}",
            f"--model.total_env_steps={steps}",
            f"--evaluation.every_n_env_steps={eval_every}",
            "--checkpoint.every_n_env_steps=0",
            f"--trainer.logger.init_args.save_dir={root}",
            "--trainer.enable_progress_bar=false",
            *extra,
            *args.extra,
        ]
    )
    return Path(cli.trainer.log_dir)


# throughput: every agent on its config's backend (the fast `ale`), and NA on the gymnasium reference stack
RUNS = {**{a: (a, []) for a in AGENTS}, "NA-gymnasium": ("NA", ["--data.backend=gymnasium"])}


def throughput(args: argparse.Namespace) -> dict:
    """Median steps/s of each agent (first rollout excluded) over interleaved repeats, and of NA on the
    gymnasium backend; ratios are medians of the ratios taken within each repeat."""
    runs = {r: RUNS[r] for r in args.runs}
    sps: dict[str, list[float]] = {r: [] for r in runs}
    for repeat in range(args.repeats):
        order = list(runs)[repeat % len(runs) :] + list(runs)[: repeat % len(runs)]  # rotated each repeat
        for run_name in order:
            agent, backend = runs[run_name]
            root = args.out / "throughput" / f"r{repeat}" / run_name
            log_dir = fit(agent, root, args, steps=args.rollouts * ROLLOUT, eval_every=0, extra=backend)
            values = [v for _, v in scalars(log_dir, "perf/sps")][1:]
            sps[run_name].append(statistics.median(values))
            print(f"repeat {repeat} {run_name}: {sps[run_name][-1]:.0f} steps/s", flush=True)
    ratios = {r: statistics.median(n / x for n, x in zip(sps["NA"], sps[r], strict=True)) for r in runs}
    rows = [
        f"| {r} | {statistics.median(sps[r]):.0f} | {ratios[r]:.2f} | {COMPUTE_ESTIMATE[RUNS[r][0]]} | "
        + ", ".join(f"{x:.0f}" for x in sps[r])
        + " |"
        for r in runs
    ]
    table = "\n".join(
        [
            "| agent | steps/s (median) | time per step vs NA (median of per-repeat ratios) | spec MACs vs NA "
            "| steps/s per repeat |",
            "| --- | ---: | ---: | ---: | --- |",
            *rows,
        ]
    )
    return {"table": table, "sps": sps, "time_ratio_vs_na": ratios}


def update(args: argparse.Namespace) -> dict:
    """Samples/s of one PPO minibatch update (256, forward + backward + Adam) per agent, interleaved."""
    import torch

    from lit_rl.models.actor_critic import ActorCritic
    from lit_rl.models.extractors import axial_attention
    from lit_rl.models.extractors.small_cnn import SmallCNN

    def network(agent: str) -> ActorCritic:
        attention = None if agent == "NA" else getattr(axial_attention, agent)
        return ActorCritic((4, 84, 84), 4, lambda shape: SmallCNN(shape, attention=attention))

    nets = {a: network(a) for a in AGENTS}
    optimizers = {a: torch.optim.Adam(n.parameters(), lr=2.5e-4, eps=1e-5) for a, n in nets.items()}
    obs = torch.randint(0, 256, (256, 4, 84, 84), dtype=torch.uint8)
    actions = torch.randint(0, 4, (256,))
    seconds: dict[str, list[float]] = {a: [] for a in AGENTS}
    for repeat in range(args.repeats + 1):  # the first pass warms up
        for agent, net in nets.items():
            start = time.perf_counter()
            for _ in range(5):
                log_probs, entropy, values, _ = net.evaluate(obs, actions)
                (log_probs.mean() + values.square().mean() - 0.01 * entropy.mean()).backward()
                optimizers[agent].step()
                optimizers[agent].zero_grad()
            if repeat:
                seconds[agent].append(time.perf_counter() - start)
    ratios = {a: statistics.median(x / n for n, x in zip(seconds["NA"], seconds[a], strict=True)) for a in AGENTS}
    rows = [f"| {a} | {5 * 256 / min(seconds[a]):.0f} | {ratios[a]:.2f} | {COMPUTE_ESTIMATE[a]} |" for a in AGENTS]
    header = "| agent | samples/s (best repeat) | update time vs NA (median of per-repeat ratios) | spec MACs vs NA |"
    table = "\n".join([header, "| --- | ---: | ---: | ---: |", *rows])
    return {"table": table, "seconds": seconds, "time_ratio_vs_na": ratios}


def learn(args: argparse.Namespace) -> dict:
    """One run per agent; evaluation curves and summary scores."""
    curves, summary = {}, {}
    for agent in args.agents:
        start = time.perf_counter()
        log_dir = fit(agent, args.out / "learn", args, steps=args.steps, eval_every=args.eval_every)
        data = np.load(log_dir / "evaluations.npz")
        curves[agent] = (data["timesteps"].tolist(), data["results"].mean(axis=1).tolist())
        sps = [v for _, v in scalars(log_dir, "perf/sps")][1:]
        summary[agent] = {
            "first_eval": float(data["results"][0].mean()),
            "final_eval": float(data["results"][-1].mean()),
            "final_eval_std": float(data["results"][-1].std()),
            "mean_over_evals": float(data["results"].mean()),
            "sps": statistics.median(sps),
            "wall_s": time.perf_counter() - start,
        }
        print(f"{agent}: {summary[agent]}", flush=True)
    rows = [
        f"| {a} | {s['first_eval']:.1f} | {s['final_eval']:.1f} ± {s['final_eval_std']:.1f} | "
        f"{s['mean_over_evals']:.1f} | {s['sps']:.0f} |"
        for a, s in summary.items()
    ]
    table = "\n".join(
        [
            "| agent | first evaluation | final evaluation (mean ± std, 5 episodes) | mean over evaluations "
            "| steps/s |",
            "| --- | ---: | ---: | ---: | ---: |",
            *rows,
        ]
    )
    with open(args.out / "curves.csv", "w") as f:
        f.write("agent,env_steps,mean_return\n")
        for agent, (steps, means) in curves.items():
            f.writelines(f"{agent},{s},{m}\n" for s, m in zip(steps, means, strict=True))
    plot(curves, args.out / "curves.png", title=f"{args.game}, seed {args.seed}")
    return {"table": table, "summary": summary, "curves": curves}


def plot(curves: dict[str, tuple[list[int], list[float]]], path: Path, title: str) -> None:
    plt = pyplot_or_none()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for agent, (steps, means) in curves.items():
        ax.plot(steps, means, marker="o", label=agent)
    ax.set(xlabel="env steps", ylabel="evaluation return (mean of 5 episodes)", title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["throughput", "update", "learn"])
    parser.add_argument("--game", default="BreakoutNoFrameskip-v4", help="gymnasium Atari id")
    parser.add_argument("--seed", type=int, default=0, help="seed of every run (networks and envs)")
    parser.add_argument("--out", type=Path, default=Path("bench_results/study_agents"), help="output folder")
    parser.add_argument("--rollouts", type=int, default=4, help="throughput: rollouts of 2,048 steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="throughput, update: interleaved repeats")
    parser.add_argument(
        "--agents", nargs="+", choices=AGENTS, default=list(AGENTS), help="learn: the agents to train, in order"
    )
    parser.add_argument(
        "--runs", nargs="+", choices=list(RUNS), default=list(RUNS), help="throughput: the runs, NA first"
    )
    parser.add_argument("--steps", type=int, default=150_000, help="learn: env steps per agent")
    parser.add_argument("--eval-every", type=int, default=25_000, help="learn: evaluation period in env steps")
    parser.epilog = "Further arguments are passed to every lit-rl run, e.g. --model.anneal_lr=false."
    args, extra = parser.parse_known_args(argv)
    args.extra = [a for a in extra if a != "--"]
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"throughput": throughput, "update": update, "learn": learn}[args.mode](args)
    (args.out / f"{args.mode}.md").write_text(result["table"] + "\n")
    (args.out / f"{args.mode}.json").write_text(json.dumps({"args": vars(args) | {"out": str(args.out)}, **result}))
    print(result["table"])


if __name__ == "__main__":
    main()
