"""Training throughput of lit_rl PPO against Stable-Baselines3 PPO on one Atari game (CPU).

Both systems run the cleanrl / RL Zoo Atari setting (``SETTINGS`` below: 8 envs × 128 steps,
4 epochs × 4 minibatches of 256, Nature CNN, ...) in this one process, with the same torch threads.
Each repeat measures, in this order:

1. the env-only ceiling: random-action steps/s of 8 envs (pre-drawn actions, so only ``step`` is
   timed) for lit_rl's default backend (``auto``: ale-py's C++ ``AtariVectorEnv``), its
   ``gymnasium`` wrapper backend, and SB3's ``make_atari_env`` + ``VecFrameStack(4)``
   (``DummyVecEnv``);
2. lit_rl PPO and SB3 PPO, alternating which goes first so that drift hits both alike.

How the PPO runs are timed. Neither count includes set-up or the first (warm-up) rollout.

- lit_rl: :func:`lit_rl.cli.run` itself, with the YAML below, the flags of ``SETTINGS`` and
  ``--trainer.max_epochs 1 + rollouts``; one epoch is one rollout (collect + update). The budget
  ``model.total_env_steps`` stays at the YAML's 10M, so it is never reached and neither the final
  evaluation nor the final checkpoint runs: ``max_epochs`` ends training. :class:`RolloutTimer`,
  added with ``--trainer.callbacks+=``, notes wall time and ``model.env_steps`` at every epoch
  start and at ``on_train_end``; steps/s runs from the start of epoch 1 (after the warm-up
  rollout, which also pays for first-call allocations) to the end of training. Logger, checkpoints
  and evaluation are off; the CLI's ``config.yaml`` goes to a temporary directory.
- SB3: ``model.learn`` of one rollout, then ``model.learn(rollouts × 1024,
  reset_num_timesteps=False)`` timed around the call.

Differences that do not change the work per step: lit_rl clips the value loss and anneals the
learning rate (SB3 defaults do neither); both normalise advantages per minibatch. ``vf_coef`` 0.5
weighs ``0.5·MSE`` in lit_rl (cleanrl) and ``MSE`` in SB3.

The machine should be otherwise idle: the printed line ends with the 1-minute load average before
and after the run (about 2 on 2 cores is the benchmark itself), and the min–max columns show the spread.

Usage (from the repository root)::

    python tools/benchmark.py --repeats 3 --rollouts 5 --json bench.json
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import lightning as L
import numpy as np
import torch

import lit_rl
from lit_rl.cli import run
from lit_rl.envs.factory import check_env_id, is_atari, make_vector_env
from lit_rl.errors import ConfigError

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "ppo" / "breakout_nature_cnn.yaml"
NATURE_CNN = "lit_rl.models.extractors.nature_cnn.NatureCNN"
NUM_ENVS, NUM_STEPS, NUM_MINIBATCHES = 8, 128, 4
ROLLOUT = NUM_ENVS * NUM_STEPS
SEED = 1
# (lit_rl flag, SB3 PPO keyword, value). SB3 gets its env count from make_atari_env and its
# minibatch size as batch_size = ROLLOUT // NUM_MINIBATCHES.
SETTINGS = [
    ("data.num_envs", None, NUM_ENVS),
    ("data.num_steps", "n_steps", NUM_STEPS),
    ("data.num_minibatches", None, NUM_MINIBATCHES),
    ("data.update_epochs", "n_epochs", 4),
    ("model.optimizer.init_args.lr", "learning_rate", 2.5e-4),
    ("model.clip_coef", "clip_range", 0.1),
    ("model.ent_coef", "ent_coef", 0.01),
    ("model.vf_coef", "vf_coef", 0.5),
    ("model.max_grad_norm", "max_grad_norm", 0.5),
    ("model.gamma", "gamma", 0.99),
    ("model.gae_lambda", "gae_lambda", 0.95),
]
ENV_ROWS = {
    "env_lit_rl_auto": "env only: lit_rl `auto` (ale-py AtariVectorEnv)",
    "env_lit_rl_gymnasium": "env only: lit_rl `gymnasium` wrappers",
    "env_sb3": "env only: SB3 make_atari_env + VecFrameStack",
}


class RolloutTimer(L.Callback):
    """Wall time and ``model.env_steps`` at each epoch (= rollout) start and at the end of training."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, int]] = []

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.marks.append((time.perf_counter(), int(pl_module.env_steps)))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.marks.append((time.perf_counter(), int(pl_module.env_steps)))

    def steps_per_second(self, skip: int = 1) -> float:
        """Env steps/s from the start of epoch ``skip`` to the end of training."""
        (t0, s0), (t1, s1) = self.marks[skip], self.marks[-1]
        return (s1 - s0) / (t1 - t0)


def import_sb3() -> tuple:
    try:
        from stable_baselines3 import PPO as SB3PPO
        from stable_baselines3.common.env_util import make_atari_env
        from stable_baselines3.common.vec_env import VecFrameStack
    except ImportError:
        raise SystemExit(
            "benchmark: error: stable-baselines3 is not installed; run `pip install -e .[dev]` or pass --skip-sb3"
        ) from None
    return SB3PPO, make_atari_env, VecFrameStack


def sb3_vec_env(env_id: str):
    _, make_atari_env, VecFrameStack = import_sb3()
    return VecFrameStack(make_atari_env(env_id, n_envs=NUM_ENVS, seed=SEED), n_stack=4)


def time_steps(step: Callable[[np.ndarray], object], num_actions: int, rollouts: int) -> float:
    """Env steps/s of ``rollouts × NUM_STEPS`` random vector steps, after one rollout's worth of warm-up."""
    actions = np.random.default_rng(SEED).integers(num_actions, size=((rollouts + 1) * NUM_STEPS, NUM_ENVS))
    for a in actions[:NUM_STEPS]:
        step(a)
    start = time.perf_counter()
    for a in actions[NUM_STEPS:]:
        step(a)
    return rollouts * ROLLOUT / (time.perf_counter() - start)


def env_only(env_id: str, system: str, rollouts: int) -> float:
    if system == "env_sb3":
        env = sb3_vec_env(env_id)
        env.reset()
    else:
        backend = system.removeprefix("env_lit_rl_")
        env = make_vector_env(env_id, num_envs=NUM_ENVS, backend=backend)
        env.reset(seed=SEED)
    try:
        # gymnasium vector envs batch their action space; SB3's VecEnv keeps the single one.
        return time_steps(env.step, getattr(env, "single_action_space", env.action_space).n, rollouts)
    finally:
        env.close()


def lit_rl_ppo(args: argparse.Namespace) -> float:
    with tempfile.TemporaryDirectory() as root:  # the CLI saves its config.yaml under the root dir
        flags = [f"--{flag}={value}" for flag, _, value in SETTINGS] + [
            f"--data.env_id={args.env_id}",
            f"--model.extractor={args.extractor}",
            f"--trainer.max_epochs={1 + args.rollouts}",
            f"--trainer.precision={args.precision}",
            f"--trainer.callbacks+={RolloutTimer.__module__}.RolloutTimer",
            f"--trainer.default_root_dir={root}",
            "--trainer.logger=false",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
            "--evaluation.every_n_env_steps=0",
            "--checkpoint.every_n_env_steps=0",
            "--checkpoint.save_last=false",
        ]
        cli = run(["fit", f"--config={CONFIG}", *flags])
    (timer,) = [c for c in cli.trainer.callbacks if isinstance(c, RolloutTimer)]
    if len(timer.marks) != args.rollouts + 2:
        raise RuntimeError(f"lit_rl ran {len(timer.marks) - 1} rollouts, expected {args.rollouts + 1}")
    return timer.steps_per_second()


def sb3_ppo(args: argparse.Namespace) -> float:
    SB3PPO, _, _ = import_sb3()
    env = sb3_vec_env(args.env_id)
    kwargs = {key: value for _, key, value in SETTINGS if key is not None}
    model = SB3PPO("CnnPolicy", env, batch_size=ROLLOUT // NUM_MINIBATCHES, seed=SEED, device="cpu", **kwargs)
    model.learn(ROLLOUT)
    steps, start = model.num_timesteps, time.perf_counter()
    model.learn(args.rollouts * ROLLOUT, reset_num_timesteps=False)
    sps = (model.num_timesteps - steps) / (time.perf_counter() - start)
    env.close()
    return sps


def run_repeats(args: argparse.Namespace) -> dict[str, list[float]]:
    env_systems = [s for s in ENV_ROWS if not (args.skip_sb3 and s == "env_sb3")]
    ppo = {"ppo_lit_rl": lit_rl_ppo} | ({} if args.skip_sb3 else {"ppo_sb3": sb3_ppo})
    results: dict[str, list[float]] = {name: [] for name in [*env_systems, *ppo]}
    for repeat in range(args.repeats):
        for system in env_systems:
            results[system].append(env_only(args.env_id, system, args.rollouts))
        order = list(ppo) if repeat % 2 == 0 else list(ppo)[::-1]
        for system in order:
            torch.set_num_threads(args.threads)
            results[system].append(ppo[system](args))
            print(f"repeat {repeat + 1}/{args.repeats}: {system} {results[system][-1]:,.0f} steps/s", flush=True)
    return results


def summarise(results: dict[str, list[float]]) -> dict:
    summary = {
        name: {"per_repeat": v, "median": statistics.median(v), "min": min(v), "max": max(v)}
        for name, v in results.items()
    }
    if "ppo_sb3" in results:
        ratios = [a / b for a, b in zip(results["ppo_lit_rl"], results["ppo_sb3"], strict=True)]
        summary["ppo_lit_rl"]["vs_sb3"] = statistics.median(ratios)
        summary["ppo_lit_rl"]["vs_sb3_per_repeat"] = ratios
        summary["ppo_sb3"]["vs_sb3"] = 1.0
        summary["ppo_sb3"]["of_env_ceiling"] = summary["ppo_sb3"]["median"] / summary["env_sb3"]["median"]
        for name in ENV_ROWS:
            summary[name]["vs_sb3"] = summary[name]["median"] / summary["env_sb3"]["median"]
    summary["ppo_lit_rl"]["of_env_ceiling"] = summary["ppo_lit_rl"]["median"] / summary["env_lit_rl_auto"]["median"]
    return summary


def markdown(summary: dict, args: argparse.Namespace) -> str:
    names = ENV_ROWS | {
        "ppo_lit_rl": f"PPO: lit_rl ({args.extractor.rsplit('.', 1)[-1]}, {args.precision})",
        "ppo_sb3": "PPO: SB3 (CnnPolicy, float32)",
    }
    lines = ["| system | steps/s (median) | min–max | vs SB3 | % of env-only ceiling |", "|---|---:|---:|---:|---:|"]
    for key, row in summary.items():
        ratio = f"{row['vs_sb3']:.2f}×" if "vs_sb3" in row else "—"
        ceiling = f"{100 * row['of_env_ceiling']:.0f}%" if "of_env_ceiling" in row else "—"
        lines.append(
            f"| {names[key]} | {row['median']:,.0f} | {row['min']:,.0f}–{row['max']:,.0f} | {ratio} | {ceiling} |"
        )
    return "\n".join(lines)


def machine(threads: int, with_sb3: bool) -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")), "unknown")
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": threads,
        "lit_rl": lit_rl.__version__,
    }
    return info | ({"stable_baselines3": importlib.metadata.version("stable-baselines3")} if with_sb3 else {})


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env-id", default="PongNoFrameskip-v4", help="an Atari env id")
    parser.add_argument("--rollouts", type=int, default=5, help="timed rollouts (of 1024 steps) per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count(), help="torch threads of both systems (default: all cores)"
    )
    parser.add_argument("--precision", default="32-true", help="lit_rl trainer precision, e.g. bf16-mixed")
    parser.add_argument(
        "--extractor", default=NATURE_CNN, help="lit_rl extractor class path (SB3 runs only for NatureCNN)"
    )
    parser.add_argument("--skip-sb3", action="store_true")
    parser.add_argument("--json", type=Path, help="write the results to this file")
    args = parser.parse_args(argv)
    if min(args.rollouts, args.repeats, args.threads) < 1:
        parser.error("--rollouts, --repeats and --threads must be positive")
    try:
        check_env_id(args.env_id)
    except ConfigError as err:
        parser.error(str(err))
    if not is_atari(args.env_id):
        parser.error(f"--env-id {args.env_id} is not an Atari game")
    if args.extractor != NATURE_CNN and not args.skip_sb3:
        print(f"SB3 is only run with NatureCNN; skipping it for {args.extractor}")
        args.skip_sb3 = True
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # This script's own argv is not meant for LightningCLI, which receives ``args`` explicitly.
    warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within Python.*")
    load_before = os.getloadavg()[0]
    if not args.skip_sb3:
        import_sb3()  # fail before any measurement
    torch.set_num_threads(args.threads)
    summary = summarise(run_repeats(args))
    info = machine(torch.get_num_threads(), not args.skip_sb3) | {"load_avg_1min": [load_before, os.getloadavg()[0]]}
    print(
        f"\n{args.env_id}, {args.rollouts} timed rollouts × {ROLLOUT} steps after 1 warm-up, {args.repeats} repeats. "
        f"CPU: {info['cpu']}, {info['cores']} cores, torch {info['torch']}, {info['torch_threads']} torch threads, "
        f"1-min load average {load_before:.1f} before and {os.getloadavg()[0]:.1f} after."
    )
    print(markdown(summary, args))
    print("vs SB3: PPO rows are the median of per-repeat ratios; env rows compare medians with SB3's env.")
    if args.json is not None:
        settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        args.json.write_text(json.dumps({"machine": info, "args": settings, "results": summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
