"""What a memory agent has learned, checkpoint by checkpoint: why some StatelessCartPole runs fail.

For each checkpoint of a run (``<run>/checkpoints/*_steps.ckpt``) it plays ``--episodes`` episodes of
``lit_rl/StatelessCartPole-v1`` with sampled actions and reports:

- ``return``: the mean episode return;
- ``obs std``: the standard deviation of each observed coordinate ``[x, θ]`` as the network sees it
  (after ``model.normalize_obs`` where it is on);
- ``velocity R²``: what the memory holds: the fraction of the variance of the hidden velocities
  ``[ẋ, θ̇]`` (read from the simulator) that a ridge regression of the extractor's features explains
  (fitted on the even episodes, scored on the odd ones);
- ``policy entropy``;
- ``off track`` / ``pole fell``: the fraction of episodes that ended with the cart beyond ±2.4 and with
  the pole beyond ±12° (the rest reached the time limit): a policy that balances the pole but cannot
  tell which way the cart moves drifts off the track;
- GTrXL only: ``gate z``, the mean update fraction of the GRU gates (0: the unit passes its input on
  unchanged), and ``attention entropy``, the mean entropy of the attention weights in nats
  (``log(M + 1)`` is uniform over the memory and the current step).

    python -m tools.memory_diagnostics runs/memory_comparison/runs/stateless_gtrxl/seed_4
"""

from __future__ import annotations

import argparse
import contextlib
import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import lit_rl  # noqa: F401  (registers lit_rl/StatelessCartPole-v1)
from lit_rl.algos.ppo import PPO
from lit_rl.models.actor_critic import categorical_log_prob
from lit_rl.models.extractors import gtrxl


def checkpoints(run: Path) -> list[Path]:
    """The periodic checkpoints of a run directory, by env step."""
    found = list((run / "checkpoints").glob("*_steps.ckpt"))
    return sorted(found, key=lambda p: int(re.search(r"_(\d+)_steps", p.name).group(1)))


@contextlib.contextmanager
def record_gtrxl(policy: torch.nn.Module):
    """Collect GRU gate update fractions and attention-weight entropies while the block runs."""
    gates, entropies, hooks = [], [], []

    def gate_hook(module, inputs, output):
        x, y = inputs
        z = torch.sigmoid(module.w(y).chunk(3, -1)[1] + module.u(x).chunk(2, -1)[1] - module.bias)
        gates.append(float(z.mean()))

    for module in policy.modules():
        if isinstance(module, gtrxl.GRUGate):
            hooks.append(module.register_forward_hook(gate_hook))
    softmax = torch.softmax

    def recording_softmax(x, dim=None, **kwargs):
        p = softmax(x, dim=dim, **kwargs)
        entropies.append(float(-(p * torch.log(p.clamp_min(1e-30))).sum(dim).mean()))
        return p

    gtrxl.torch.softmax = recording_softmax  # torch.softmax as gtrxl.py calls it
    try:
        yield gates, entropies
    finally:
        gtrxl.torch.softmax = softmax
        for hook in hooks:
            hook.remove()


def ridge_r2(features: np.ndarray, targets: np.ndarray, train: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """Per-target R² on the held-out steps (``~train``) of a ridge regression on standardised features."""
    x = (features - features[train].mean(0)) / (features[train].std(0) + 1e-8)
    x = np.hstack([x, np.ones((len(x), 1))])
    a, b = x[train], targets[train]
    w = np.linalg.solve(a.T @ a + alpha * len(a) * np.eye(x.shape[1]) * 1e-3, a.T @ b)
    residual = targets[~train] - x[~train] @ w
    return 1.0 - residual.var(0) / targets[~train].var(0)


@torch.no_grad()
def episode_end(env: gym.Env) -> str:
    """Why a finished CartPole episode ended: ``"off track"`` (the cart beyond ±x_threshold, whatever the
    pole did), ``"pole fell"`` (beyond ±θ_threshold) or ``"time limit"``."""
    cartpole = env.unwrapped
    x, _, angle, _ = cartpole.state
    if abs(x) > cartpole.x_threshold:
        return "off track"
    return "pole fell" if abs(angle) > cartpole.theta_threshold_radians else "time limit"


def diagnose(path: Path, episodes: int, seed: int) -> dict[str, float]:
    module = PPO.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    policy = module.policy.eval()
    env = gym.make("lit_rl/StatelessCartPole-v1")
    torch.manual_seed(seed)
    feats, hidden, seen, returns, entropies, train, ends = [], [], [], [], [], [], []
    is_gtrxl = isinstance(policy.extractor, gtrxl.GTrXL)
    with record_gtrxl(policy) if is_gtrxl else contextlib.nullcontext(([], [])) as (gates, attention):
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed + episode)
            memory, start, total, done = policy.initial_memory(1), torch.ones(1, dtype=torch.bool), 0.0, False
            while not done:
                x = policy.preprocess(torch.as_tensor(obs)[None, None], lead=2)
                actor_memory = memory if policy.critic_extractor is None else memory[:, 0]
                features, _ = policy.extractor(x, actor_memory, start[None])
                feats.append(features[0, 0].numpy())
                seen.append(x[0, 0].numpy())
                hidden.append(np.asarray(env.unwrapped.state)[[1, 3]])
                train.append(episode % 2 == 0)  # fit on even episodes, score on odd ones
                out = policy.act(torch.as_tensor(obs)[None], memory=memory, episode_start=start)
                logits = policy(torch.as_tensor(obs)[None], memory=memory, episode_start=start).logits
                entropies.append(float(categorical_log_prob(logits, out.actions)[1]))
                obs, reward, terminated, truncated, _ = env.step(int(out.actions))
                memory, start, total, done = (
                    out.memory,
                    torch.zeros(1, dtype=torch.bool),
                    total + reward,
                    terminated or truncated,
                )
            returns.append(total)
            ends.append(episode_end(env))
    r2 = ridge_r2(np.asarray(feats), np.asarray(hidden), np.asarray(train))
    seen_std = np.asarray(seen).std(0)
    row = {
        "return": float(np.mean(returns)),
        "obs std x": float(seen_std[0]),
        "obs std θ": float(seen_std[1]),
        "R² ẋ": float(r2[0]),
        "R² θ̇": float(r2[1]),
        "policy entropy": float(np.mean(entropies)),
        "off track": float(np.mean([e == "off track" for e in ends])),
        "pole fell": float(np.mean([e == "pole fell" for e in ends])),
    }
    if is_gtrxl:
        row["gate z"] = float(np.mean(gates))
        row["attention entropy"] = float(np.mean(attention))
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories with checkpoints/")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per checkpoint")
    parser.add_argument("--seed", type=int, default=12345, help="episode seeds start here")
    args = parser.parse_args(argv)
    header = None
    for run in args.runs:
        for path in checkpoints(run):
            row = diagnose(path, args.episodes, args.seed)
            step = int(re.search(r"_(\d+)_steps", path.name).group(1))
            if header is None:
                header = list(row)
                print("| run | env steps | " + " | ".join(header) + " |")
                print("| --- | ---: |" + " ---: |" * len(header))
            print(
                f"| {run.name if run.name.startswith('seed') else run} | {step:,} | "
                + " | ".join(f"{row.get(k, float('nan')):.3g}" for k in header)
                + " |",
                flush=True,
            )


if __name__ == "__main__":
    main()
