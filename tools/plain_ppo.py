"""PPO on an Atari game as one plain PyTorch training loop: the benchmark's "plain PyTorch" peer.

This follows the recipe of CleanRL's ``ppo_atari.py`` (vwxyzjn/cleanrl) step for step, rewritten
here: 8 ``SyncVectorEnv`` envs with the DeepMind wrapper stack (RecordEpisodeStatistics,
NoopReset(30), MaxAndSkip(4), EpisodicLife, FireReset when the game has FIRE, ClipReward,
ResizeObservation(84, 84), GrayscaleObservation, FrameStackObservation(4)); the Nature CNN with
orthogonal init; 128 steps per env and rollout; GAE (γ 0.99, λ 0.95); 4 epochs × 4 minibatches of
256 with per-minibatch advantage normalisation, clip 0.1, clipped value loss, entropy 0.01, value
0.5, gradient norm 0.5; Adam (lr 2.5e-4, eps 1e-5) annealed linearly over the planned updates.

Per-step costs of the recipe that are kept on purpose (they are what a plain loop pays):

- observations are stored as float32 (``obs`` is ``[128, 8, 4, 84, 84]`` float32, ~116 MB), not uint8;
- NCHW layout, ``x / 255.0`` inside every forward;
- new tensors every env step: ``torch.Tensor(next_obs)``, ``torch.tensor(reward)``,
  ``torch.Tensor(next_done)``, and ``action.cpu().numpy()`` for the env;
- a Python-level GAE loop over the 128 steps;
- ``b_actions.long()`` of the whole batch and numpy-index gathers for every minibatch;
- the ``.item()`` host sync of the clip fraction in every minibatch, the approx-KL computations, and
  at the end of each update the ``.item()`` of the last minibatch's losses and the explained variance
  (CleanRL computes these for TensorBoard; here they are computed and returned by :func:`train`).

Deviations from CleanRL's ``ppo_atari.py``:

- gymnasium 1.x names: ``GrayscaleObservation`` / ``FrameStackObservation`` instead of
  ``GrayScaleObservation`` / ``FrameStack``; observations come out as ``(4, 84, 84)`` as in CleanRL.
- No TensorBoard / wandb / video, no per-episode return prints and no per-update SPS print; the
  per-update statistics are returned instead of written.
- ``target_kl`` is CleanRL's default ``None``, so its early-stop check (a no-op then) is left out.
- Timing: 1 warm-up rollout + ``rollouts`` timed ones; the LR anneals over these ``1 + rollouts``
  updates (CleanRL: over ``total_timesteps // batch_size``). On CUDA the clock stops after a
  ``torch.cuda.synchronize()``.
- The NEXT_STEP autoreset of gymnasium 1.x vector envs is handled as CleanRL's loop does, i.e. not
  at all: the step after an episode ends (whose action the env ignores and which returns the reset
  observation with reward 0) is stored as an ordinary transition. This is CleanRL's simplification;
  it keeps the per-step work identical.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import ale_py
import gymnasium as gym
import numpy as np
import torch
from torch import nn, optim
from torch.distributions.categorical import Categorical

LEARNING_RATE = 2.5e-4
GAMMA = 0.99
GAE_LAMBDA = 0.95
CLIP_COEF = 0.1
ENT_COEF = 0.01
VF_COEF = 0.5
MAX_GRAD_NORM = 0.5


def _sb3_atari_wrappers() -> tuple[type, ...]:
    """SB3's Atari wrappers, as CleanRL uses them; imported lazily (a dev extra here)."""
    try:
        from stable_baselines3.common.atari_wrappers import (
            ClipRewardEnv,
            EpisodicLifeEnv,
            FireResetEnv,
            MaxAndSkipEnv,
            NoopResetEnv,
        )
    except ImportError:
        raise SystemExit("plain_ppo: error: stable-baselines3 is not installed; run `pip install -e .[dev]`") from None
    return NoopResetEnv, MaxAndSkipEnv, EpisodicLifeEnv, FireResetEnv, ClipRewardEnv


def make_env(env_id: str) -> Callable[[], gym.Env]:
    """A thunk building one Atari env with CleanRL's wrapper stack."""
    noop_reset, max_and_skip, episodic_life, fire_reset, clip_reward = _sb3_atari_wrappers()

    def thunk() -> gym.Env:
        env = gym.make(env_id)
        env = gym.wrappers.RecordEpisodeStatistics(env)
        env = noop_reset(env, noop_max=30)
        env = max_and_skip(env, skip=4)
        env = episodic_life(env)
        if "FIRE" in env.unwrapped.get_action_meanings():
            env = fire_reset(env)
        env = clip_reward(env)
        env = gym.wrappers.ResizeObservation(env, (84, 84))
        env = gym.wrappers.GrayscaleObservation(env)
        return gym.wrappers.FrameStackObservation(env, 4)

    return thunk


def make_envs(env_id: str, num_envs: int) -> gym.vector.SyncVectorEnv:
    """``num_envs`` envs in a ``SyncVectorEnv`` with gymnasium's default (NEXT_STEP) autoreset."""
    gym.register_envs(ale_py)
    envs = gym.vector.SyncVectorEnv([make_env(env_id) for _ in range(num_envs)])
    if not isinstance(envs.single_action_space, gym.spaces.Discrete):
        raise ValueError("plain_ppo: only discrete action spaces are supported")
    return envs


def layer_init(layer: nn.Module, std: float = np.sqrt(2), bias_const: float = 0.0) -> nn.Module:
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


class Agent(nn.Module):
    """Nature CNN trunk (NCHW) with a categorical actor head and a value head."""

    def __init__(self, num_actions: int) -> None:
        super().__init__()
        self.network = nn.Sequential(
            layer_init(nn.Conv2d(4, 32, 8, stride=4)),
            nn.ReLU(),
            layer_init(nn.Conv2d(32, 64, 4, stride=2)),
            nn.ReLU(),
            layer_init(nn.Conv2d(64, 64, 3, stride=1)),
            nn.ReLU(),
            nn.Flatten(),
            layer_init(nn.Linear(64 * 7 * 7, 512)),
            nn.ReLU(),
        )
        self.actor = layer_init(nn.Linear(512, num_actions), std=0.01)
        self.critic = layer_init(nn.Linear(512, 1), std=1)

    def get_value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(self.network(x / 255.0))

    def get_action_and_value(
        self, x: torch.Tensor, action: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        hidden = self.network(x / 255.0)
        probs = Categorical(logits=self.actor(hidden))
        if action is None:
            action = probs.sample()
        return action, probs.log_prob(action), probs.entropy(), self.critic(hidden)


@dataclass
class Storage:
    """The rollout buffers, allocated as CleanRL does (float32 everywhere, observations included)."""

    obs: torch.Tensor
    actions: torch.Tensor
    logprobs: torch.Tensor
    rewards: torch.Tensor
    dones: torch.Tensor
    values: torch.Tensor

    @classmethod
    def allocate(cls, envs: gym.vector.SyncVectorEnv, num_steps: int, device: torch.device) -> Storage:
        shape = (num_steps, envs.num_envs)
        return cls(
            obs=torch.zeros(shape + envs.single_observation_space.shape).to(device),
            actions=torch.zeros(shape + envs.single_action_space.shape).to(device),
            logprobs=torch.zeros(shape).to(device),
            rewards=torch.zeros(shape).to(device),
            dones=torch.zeros(shape).to(device),
            values=torch.zeros(shape).to(device),
        )


def collect_rollout(
    agent: Agent,
    envs: gym.vector.SyncVectorEnv,
    buf: Storage,
    next_obs: torch.Tensor,
    next_done: torch.Tensor,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fill ``buf`` with one rollout; returns the observation and done flags after its last step."""
    for step in range(buf.obs.shape[0]):
        buf.obs[step] = next_obs
        buf.dones[step] = next_done
        with torch.no_grad():
            action, logprob, _, value = agent.get_action_and_value(next_obs)
            buf.values[step] = value.flatten()
        buf.actions[step] = action
        buf.logprobs[step] = logprob
        # NEXT_STEP autoreset is not special-cased (CleanRL's simplification, see the module docstring).
        obs_np, reward, terminations, truncations, _ = envs.step(action.cpu().numpy())
        done_np = np.logical_or(terminations, truncations)
        buf.rewards[step] = torch.tensor(reward).to(device).view(-1)
        next_obs, next_done = torch.Tensor(obs_np).to(device), torch.Tensor(done_np).to(device)
    return next_obs, next_done


def compute_gae(
    agent: Agent, buf: Storage, next_obs: torch.Tensor, next_done: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns by the backward GAE recursion, bootstrapping from ``next_obs``."""
    num_steps = buf.rewards.shape[0]
    with torch.no_grad():
        next_value = agent.get_value(next_obs).reshape(1, -1)
        advantages = torch.zeros_like(buf.rewards)
        lastgaelam = 0
        for t in reversed(range(num_steps)):
            if t == num_steps - 1:
                nextnonterminal = 1.0 - next_done
                nextvalues = next_value
            else:
                nextnonterminal = 1.0 - buf.dones[t + 1]
                nextvalues = buf.values[t + 1]
            delta = buf.rewards[t] + GAMMA * nextvalues * nextnonterminal - buf.values[t]
            advantages[t] = lastgaelam = delta + GAMMA * GAE_LAMBDA * nextnonterminal * lastgaelam
        returns = advantages + buf.values
    return advantages, returns


def minibatch_loss(
    agent: Agent, batch: dict[str, torch.Tensor], mb_inds: np.ndarray, clipfracs: list[float]
) -> dict[str, torch.Tensor]:
    """CleanRL's PPO loss on one minibatch; appends its clip fraction (a host sync) to ``clipfracs``."""
    _, newlogprob, entropy, newvalue = agent.get_action_and_value(
        batch["obs"][mb_inds], batch["actions"].long()[mb_inds]
    )
    logratio = newlogprob - batch["logprobs"][mb_inds]
    ratio = logratio.exp()
    with torch.no_grad():
        old_approx_kl = (-logratio).mean()
        approx_kl = ((ratio - 1) - logratio).mean()
        clipfracs += [((ratio - 1.0).abs() > CLIP_COEF).float().mean().item()]

    mb_advantages = batch["advantages"][mb_inds]
    mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)
    pg_loss1 = -mb_advantages * ratio
    pg_loss2 = -mb_advantages * torch.clamp(ratio, 1 - CLIP_COEF, 1 + CLIP_COEF)
    pg_loss = torch.max(pg_loss1, pg_loss2).mean()

    newvalue = newvalue.view(-1)
    mb_returns, mb_values = batch["returns"][mb_inds], batch["values"][mb_inds]
    v_loss_unclipped = (newvalue - mb_returns) ** 2
    v_clipped = mb_values + torch.clamp(newvalue - mb_values, -CLIP_COEF, CLIP_COEF)
    v_loss_clipped = (v_clipped - mb_returns) ** 2
    v_loss = 0.5 * torch.max(v_loss_unclipped, v_loss_clipped).mean()

    entropy_loss = entropy.mean()
    loss = pg_loss - ENT_COEF * entropy_loss + v_loss * VF_COEF
    return {
        "loss": loss,
        "pg_loss": pg_loss,
        "v_loss": v_loss,
        "entropy": entropy_loss,
        "old_approx_kl": old_approx_kl,
        "approx_kl": approx_kl,
    }


def ppo_update(
    agent: Agent,
    optimizer: optim.Optimizer,
    buf: Storage,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    update_epochs: int,
    num_minibatches: int,
) -> dict[str, float]:
    """``update_epochs`` passes over the flattened rollout; returns CleanRL's per-update statistics."""
    obs_shape = buf.obs.shape[2:]
    batch = {
        "obs": buf.obs.reshape((-1, *obs_shape)),
        "logprobs": buf.logprobs.reshape(-1),
        "actions": buf.actions.reshape((-1, *buf.actions.shape[2:])),
        "advantages": advantages.reshape(-1),
        "returns": returns.reshape(-1),
        "values": buf.values.reshape(-1),
    }
    batch_size = batch["obs"].shape[0]
    minibatch_size = batch_size // num_minibatches
    b_inds = np.arange(batch_size)
    clipfracs: list[float] = []
    for _epoch in range(update_epochs):
        np.random.shuffle(b_inds)
        for start in range(0, batch_size, minibatch_size):
            out = minibatch_loss(agent, batch, b_inds[start : start + minibatch_size], clipfracs)
            optimizer.zero_grad()
            out["loss"].backward()
            nn.utils.clip_grad_norm_(agent.parameters(), MAX_GRAD_NORM)
            optimizer.step()

    y_pred, y_true = batch["values"].cpu().numpy(), batch["returns"].cpu().numpy()
    var_y = np.var(y_true)
    explained_var = np.nan if var_y == 0 else 1 - np.var(y_true - y_pred) / var_y
    stats = {key: value.item() for key, value in out.items() if key != "loss"}
    stats.update(clipfrac=float(np.mean(clipfracs)), explained_variance=float(explained_var))
    stats["learning_rate"] = optimizer.param_groups[0]["lr"]
    return stats


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True  # CleanRL's torch_deterministic default


def train(
    env_id: str,
    *,
    rollouts: int,
    seed: int = 1,
    num_envs: int = 8,
    num_steps: int = 128,
    num_minibatches: int = 4,
    update_epochs: int = 4,
    device: str = "cpu",
) -> tuple[float, list[dict[str, float]]]:
    """Train for 1 warm-up rollout + ``rollouts`` timed rollouts. Returns the env steps/s of the timed ones
    (wall time from the start of the second rollout to the end of the last update) and the statistics of
    every update (warm-up included)."""
    if rollouts < 1:
        raise ValueError(f"plain_ppo: rollouts must be >= 1, got {rollouts}")
    seed_everything(seed)
    dev = torch.device(device)
    envs = make_envs(env_id, num_envs)
    agent = Agent(envs.single_action_space.n).to(dev)
    optimizer = optim.Adam(agent.parameters(), lr=LEARNING_RATE, eps=1e-5)
    buf = Storage.allocate(envs, num_steps, dev)
    num_iterations = 1 + rollouts

    obs_np, _ = envs.reset(seed=seed)
    next_obs = torch.Tensor(obs_np).to(dev)
    next_done = torch.zeros(num_envs).to(dev)
    history: list[dict[str, float]] = []
    start = 0.0
    for iteration in range(1, num_iterations + 1):
        if iteration == 2:
            start = time.perf_counter()
        optimizer.param_groups[0]["lr"] = (1.0 - (iteration - 1.0) / num_iterations) * LEARNING_RATE
        next_obs, next_done = collect_rollout(agent, envs, buf, next_obs, next_done, dev)
        advantages, returns = compute_gae(agent, buf, next_obs, next_done)
        history.append(ppo_update(agent, optimizer, buf, advantages, returns, update_epochs, num_minibatches))
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elapsed = time.perf_counter() - start
    envs.close()
    return rollouts * num_envs * num_steps / elapsed, history


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-id", default="BreakoutNoFrameskip-v4")
    parser.add_argument("--rollouts", type=int, default=5, help="timed rollouts after one warm-up rollout")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    sps, _ = train(args.env_id, rollouts=args.rollouts, seed=args.seed, device=args.device)
    print(f"{args.env_id}: {sps:.1f} env steps/s ({args.rollouts} timed rollouts, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
