"""The study's five agents side by side on one game: training throughput and short learning runs.

Every mode runs ``lit-rl fit --config configs/study/<Agent>.yaml`` in this process with the same
game, seed and settings for every agent (the arguments of :func:`lit_rl.sweep.fit_args`), and reads
the results back from each run's TensorBoard events and ``evaluations.npz``; ``update`` fits the
same modules on :class:`lit_rl.data.synthetic.SyntheticRolloutDataModule` (no env).

    # steps/s of every agent relative to NA (and of NA on the gymnasium backend), interleaved in each
    # repeat (the order rotates from repeat to repeat); --runs picks some of them
    python -m tools.study_agents throughput --game BreakoutNoFrameskip-v4 --rollouts 4 --repeats 3
    python -m tools.study_agents throughput --runs NA NA-gymnasium --rollouts 3 --repeats 5

    # the PPO update alone: each agent's minibatch updates of 256 (PPO's training step: forward, loss,
    # backward, clipping, the config's fused Adam) on one epoch of a synthetic rollout
    python -m tools.study_agents update --repeats 10

    # a short learning run per agent, with its evaluation curve (PNG needs the `analysis` extra);
    # unknown arguments go to every lit-rl run
    python -m tools.study_agents learn --game RoadRunnerNoFrameskip-v4 --steps 150000 --eval-every 50000 \
        --model.anneal_lr=false --model.anneal_clip=false

Results go to ``--out`` as ``<mode>.md`` (a Markdown table), ``<mode>.json`` and, for ``learn``,
``curves.csv`` and ``curves.png``. A ``learn`` run that finished before (same ``--out``) is read back,
not trained again; ``throughput`` runs are scratch, replaced by every measurement.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

import lightning as L

from lit_rl.analysis.curves import load_evaluation_results
from lit_rl.analysis.curves import tensorboard_scalars as scalars
from lit_rl.analysis.plots import pyplot_or_none
from lit_rl.cli import LitRLCLI, run
from lit_rl.data.synthetic import SyntheticRolloutDataModule
from lit_rl.sweep import fit_args

AGENTS = ("NA", "SWA", "CWRA", "CWCA", "CWRCA")
STUDY = Path(__file__).resolve().parents[1] / "configs" / "study"
ROLLOUT = 16 * 128  # the study's configs: 16 envs x 128 steps
MINIBATCH = ROLLOUT // 8  # and 8 minibatches
COMPUTE_ESTIMATE = {"NA": "1.00", "SWA": "≈ 1.19", "CWRA": "≈ 1.19", "CWCA": "≈ 1.19", "CWRCA": "≈ 1.28"}


def fit(
    agent: str, run_dir: Path, args: argparse.Namespace, *, steps: int, eval_every: int, extra: list[str] = ()
) -> Path:
    """Train one agent in ``run_dir`` (resuming it when ``--out`` holds it already); returns ``run_dir``."""
    overrides = [
        f"--model.total_env_steps={steps}",
        f"--evaluation.every_n_env_steps={eval_every}",
        "--checkpoint.every_n_env_steps=0",
        *extra,
        *args.extra,
    ]
    run(fit_args(STUDY / f"{agent}.yaml", run_dir, seed=args.seed, env_id=args.game, overrides=overrides))
    return run_dir


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
            run_dir = args.out / "throughput" / f"r{repeat}" / run_name
            shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run, never a resumed one
            log_dir = fit(agent, run_dir, args, steps=args.rollouts * ROLLOUT, eval_every=0, extra=backend)
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


class UpdateTimer(L.Callback):
    """Seconds of each training step (one minibatch update), summed."""

    def __init__(self) -> None:
        self.seconds, self.steps, self._start = 0.0, 0, 0.0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        self.seconds += time.perf_counter() - self._start
        self.steps += 1


def update_seconds(agent: str, args: argparse.Namespace) -> tuple[float, int]:
    """Seconds and count of the minibatch updates of one epoch of a synthetic rollout of ``agent``'s config."""
    flags = [
        "--config",
        str(STUDY / f"{agent}.yaml"),
        f"--data.env_id={args.game}",
        f"--seed_everything={args.seed}",
        "--data.update_epochs=1",
        "--trainer.max_epochs=1",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        f"--trainer.default_root_dir={args.out / 'update'}",
        "--evaluation.every_n_env_steps=0",
        "--checkpoint.every_n_env_steps=0",
        "--checkpoint.save_last=false",
        *args.extra,
    ]
    cli: LitRLCLI = run(flags, subcommand=False)
    timer = UpdateTimer()
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, SyntheticRolloutDataModule.like(cli.datamodule))
    return timer.seconds, timer.steps


def update(args: argparse.Namespace) -> dict:
    """Samples/s of PPO's minibatch updates (256 samples each) per agent on synthetic rollouts, interleaved."""
    seconds: dict[str, list[float]] = {a: [] for a in AGENTS}
    samples = {}
    for repeat in range(args.repeats + 1):  # the first pass warms up
        for agent in AGENTS:
            elapsed, steps = update_seconds(agent, args)
            samples[agent] = steps * MINIBATCH
            if repeat:
                seconds[agent].append(elapsed)
    ratios = {a: statistics.median(x / n for n, x in zip(seconds["NA"], seconds[a], strict=True)) for a in AGENTS}
    rows = [f"| {a} | {samples[a] / min(seconds[a]):.0f} | {ratios[a]:.2f} | {COMPUTE_ESTIMATE[a]} |" for a in AGENTS]
    header = "| agent | samples/s (best repeat) | update time vs NA (median of per-repeat ratios) | spec MACs vs NA |"
    table = "\n".join([header, "| --- | ---: | ---: | ---: |", *rows])
    return {"table": table, "seconds": seconds, "time_ratio_vs_na": ratios}


def learn(args: argparse.Namespace) -> dict:
    """One run per agent; evaluation curves and summary scores."""
    curves, summary = {}, {}
    for agent in args.agents:
        start = time.perf_counter()
        run_dir = args.out / "learn" / agent / f"seed_{args.seed}"
        log_dir = fit(agent, run_dir, args, steps=args.steps, eval_every=args.eval_every)
        steps, results = load_evaluation_results(log_dir)
        curves[agent] = (steps.tolist(), results.mean(axis=1).tolist())
        sps = [v for _, v in scalars(log_dir, "perf/sps")][1:]
        summary[agent] = {
            "first_eval": float(results[0].mean()),
            "final_eval": float(results[-1].mean()),
            "final_eval_std": float(results[-1].std()),
            "mean_over_evals": float(results.mean()),
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
