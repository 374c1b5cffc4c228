"""``lit-rl-explain``: observation capture, Grad-CAM, the study's maps and attention weights as image grids.

    # 10 observation stacks of Pong from a random policy, 200-1000 steps apart
    lit-rl-explain capture --env-id PongNoFrameskip-v4 --count 10 --out obs/
    # grids (rows: observations, columns: agents) for checkpoints of several agents
    lit-rl-explain maps --checkpoints NA.ckpt CWCA.ckpt --labels NA CWCA --obs obs/Pong_obs_*.npy --out figs/

``maps`` writes ``gradcam``, ``F``, ``Y``, ``F_hat``, ``c2`` (small-CNN agents) and ``attention``
(softmax weights: the attention each pixel receives in an axial module, or each patch receives from the
first token in a ViT's last block) as PNG and PDF, and ``logit_std.csv`` (the study's exploration proxy).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lit_rl.interpret.gradcam import grad_cam, logit_std, normalize_maps, study_maps
from lit_rl.interpret.hooks import record_attention
from lit_rl.models.actor_critic import ActorCritic
from lit_rl.models.extractors.axial_attention import SWA


def capture_observations(env_id: str, count: int, seed: int = 0, gaps: tuple[int, int] = (200, 1000)) -> np.ndarray:
    """``count`` observation stacks ``[count, 1, C, H, W]`` (uint8) from a uniformly random policy, taken
    a random number of steps in ``gaps`` apart (the study's protocol; README, "Analysis and interpretability")."""
    from lit_rl.envs.factory import make_vector_env

    env = make_vector_env(env_id, num_envs=1, backend="gymnasium")
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    taken = []
    try:
        while len(taken) < count:
            for _ in range(int(rng.integers(gaps[0], gaps[1] + 1))):
                obs, *_ = env.step(env.action_space.sample())
            taken.append(np.asarray(obs).copy())
    finally:
        env.close()
    return np.stack(taken)


def attention_received(policy: ActorCritic, obs: Tensor) -> Tensor:
    """Softmax attention each location receives, averaged over queries and heads: ``[B, H, W]`` in [0, 1].

    Axial modules: per feature-map pixel (SWA: per row). ViT: per patch, from the first token of the
    last block. Raises ``ValueError`` for agents without attention.
    """
    with torch.no_grad(), record_attention(policy) as recorded:
        policy(obs)
    if not recorded:
        raise ValueError("this agent has no attention module")
    name = sorted(recorded)[-1]
    last = recorded[name][0]
    size = tuple(obs.shape[-2:])
    if isinstance(last, Tensor):  # a ViT block: [S, B, heads, K, K]
        extractor = policy.extractor
        patches = last[0, :, :, 0, extractor.num_prefix_tokens :].mean(1)  # first token's query, mean of heads
        return normalize_maps(patches.reshape(-1, *extractor.grid_size), size)
    received = []
    for axis, w in last.weights.items():
        per_key = w.mean(-2)  # mean over queries: [..., keys]
        if isinstance(policy.get_submodule(name), SWA):  # [B, C, G, H]: one value per row
            rows = per_key.mean((1, 2))
            received.append(rows[:, :, None].expand(-1, -1, last.output.shape[-1]))
        elif axis == "height":  # CWRA / CWRCA [B, G, W, H]
            received.append(per_key.mean(1).transpose(1, 2))
        else:  # width: CWCA / CWRCA [B, G, H, W]
            received.append(per_key.mean(1))
    return normalize_maps(sum(received) / len(received), size)


def _grid(images: dict[str, list[np.ndarray]], frames: list[np.ndarray], title: str, stem: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(images)
    fig, axes = plt.subplots(len(frames), len(labels), figsize=(2 * len(labels), 2 * len(frames)), squeeze=False)
    for row, frame in enumerate(frames):
        for col, label in enumerate(labels):
            ax = axes[row, col]
            ax.imshow(frame, cmap="gray")
            ax.imshow(images[label][row], cmap="jet", alpha=0.5, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(label)
    fig.suptitle(title)
    fig.tight_layout()
    for suffix in ("png", "pdf"):
        fig.savefig(stem.with_suffix(f".{suffix}"), dpi=120)
    plt.close(fig)


def _dropped(label: str, kinds: str, reason: Exception) -> None:
    warnings.warn(f"lit-rl-explain: no {kinds} column for {label}: {reason}", UserWarning, stacklevel=3)


def explain(policies: dict[str, ActorCritic], obs: Tensor, out: Path, layer: str | None = None) -> dict[str, float]:
    """Write every grid the agents support into ``out``; returns each agent's logit std.

    An agent that cannot give a kind of map (Grad-CAM of a ViT without ``layer``, the study's maps of
    an agent that is not a small CNN, attention of an agent without attention) has no column in that
    grid, and a ``UserWarning`` names the agent, the maps and the reason.
    """
    out.mkdir(parents=True, exist_ok=True)
    frames = [o[-1].numpy() for o in obs]  # the newest frame of each stack
    kinds: dict[str, dict[str, list[np.ndarray]]] = {}
    for label, policy in policies.items():
        try:
            kinds.setdefault("gradcam", {})[label] = list(grad_cam(policy, obs, layer).numpy())
        except ValueError as err:  # no convolution to explain (ViT) and no --layer given; a memory policy
            _dropped(label, "gradcam", err)
        try:
            for name, maps in study_maps(policy, obs).items():
                kinds.setdefault(name, {})[label] = list(maps.numpy())
        except ValueError as err:  # not a small-CNN agent
            _dropped(label, "F, Y, F_hat and c2", err)
        try:
            kinds.setdefault("attention", {})[label] = list(attention_received(policy, obs).numpy())
        except ValueError as err:  # no attention module
            _dropped(label, "attention", err)
    for kind, images in kinds.items():
        if images:
            _grid(images, frames, kind, out / kind)
    stds = {label: logit_std(policy, obs) for label, policy in policies.items()}
    (out / "logit_std.csv").write_text("agent,logit_std\n" + "".join(f"{a},{s}\n" for a, s in stds.items()))
    return stds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="lit-rl-explain", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cap = sub.add_parser("capture", help="save observation stacks of a random policy as <Game>_obs_<i>.npy")
    cap.add_argument("--env-id", required=True, help="gymnasium Atari id, e.g. PongNoFrameskip-v4")
    cap.add_argument("--count", type=int, default=10, help="number of observation stacks")
    cap.add_argument("--seed", type=int, default=0, help="seed of the env, the policy and the gaps")
    cap.add_argument("--min-gap", type=int, default=200, help="fewest random steps between two captures")
    cap.add_argument("--max-gap", type=int, default=1000, help="most random steps between two captures")
    cap.add_argument("--out", type=Path, required=True, help="folder for the .npy files")
    maps = sub.add_parser("maps", help="Grad-CAM, feature and attention grids for checkpoints")
    maps.add_argument("--checkpoints", nargs="+", type=Path, required=True, help="PPO checkpoints (.ckpt)")
    maps.add_argument("--labels", nargs="+", help="column titles (default: the checkpoint file names)")
    maps.add_argument("--obs", nargs="+", type=Path, required=True, help=".npy stacks [1, C, H, W] or [C, H, W]")
    maps.add_argument("--layer", default=None, help="Grad-CAM layer, a module name (default: the first conv)")
    maps.add_argument("--out", type=Path, required=True, help="folder for the figures and logit_std.csv")
    args = parser.parse_args(argv)
    if args.command == "capture":
        from lit_rl.envs.factory import game_name

        stacks = capture_observations(args.env_id, args.count, args.seed, (args.min_gap, args.max_gap))
        args.out.mkdir(parents=True, exist_ok=True)
        for i, stack in enumerate(stacks, start=1):
            np.save(args.out / f"{game_name(args.env_id)}_obs_{i}.npy", stack)
        print(f"saved {len(stacks)} observation stacks to {args.out}")
        return
    from lit_rl.algos.ppo import PPO

    labels = args.labels or [p.stem for p in args.checkpoints]
    if len(labels) != len(args.checkpoints):
        parser.error(f"--labels has {len(labels)} names for {len(args.checkpoints)} checkpoints")
    policies = {
        label: PPO.load_from_checkpoint(path, map_location="cpu", weights_only=True).policy.eval()
        for label, path in zip(labels, args.checkpoints, strict=True)
    }
    obs = torch.from_numpy(np.concatenate([np.load(p).reshape(1, *np.load(p).shape[-3:]) for p in args.obs]))
    stds = explain(policies, obs, args.out, args.layer)
    print("logit std per agent: " + ", ".join(f"{a} {s:.4f}" for a, s in stds.items()))


if __name__ == "__main__":
    main()
