"""Training throughput of lit_rl PPO against its PyTorch peers, with the ceilings, in one process.

Every system runs the cleanrl / RL Zoo Atari setting (8 envs × 128 steps, 4 epochs × 4 minibatches
of 256, Nature CNN, Adam 2.5e-4, ...) on the same game, with the same torch threads. Each repeat
measures, in this order (the PPO systems rotate their order from repeat to repeat, so that drift
of a noisy machine hits all alike):

1. env-only ceilings: random-action steps/s of 8 envs (pre-drawn actions, only ``step`` timed) of
   lit_rl's training env (ale-py's C++ ``AtariVectorEnv`` in ``data.env_groups`` groups), of the
   plain loop's gymnasium wrapper stack, of SB3's ``make_atari_env`` + ``VecFrameStack`` and, when
   installed, of envpool;
2. the network-only ceiling of lit_rl: the same ``lit-rl fit`` objects trained by ``Trainer.fit`` on
   :class:`lit_rl.data.synthetic.SyntheticRolloutDataModule` (random uint8 frames, no env): ``T``
   policy forwards at batch ``N`` per rollout plus the module's own update (``update_epochs ×
   num_minibatches`` minibatches: forward, PPO loss, backward, gradient clipping, the configured
   fused Adam, the finiteness check), Lightning included: the rate lit_rl reaches with free envs;
3. PPO: ``lit_rl`` (the ``lit-rl fit`` CLI, Lightning and all), ``plain_pytorch``
   (``tools/plain_ppo.py``: CleanRL's ``ppo_atari.py`` recipe, a plain loop without Lightning) and
   ``sb3`` (Stable-Baselines3 PPO).

Each PPO system trains one warm-up rollout, then ``--rollouts`` timed ones (set-up excluded).
lit_rl runs with the logger, checkpoints and evaluation off and a budget it never reaches
(``max_epochs`` ends training). Ratios (vs SB3, vs the plain loop, % of ceiling) are medians of
per-repeat ratios; the machine should be otherwise idle (the load average
before and after is printed and stored).

Usage (from the repository root)::

    python -m tools.benchmark --repeats 3 --rollouts 4 --json bench.json
    python -m tools.benchmark --extractor lit_rl.models.extractors.small_cnn.SmallCNN --only lit_rl
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import lightning as L
import numpy as np
import torch

import lit_rl
from lit_rl.cli import LitRLCLI, run
from lit_rl.data.synthetic import SyntheticRolloutDataModule
from lit_rl.envs.factory import check_env_id, game_name, is_atari, make_vector_env
from lit_rl.errors import ConfigError
from tools import plain_ppo

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "ppo" / "breakout_nature_cnn.yaml"
NATURE_CNN = "lit_rl.models.extractors.nature_cnn.NatureCNN"
NUM_ENVS, NUM_STEPS, NUM_MINIBATCHES, UPDATE_EPOCHS = 8, 128, 4, 4
ROLLOUT = NUM_ENVS * NUM_STEPS
SEED = 1
# (lit_rl flag, SB3 PPO keyword, value). SB3 gets its env count from make_atari_env and its
# minibatch size as batch_size = ROLLOUT // NUM_MINIBATCHES.
SETTINGS = [
    ("data.num_envs", None, NUM_ENVS),
    ("data.num_steps", "n_steps", NUM_STEPS),
    ("data.num_minibatches", None, NUM_MINIBATCHES),
    ("data.update_epochs", "n_epochs", UPDATE_EPOCHS),
    ("model.optimizer.init_args.lr", "learning_rate", 2.5e-4),
    ("model.clip_coef", "clip_range", 0.1),
    ("model.ent_coef", "ent_coef", 0.01),
    ("model.vf_coef", "vf_coef", 0.5),
    ("model.max_grad_norm", "max_grad_norm", 0.5),
    ("model.gamma", "gamma", 0.99),
    ("model.gae_lambda", "gae_lambda", 0.95),
]
PEERS = ("plain_pytorch", "sb3")  # NatureCNN only: they have no other network


# -- env-only ceilings -------------------------------------------------------------------------


def time_steps(step: Callable[[np.ndarray], object], num_actions: int, rollouts: int) -> float:
    """Env steps/s of ``rollouts × NUM_STEPS`` random vector steps, after one rollout's worth of warm-up."""
    actions = np.random.default_rng(SEED).integers(num_actions, size=((rollouts + 1) * NUM_STEPS, NUM_ENVS))
    for a in actions[:NUM_STEPS]:
        step(a)
    start = time.perf_counter()
    for a in actions[NUM_STEPS:]:
        step(a)
    return rollouts * ROLLOUT / (time.perf_counter() - start)


def make_env(system: str, args: argparse.Namespace):
    """The vector env of an env-only row, reset."""
    if system == "env_lit_rl":
        env = make_vector_env(args.env_id, num_envs=NUM_ENVS, env_groups=args.env_groups)
        env.reset(seed=SEED)
    elif system == "env_plain_pytorch":
        env = plain_ppo.make_envs(args.env_id, NUM_ENVS)
        env.reset(seed=SEED)
    elif system == "env_sb3":
        _, make_atari_env, VecFrameStack = import_sb3()
        env = VecFrameStack(make_atari_env(args.env_id, n_envs=NUM_ENVS, seed=SEED), n_stack=4)
        env.reset()
    else:  # env_envpool: its Atari protocol set like lit_rl's (life loss, clipped rewards, 30 no-ops)
        import envpool

        env = envpool.make(
            f"{game_name(args.env_id)}-v5",
            env_type="gymnasium",
            num_envs=NUM_ENVS,
            batch_size=NUM_ENVS,
            seed=SEED,
            episodic_life=True,
            reward_clip=True,
            repeat_action_probability=0.0,
            noop_max=30,
        )
        env.reset()
    return env


def env_only(system: str, args: argparse.Namespace) -> float:
    env = make_env(system, args)
    try:
        # gymnasium vector envs batch their action space; SB3's VecEnv keeps the single one.
        return time_steps(env.step, getattr(env, "single_action_space", env.action_space).n, args.rollouts)
    finally:
        env.close()


# -- the network-only ceiling ------------------------------------------------------------------


def network_only(args: argparse.Namespace) -> float:
    """Steps/s of lit_rl with free envs: the benchmark's module fitted on synthetic rollouts (no env)."""
    extra = [f"--trainer.max_epochs={1 + args.rollouts}", f"--trainer.callbacks+={__name__}.RolloutTimer"]
    with built_cli(args, extra, run_fit=False) as cli:
        cli.trainer.fit(cli.model, SyntheticRolloutDataModule.like(cli.datamodule))
        return timed_rate(cli, args)


# -- PPO systems -------------------------------------------------------------------------------


class RolloutTimer(L.Callback):
    """Wall time and ``model.env_steps`` at each epoch (= rollout) start and at the end of training."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, int]] = []  # wall time, env steps

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.marks.append((time.perf_counter(), int(pl_module.env_steps)))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.marks.append((time.perf_counter(), int(pl_module.env_steps)))

    def steps_per_second(self, skip: int = 1) -> float:
        """Env steps/s from the start of epoch ``skip`` to the end of training."""
        (t0, s0), (t1, s1) = self.marks[skip], self.marks[-1]
        return (s1 - s0) / (t1 - t0)


@contextlib.contextmanager
def built_cli(args: argparse.Namespace, extra: list[str], run_fit: bool = True) -> Iterator[LitRLCLI]:
    """``lit-rl fit`` (or only its objects) with the benchmark's settings; logger, checkpoints, evaluation off."""
    with tempfile.TemporaryDirectory() as root:  # the CLI saves its config.yaml under the root dir
        flags = [f"--{flag}={value}" for flag, _, value in SETTINGS] + [
            f"--data.env_id={args.env_id}",
            f"--data.env_groups={args.env_groups}",
            f"--model.extractor={args.extractor}",
            f"--trainer.precision={args.precision}",
            f"--trainer.default_root_dir={root}",
            "--trainer.logger=false",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
            "--evaluation.every_n_env_steps=0",
            "--checkpoint.every_n_env_steps=0",
            "--checkpoint.save_last=false",
            *extra,
        ]
        yield run(["fit"] * run_fit + [f"--config={CONFIG}", *flags], subcommand=run_fit)


def timed_rate(cli: LitRLCLI, args: argparse.Namespace) -> float:
    """Steps/s of the timed rollouts of a fit with a :class:`RolloutTimer` (the warm-up one excluded)."""
    (timer,) = [c for c in cli.trainer.callbacks if isinstance(c, RolloutTimer)]
    if len(timer.marks) != args.rollouts + 2:
        raise RuntimeError(f"lit_rl ran {len(timer.marks) - 1} rollouts, expected {args.rollouts + 1}")
    return timer.steps_per_second()


def lit_rl_ppo(args: argparse.Namespace) -> float:
    extra = [f"--trainer.max_epochs={1 + args.rollouts}", f"--trainer.callbacks+={__name__}.RolloutTimer"]
    with built_cli(args, extra) as cli:
        return timed_rate(cli, args)


def plain_pytorch(args: argparse.Namespace) -> float:
    return plain_ppo.train(args.env_id, rollouts=args.rollouts, seed=SEED)[0]


def import_sb3() -> tuple:
    try:
        from stable_baselines3 import PPO as SB3PPO
        from stable_baselines3.common.env_util import make_atari_env
        from stable_baselines3.common.vec_env import VecFrameStack
    except ImportError:
        raise SystemExit(
            "benchmark: error: stable-baselines3 is not installed; run `pip install -e .[dev]` or pass --only lit_rl"
        ) from None
    return SB3PPO, make_atari_env, VecFrameStack


def sb3_ppo(args: argparse.Namespace) -> float:
    SB3PPO, make_atari_env, VecFrameStack = import_sb3()
    env = VecFrameStack(make_atari_env(args.env_id, n_envs=NUM_ENVS, seed=SEED), n_stack=4)
    kwargs = {key: value for _, key, value in SETTINGS if key is not None}
    model = SB3PPO("CnnPolicy", env, batch_size=ROLLOUT // NUM_MINIBATCHES, seed=SEED, device="cpu", **kwargs)
    model.learn(ROLLOUT)
    steps, start = model.num_timesteps, time.perf_counter()
    model.learn(args.rollouts * ROLLOUT, reset_num_timesteps=False)
    sps = (model.num_timesteps - steps) / (time.perf_counter() - start)
    env.close()
    return sps


# -- repeats, summary, output ------------------------------------------------------------------

ENV_SYSTEMS = {
    "env_lit_rl": "env only: lit_rl training env (ale-py C++ vector env)",
    "env_envpool": "env only: envpool",
    "env_plain_pytorch": "env only: gymnasium wrappers (CleanRL's)",
    "env_sb3": "env only: SB3 make_atari_env + VecFrameStack",
}
PPO_SYSTEMS: dict[str, Callable[[argparse.Namespace], float]] = {
    "lit_rl": lit_rl_ppo,
    "plain_pytorch": plain_pytorch,
    "sb3": sb3_ppo,
}


def selected_systems(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """Env-only and PPO systems of this run, in measuring order."""
    ppo = [s for s in PPO_SYSTEMS if s in args.only]
    envs = ["env_lit_rl"] + [f"env_{s}" for s in PEERS if s in args.only]
    if envpool_available():
        envs.insert(1, "env_envpool")
    return envs, ppo


def envpool_available() -> bool:
    try:
        import envpool  # noqa: F401
    except ImportError:
        return False
    return True


def run_repeats(args: argparse.Namespace) -> dict[str, list[float]]:
    env_systems, ppo = selected_systems(args)
    results: dict[str, list[float]] = {name: [] for name in [*env_systems, "network_only", *ppo]}
    for repeat in range(args.repeats):
        torch.set_num_threads(args.threads)
        for system in env_systems:
            results[system].append(env_only(system, args))
        results["network_only"].append(network_only(args))
        order = ppo[repeat % len(ppo) :] + ppo[: repeat % len(ppo)]
        for system in order:
            torch.set_num_threads(args.threads)
            results[system].append(PPO_SYSTEMS[system](args))
        line = ", ".join(f"{name} {values[-1]:,.0f}" for name, values in results.items())
        print(f"repeat {repeat + 1}/{args.repeats} (steps/s): {line}", flush=True)
    return results


def median_ratio(a: list[float], b: list[float]) -> float:
    """Median over repeats of ``a[i] / b[i]`` (both measured in repeat ``i``)."""
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def summarise(results: dict[str, list[float]]) -> dict:
    """Medians, spreads and the ratios of the table; every ratio is a median of per-repeat ratios."""
    summary = {
        name: {"per_repeat": v, "median": statistics.median(v), "min": min(v), "max": max(v)}
        for name, v in results.items()
    }
    for name in PPO_SYSTEMS:
        if name not in results:
            continue
        row = summary[name]
        row["of_network_ceiling"] = median_ratio(results[name], results["network_only"])
        for peer in ("sb3", "plain_pytorch"):
            if peer in results:
                row[f"vs_{peer}"] = median_ratio(results[name], results[peer])
    return summary


def markdown(summary: dict, args: argparse.Namespace) -> str:
    net = args.extractor.rsplit(".", 1)[-1]
    names = ENV_SYSTEMS | {
        "network_only": f"network only: lit_rl {net} ({args.precision}), collection forwards + update",
        "lit_rl": f"PPO: lit_rl ({net}, {args.precision})",
        "plain_pytorch": "PPO: plain PyTorch, CleanRL ppo_atari recipe (NatureCNN, fp32)",
        "sb3": "PPO: SB3 (CnnPolicy, fp32)",
    }
    lines = [
        "| system | steps/s (median) | min–max | vs SB3 | vs plain PyTorch | % of network ceiling |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, row in summary.items():
        cells = [f"{row[k]:.2f}×" if k in row else "—" for k in ("vs_sb3", "vs_plain_pytorch")]
        ceiling = f"{100 * row['of_network_ceiling']:.0f} %" if "of_network_ceiling" in row else "—"
        lines.append(
            f"| {names[key]} | {row['median']:,.0f} | {row['min']:,.0f}–{row['max']:,.0f} | "
            f"{' | '.join(cells)} | {ceiling} |"
        )
    return "\n".join(lines)


def machine(threads: int) -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")), "unknown")
    flags = next((ln.split(":", 1)[1].split() for ln in cpuinfo.splitlines() if ln.startswith("flags")), [])
    info = {
        "cpu": cpu,
        "cpu_features": [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags],
        "cores": os.cpu_count(),
        "torch_threads": threads,
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    for package in ("torch", "lightning", "ale-py", "stable-baselines3", "envpool", "gymnasium"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            info[package] = importlib.metadata.version(package)
    return info | {"lit_rl": lit_rl.__version__}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env-id", default="PongNoFrameskip-v4", help="an Atari env id")
    parser.add_argument("--rollouts", type=int, default=4, help="timed rollouts (of 1024 steps) per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    parser.add_argument("--precision", default="32-true", help="lit_rl's trainer precision, e.g. bf16-mixed")
    parser.add_argument("--extractor", default=NATURE_CNN, help="lit_rl's extractor class path (peers: NatureCNN)")
    parser.add_argument("--env-groups", type=int, default=2, help="lit_rl's data.env_groups (1: no pipelining)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(PPO_SYSTEMS),
        default=list(PPO_SYSTEMS),
        help="PPO systems to run (default: all; the peers only with NatureCNN)",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    if min(args.rollouts, args.repeats, args.threads, args.env_groups) < 1:
        parser.error("--rollouts, --repeats, --threads and --env-groups must be positive")
    try:
        check_env_id(args.env_id)
    except ConfigError as err:
        parser.error(str(err))
    if not is_atari(args.env_id):
        parser.error(f"--env-id {args.env_id} is not an Atari game")
    if args.extractor != NATURE_CNN and set(args.only) & set(PEERS):
        print(f"the peers run only the Nature CNN; measuring lit_rl alone with {args.extractor}")
        args.only = [s for s in args.only if s not in PEERS]
    if not args.only:
        parser.error("--only selects no system")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if "sb3" in args.only or "plain_pytorch" in args.only:
        import_sb3()  # fail before any measurement (the plain loop uses SB3's Atari wrappers too)
    load_before = os.getloadavg()[0]
    summary = summarise(run_repeats(args))
    info = machine(args.threads) | {"load_avg_1min": [load_before, os.getloadavg()[0]]}
    print(
        f"\n{args.env_id}, {args.rollouts} timed rollouts × {ROLLOUT} steps after 1 warm-up, {args.repeats} repeats. "
        f"CPU: {info['cpu']} ({', '.join(info['cpu_features'])}), {info['cores']} cores, {args.threads} torch "
        f"threads, torch {info.get('torch')}; 1-min load average {load_before:.1f} before, "
        f"{info['load_avg_1min'][1]:.1f} after.\n"
    )
    print(markdown(summary, args))
    if args.json is not None:
        settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        args.json.write_text(json.dumps({"machine": info, "args": settings, "results": summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
