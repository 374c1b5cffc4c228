"""Training throughput of lit_rl PPO against its PyTorch peers, with the ceilings, in one process.

Every system runs the cleanrl / RL Zoo Atari setting (8 envs × 128 steps, 4 epochs × 4 minibatches
of 256, Nature CNN, Adam 2.5e-4, ...) on the same game, with the same torch threads. Each repeat
measures, in this order (the PPO systems rotate their order from repeat to repeat, so that drift
of a noisy machine hits all alike):

1. env-only ceilings: random-action steps/s of 8 envs (pre-drawn actions, only ``step`` timed) of
   lit_rl's training env (ale-py's C++ ``AtariVectorEnv`` in ``data.env_groups`` groups), of the
   plain loop's gymnasium wrapper stack, of SB3's ``make_atari_env`` + ``VecFrameStack`` and, when
   installed, of envpool;
2. the network-only compute ceiling of lit_rl's policy: ``T`` forwards at batch ``N`` (collection)
   plus ``update_epochs × num_minibatches`` minibatch updates (forward, PPO loss, backward, gradient
   clipping, Adam) on random uint8 frames: the rate a loop with free envs and no overhead reaches;
3. PPO: ``lit_rl`` (the ``lit-rl fit`` CLI, Lightning and all), ``lit_rl_no_lightning`` (the same
   datamodule, collector, policy and optimiser driven by a hand-written loop: the same work minus
   Lightning), ``plain_pytorch`` (``tools/plain_ppo.py``: CleanRL's ``ppo_atari.py`` recipe) and
   ``sb3`` (Stable-Baselines3 PPO).

Each PPO system trains one warm-up rollout, then ``--rollouts`` timed ones (set-up excluded).
lit_rl runs with the logger, checkpoints and evaluation off and a budget it never reaches
(``max_epochs`` ends training). Ratios (vs SB3, vs the plain loop, % of ceiling, Lightning
overhead) are medians of per-repeat ratios; the machine should be otherwise idle (the load average
before and after is printed and stored).

Usage (from the repository root)::

    python tools/benchmark.py --repeats 3 --rollouts 4 --json bench.json
    python tools/benchmark.py --extractor lit_rl.models.extractors.small_cnn.SmallCNN --only lit_rl
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.metadata
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import lightning as L
import numpy as np
import torch

import lit_rl
from lit_rl.algos.gae import compute_gae
from lit_rl.algos.ppo_loss import ppo_loss
from lit_rl.cli import run
from lit_rl.envs.factory import check_env_id, game_name, is_atari, make_vector_env
from lit_rl.errors import ConfigError

sys.path.insert(0, str(Path(__file__).resolve().parent))
import plain_ppo  # tools/ is not a package

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
#: Process CPU time (all threads) per env step of the last run of lit_rl with and without Lightning.
CPU_MS_PER_STEP: dict[str, float] = {}


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
    """Steps/s of lit_rl's policy compute alone: collection forwards plus the PPO update, no env."""
    cli = build_cli(args, extra=["--trainer.max_epochs=1"], run_fit=False)
    policy, optimizer, module = cli.model.policy, cli.model.configure_optimizers(), cli.model
    gen = torch.Generator().manual_seed(SEED)
    obs = torch.randint(0, 256, (ROLLOUT, *policy.obs_shape), dtype=torch.uint8, generator=gen)
    actions = torch.randint(0, module.env_spec.num_actions, (ROLLOUT,), generator=gen)
    floats = torch.randn(3, ROLLOUT, generator=gen)  # old log-probs, advantages, returns
    size = ROLLOUT // NUM_MINIBATCHES

    def one_rollout() -> None:
        with torch.inference_mode(), autocast(args.precision):
            for t in range(NUM_STEPS):
                policy.act(obs[t * NUM_ENVS : (t + 1) * NUM_ENVS])
        for _ in range(UPDATE_EPOCHS):
            perm = torch.randperm(ROLLOUT, generator=gen)
            for start in range(0, ROLLOUT, size):
                mb = perm[start : start + size]
                with autocast(args.precision):
                    log_probs, entropy, values, _ = policy.evaluate(obs[mb], actions[mb])
                    old_log_probs, advantages, returns = floats[:, mb]
                    out = ppo_loss(
                        log_probs, old_log_probs - 1.0, advantages, values, returns, returns, entropy,
                        clip_coef=module.clip_coef, vf_coef=module.vf_coef, ent_coef=module.ent_coef,
                        clip_vloss=module.clip_vloss,
                    )  # fmt: skip
                optimizer.zero_grad(set_to_none=True)
                out.loss.backward()
                torch.nn.utils.clip_grad_norm_(policy.parameters(), module.max_grad_norm)
                optimizer.step()

    one_rollout()  # warm-up
    start = time.perf_counter()
    for _ in range(args.rollouts):
        one_rollout()
    return args.rollouts * ROLLOUT / (time.perf_counter() - start)


@contextlib.contextmanager
def autocast(precision: str) -> Iterator[None]:
    """What Lightning's ``bf16-mixed`` does around the forward pass on the CPU; nothing otherwise."""
    if precision.startswith("bf16") and precision != "bf16-true":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            yield
    else:
        yield


# -- PPO systems -------------------------------------------------------------------------------


class RolloutTimer(L.Callback):
    """Wall time and ``model.env_steps`` at each epoch (= rollout) start and at the end of training."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, float, int]] = []  # wall time, process CPU time, env steps

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.marks.append((time.perf_counter(), time.process_time(), int(pl_module.env_steps)))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.marks.append((time.perf_counter(), time.process_time(), int(pl_module.env_steps)))

    def steps_per_second(self, skip: int = 1) -> float:
        """Env steps/s from the start of epoch ``skip`` to the end of training."""
        (t0, _, s0), (t1, _, s1) = self.marks[skip], self.marks[-1]
        return (s1 - s0) / (t1 - t0)

    def cpu_ms_per_step(self, skip: int = 1) -> float:
        """Process CPU time (all threads) per env step over the same span."""
        (_, c0, s0), (_, c1, s1) = self.marks[skip], self.marks[-1]
        return 1000 * (c1 - c0) / (s1 - s0)


def build_cli(args: argparse.Namespace, extra: list[str], run_fit: bool = True):
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
        return run(["fit"] * run_fit + [f"--config={CONFIG}", *flags], subcommand=run_fit)


def lit_rl_ppo(args: argparse.Namespace) -> float:
    extra = [f"--trainer.max_epochs={1 + args.rollouts}", f"--trainer.callbacks+={__name__}.RolloutTimer"]
    cli = build_cli(args, extra)
    (timer,) = [c for c in cli.trainer.callbacks if isinstance(c, RolloutTimer)]
    if len(timer.marks) != args.rollouts + 2:
        raise RuntimeError(f"lit_rl ran {len(timer.marks) - 1} rollouts, expected {args.rollouts + 1}")
    CPU_MS_PER_STEP["lit_rl"] = timer.cpu_ms_per_step()
    return timer.steps_per_second()


def lit_rl_no_lightning(args: argparse.Namespace) -> float:
    """lit_rl's datamodule, collector, policy, loss and optimiser in a hand-written loop.

    The work of ``PPO.training_step`` without Lightning: the same minibatches, the same one host sync
    per minibatch (the finiteness check), gradient clipping and Adam; lr annealing is left out (a
    few float operations per update).
    """
    cli = build_cli(args, extra=["--trainer.max_epochs=1"], run_fit=False)
    module, dm = cli.model, cli.datamodule
    dm.setup("fit")
    policy, optimizer = module.policy, module.configure_optimizers()
    params = [p for group in optimizer.param_groups for p in group["params"]]

    def one_rollout() -> None:
        policy.eval()
        rollout, _ = dm.collector.collect(policy)
        policy.train()
        advantages, returns = compute_gae(
            rollout.rewards, rollout.values, rollout.last_value, rollout.terminated, rollout.truncated,
            rollout.final_values, gamma=module.gamma, gae_lambda=module.gae_lambda,
        )  # fmt: skip
        for mb in dm.minibatches(dataclasses.replace(rollout, advantages=advantages, returns=returns)):
            with autocast(args.precision):
                log_probs, entropy, values, _ = policy.evaluate(mb.obs, mb.actions)
                out = ppo_loss(
                    log_probs, mb.log_probs, mb.advantages, values, mb.values, mb.returns, entropy,
                    clip_coef=module.clip_coef, vf_coef=module.vf_coef, ent_coef=module.ent_coef,
                    clip_vloss=module.clip_vloss,
                )  # fmt: skip
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(params, module.max_grad_norm)
            stats = torch.stack([out.policy_loss, out.value_loss, out.entropy, norm]).detach()
            if not torch.isfinite(stats).all().item():
                raise RuntimeError("non-finite loss in the benchmark loop")
            optimizer.step()

    try:
        one_rollout()  # warm-up
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(args.rollouts):
            one_rollout()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        CPU_MS_PER_STEP["lit_rl_no_lightning"] = 1000 * cpu / (args.rollouts * ROLLOUT)
        return args.rollouts * ROLLOUT / elapsed
    finally:
        dm.teardown("fit")


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
    "lit_rl_no_lightning": lit_rl_no_lightning,
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
            if system in CPU_MS_PER_STEP:
                results.setdefault(f"cpu_ms_per_step_{system}", []).append(CPU_MS_PER_STEP.pop(system))
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
    if "lit_rl_no_lightning" in results:
        # Lightning's share of lit_rl's time per step: 1 - t(no Lightning) / t(lit_rl).
        per_repeat = [1 - a / b for a, b in zip(results["lit_rl"], results["lit_rl_no_lightning"], strict=True)]
        summary["lit_rl"]["lightning_overhead"] = statistics.median(per_repeat)
        summary["lit_rl"]["lightning_overhead_per_repeat"] = per_repeat
    cpu = [results.get(f"cpu_ms_per_step_{name}") for name in ("lit_rl", "lit_rl_no_lightning")]
    if all(cpu):
        # The same in CPU time of all threads, which a VM's stolen time and idle waits do not inflate.
        per_repeat = [1 - b / a for a, b in zip(*cpu, strict=True)]
        summary["lit_rl"]["lightning_cpu_overhead"] = statistics.median(per_repeat)
        summary["lit_rl"]["lightning_cpu_overhead_per_repeat"] = per_repeat
    return summary


def markdown(summary: dict, args: argparse.Namespace) -> str:
    net = args.extractor.rsplit(".", 1)[-1]
    names = ENV_SYSTEMS | {
        "network_only": f"network only: lit_rl {net} ({args.precision}), collection forwards + update",
        "lit_rl": f"PPO: lit_rl ({net}, {args.precision})",
        "lit_rl_no_lightning": f"PPO: lit_rl without Lightning ({net}, {args.precision})",
        "plain_pytorch": "PPO: plain PyTorch, CleanRL ppo_atari recipe (NatureCNN, fp32)",
        "sb3": "PPO: SB3 (CnnPolicy, fp32)",
    }
    lines = [
        "| system | steps/s (median) | min–max | vs SB3 | vs plain PyTorch | % of network ceiling |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, row in summary.items():
        if key not in names:  # CPU-time rows: in the JSON and the overhead line
            continue
        cells = [f"{row[k]:.2f}×" if k in row else "—" for k in ("vs_sb3", "vs_plain_pytorch")]
        ceiling = f"{100 * row['of_network_ceiling']:.0f} %" if "of_network_ceiling" in row else "—"
        lines.append(
            f"| {names[key]} | {row['median']:,.0f} | {row['min']:,.0f}–{row['max']:,.0f} | "
            f"{' | '.join(cells)} | {ceiling} |"
        )
    if "lightning_overhead" in summary.get("lit_rl", {}):
        per = ", ".join(f"{100 * x:+.1f} %" for x in summary["lit_rl"]["lightning_overhead_per_repeat"])
        lines.append(
            f"\nLightning overhead (1 − lit_rl steps/s ÷ the same work without Lightning): "
            f"{100 * summary['lit_rl']['lightning_overhead']:.1f} % (median; per repeat {per})"
        )
    if "lightning_cpu_overhead" in summary.get("lit_rl", {}):
        per = ", ".join(f"{100 * x:+.1f} %" for x in summary["lit_rl"]["lightning_cpu_overhead_per_repeat"])
        lines.append(
            f"In CPU time of all threads per step: {100 * summary['lit_rl']['lightning_cpu_overhead']:.1f} % "
            f"(median; per repeat {per})"
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
    # This script's own argv is not meant for LightningCLI, which receives its args explicitly.
    warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within Python.*")
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
