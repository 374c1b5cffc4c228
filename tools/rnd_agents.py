"""PPO + RND trunks side by side: training throughput of the ViT token modes vs the CNN, and the
intrinsic rewards and rooms of a short Montezuma's Revenge run.

    # steps/s of ViT-explore (separate, joint), ViT-cls and CNN on Montezuma, interleaved repeats;
    # --size reference: the explorative-attention design's ViT (D 256, depth 3); --size small: the quick
    # config's (D 64, depth 2)
    python -m tools.rnd_agents throughput --size small --rollouts 3 --repeats 3

    # a short run of configs/rnd/quick_montezuma_vit.yaml, then its curves (PNG needs `analysis`)
    python -m tools.rnd_agents montezuma --steps 200000
    # ... or the curves of a run that already exists
    python -m tools.rnd_agents montezuma --log-dir runs/quick_montezuma_vit/version_0

Results go to ``--out`` as ``<mode>.md`` (Markdown) and ``<mode>.json``; ``montezuma`` also writes
``montezuma.csv`` and ``montezuma.png``. Unknown arguments go to every lit-rl run (its arguments are
:func:`lit_rl.sweep.fit_args`'). A ``montezuma`` run that finished before (same ``--out``) is read
back, not trained again; ``throughput`` runs are scratch, replaced by every measurement.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path

from lit_rl.analysis.curves import tensorboard_scalars
from lit_rl.analysis.plots import pyplot_or_none
from lit_rl.cli import run
from lit_rl.sweep import fit_args

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "rnd"
TRUNKS = {
    "ViT-explore (separate)": ("montezuma_vit_explore.yaml", []),
    "ViT-explore (joint)": ("montezuma_vit_explore.yaml", ["--model.extractor.token_mode=joint"]),
    "ViT-cls": ("montezuma_vit_cls.yaml", []),
    "CNN": ("montezuma_cnn.yaml", []),
}
SMALL_VIT = [
    "--model.extractor.patch_size=12",
    "--model.extractor.embed_dim=64",
    "--model.extractor.depth=2",
    "--model.extractor.num_heads=4",
    "--model.extractor.mlp_dim=128",
]
NUM_ENVS, NUM_STEPS = 8, 128
CURVES = (
    "rnd/intrinsic_reward",
    "rnd/intrinsic_reward_raw",
    "loss/rnd",
    "rollout/episode_rooms",
    "rollout/rooms_total",
    "rollout/episode_return",
)


def fit(config: str, run_dir: Path, args: argparse.Namespace, overrides: list[str]) -> Path:
    """One run of ``configs/rnd/<config>`` in ``run_dir`` (resumed if it is there already); returns ``run_dir``."""
    overrides = ["--checkpoint.every_n_env_steps=0", *overrides, *args.extra]
    run(fit_args(CONFIGS / config, run_dir, seed=args.seed, overrides=overrides))
    return run_dir


def throughput(args: argparse.Namespace) -> dict:
    """Median steps/s per trunk (the first ``--skip`` rollouts excluded), trunks interleaved within each repeat."""
    common = [
        f"--data.num_envs={NUM_ENVS}",
        f"--data.num_steps={NUM_STEPS}",
        "--data.vectorization=sync",
        "--model.intrinsic.warmup_rollouts=1",
        f"--model.total_env_steps={args.rollouts * NUM_ENVS * NUM_STEPS}",
        "--evaluation.every_n_env_steps=0",
    ]
    trunks = {t: TRUNKS[t] for t in args.trunks}
    sps: dict[str, list[float]] = {t: [] for t in trunks}
    for repeat in range(args.repeats):
        for trunk, (config, extra) in trunks.items():
            small = SMALL_VIT if args.size == "small" and trunk != "CNN" else []
            run_dir = args.out / "throughput" / f"r{repeat}" / trunk.replace(" ", "_").replace("(", "").replace(")", "")
            shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run, never a resumed one
            log_dir = fit(config, run_dir, args, [*common, *extra, *small])
            values = [v for _, v in tensorboard_scalars(log_dir, "perf/sps")][args.skip :]
            sps[trunk].append(statistics.median(values))
            print(f"repeat {repeat} {trunk}: {sps[trunk][-1]:.1f} steps/s", flush=True)
    base = sps.get("CNN")
    ratios = {t: statistics.median(c / x for c, x in zip(base, sps[t], strict=True)) if base else None for t in trunks}
    rows = [
        f"| {t} | {statistics.median(sps[t]):.2f} | {'–' if ratios[t] is None else f'{ratios[t]:.2f}'} | "
        + ", ".join(f"{x:.2f}" for x in sps[t])
        + " |"
        for t in trunks
    ]
    header = "| trunk | steps/s (median) | time per step vs CNN (median of per-repeat ratios) | steps/s per repeat |"
    table = "\n".join([header, "| --- | ---: | ---: | --- |", *rows])
    return {"table": table, "size": args.size, "sps": sps, "time_ratio_vs_cnn": ratios}


def montezuma(args: argparse.Namespace) -> dict:
    """Intrinsic rewards, RND loss and rooms over env steps of one quick Montezuma run."""
    log_dir = args.log_dir
    if log_dir is None:
        steps = [f"--model.total_env_steps={args.steps}"]
        log_dir = fit("quick_montezuma_vit.yaml", args.out / "montezuma" / f"seed_{args.seed}", args, steps)
    curves = {tag: tensorboard_scalars(log_dir, tag) for tag in CURVES}
    with open(args.out / "montezuma.csv", "w") as f:
        f.write("tag,env_steps,value\n")
        for tag, points in curves.items():
            f.writelines(f"{tag},{s},{v}\n" for s, v in points)
    steps = [s for s, _ in curves["rnd/intrinsic_reward"]]
    marks = sorted({steps[min(len(steps) - 1, round(q * (len(steps) - 1)))] for q in (0, 0.25, 0.5, 0.75, 1)})
    rows = []
    for mark in marks:
        cells = []
        for tag in CURVES:
            before = [v for s, v in curves[tag] if s <= mark]
            cells.append(f"{before[-1]:.4g}" if before else "–")
        rows.append(f"| {mark:,} | " + " | ".join(cells) + " |")
    header = "| env steps | " + " | ".join(CURVES) + " |"
    table = "\n".join([header, "|" + " ---: |" * (len(CURVES) + 1), *rows])
    plot(curves, args.out / "montezuma.png")
    return {"table": table, "log_dir": str(log_dir), "curves": curves}


def plot(curves: dict[str, list[tuple[int, float]]], path: Path) -> None:
    plt = pyplot_or_none()
    if plt is None:
        return
    panels = (
        ("rnd/intrinsic_reward", "rnd/intrinsic_reward_raw"),
        ("loss/rnd",),
        ("rollout/rooms_total", "rollout/episode_rooms"),
    )
    fig, axes = plt.subplots(1, len(panels), figsize=(13, 3.6))
    for ax, tags in zip(axes, panels, strict=True):
        lines = []
        for i, tag in enumerate(tags):
            points = curves[tag]
            if not points:
                continue
            raw = tag.endswith("_raw")  # another scale: its own axis
            target = ax.twinx() if raw else ax
            lines += target.plot([s for s, _ in points], [v for _, v in points], label=tag, color=f"C{i}")
            target.set_ylabel(tag)
        ax.set_xlabel("env steps")
        ax.legend(handles=lines, loc="upper right", fontsize=8)
    fig.suptitle("PPO + RND, ViT-explore (quick config), Montezuma's Revenge")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["throughput", "montezuma"])
    parser.add_argument("--seed", type=int, default=1, help="seed of every run (networks and envs)")
    parser.add_argument("--out", type=Path, default=Path("bench_results/rnd_agents"), help="output folder")
    parser.add_argument("--size", choices=["small", "reference"], default="small", help="throughput: ViT size")
    parser.add_argument("--rollouts", type=int, default=3, help=f"throughput: rollouts of {NUM_ENVS}x{NUM_STEPS} steps")
    parser.add_argument("--repeats", type=int, default=3, help="throughput: interleaved repeats")
    parser.add_argument("--skip", type=int, default=1, help="throughput: first rollouts of each run not timed")
    parser.add_argument("--trunks", nargs="+", choices=list(TRUNKS), default=list(TRUNKS), help="throughput: trunks")
    parser.add_argument("--steps", type=int, default=200_000, help="montezuma: env steps of the run")
    parser.add_argument("--log-dir", type=Path, default=None, help="montezuma: read this run instead of training")
    parser.epilog = "Further arguments are passed to every lit-rl run, e.g. --model.intrinsic.update_proportion=0.5."
    args, extra = parser.parse_known_args(argv)
    args.extra = [a for a in extra if a != "--"]
    args.out.mkdir(parents=True, exist_ok=True)
    result = throughput(args) if args.mode == "throughput" else montezuma(args)
    (args.out / f"{args.mode}.md").write_text(result["table"] + "\n")
    (args.out / f"{args.mode}.json").write_text(json.dumps(result, indent=1))
    print(result["table"])


if __name__ == "__main__":
    main()
