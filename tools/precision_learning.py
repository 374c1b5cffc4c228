"""Does mixed precision change what PPO learns? The same config and seeds in fp32 and in bf16-mixed.

Runs ``lit-rl fit --config <config>`` once per (precision, seed) in this process (the arguments of
:func:`lit_rl.sweep.fit_args`, in ``--out/<precision>/seed_<s>``), with the same budget and evaluation
period, and reads every run's ``evaluations.npz`` back: a Markdown table of the evaluation returns per
seed and precision, and a JSON file. A run that finished before (same ``--out``) is read back, not
trained again.

    python -m tools.precision_learning --config configs/ppo/cartpole_mlp.yaml --steps 100000 \
        --eval-every 25000 --seeds 0 1 2

Unknown arguments go to every lit-rl run (e.g. ``--data.env_id BreakoutNoFrameskip-v4``).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from lit_rl.analysis.curves import load_evaluations
from lit_rl.cli import run
from lit_rl.sweep import fit_args

PRECISIONS = ("32-true", "bf16-mixed")


def fit(config: Path, precision: str, seed: int, args: argparse.Namespace, extra: list[str]) -> dict:
    """One run; its evaluation steps and mean returns."""
    run_dir = args.out / precision / f"seed_{seed}"
    overrides = [
        f"--trainer.precision={precision}",
        f"--model.total_env_steps={args.steps}",
        f"--evaluation.every_n_env_steps={args.eval_every}",
        *extra,
    ]
    run(fit_args(config, run_dir, seed=seed, overrides=overrides))
    steps, returns = load_evaluations(run_dir)
    return {"steps": steps.tolist(), "returns": returns.tolist()}


def markdown(runs: dict[str, dict[int, dict]], seeds: list[int]) -> str:
    lines = [
        "| seed | " + " | ".join(f"{p} final | {p} mean over evaluations" for p in PRECISIONS) + " |",
        "|---:|" + "---:|---:|" * len(PRECISIONS),
    ]
    for seed in seeds:
        cells = []
        for p in PRECISIONS:
            returns = runs[p][seed]["returns"]
            cells += [f"{returns[-1]:.1f}", f"{statistics.fmean(returns):.1f}"]
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    means = []
    for p in PRECISIONS:
        means += [
            f"{statistics.fmean(runs[p][s]['returns'][-1] for s in seeds):.1f}",
            f"{statistics.fmean(statistics.fmean(runs[p][s]['returns']) for s in seeds):.1f}",
        ]
    lines.append("| mean | " + " | ".join(means) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=Path("configs/ppo/cartpole_mlp.yaml"))
    parser.add_argument("--steps", type=int, default=100_000, help="env steps per run")
    parser.add_argument("--eval-every", type=int, default=25_000, help="evaluation period in env steps")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("bench_results/precision_learning"))
    args, extra = parser.parse_known_args(argv)
    if min(args.steps, args.eval_every) < 1:
        parser.error("--steps and --eval-every must be positive")
    if not args.config.is_file():
        parser.error(f"--config {args.config} is not a file")
    runs = {p: {s: fit(args.config, p, s, args, extra) for s in args.seeds} for p in PRECISIONS}
    table = markdown(runs, args.seeds)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "precision_learning.md").write_text(table + "\n")
    (args.out / "precision_learning.json").write_text(
        json.dumps({"args": sys_args(args, extra), "runs": runs}, indent=2)
    )


def sys_args(args: argparse.Namespace, extra: list[str]) -> dict:
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()} | {"lit_rl_args": extra}


if __name__ == "__main__":
    main()
