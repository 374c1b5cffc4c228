"""The anchor of the memory comparison: sb3-contrib's RecurrentPPO with RL Zoo's CartPoleNoVel-v1 settings.

RL Zoo (``hyperparams/ppo_lstm.yml``, CartPoleNoVel-v1): 8 envs × 32 steps, 20 epochs, minibatch 256,
γ 0.98, λ 0.8, learning rate 1e-3 and clip 0.2 annealed linearly to 0, entropy 0, an LSTM of 64 units
for the actor and another for the critic, ReLU heads of 64, no orthogonal init, observations normalised
(``VecNormalize``), rewards not. Run here on lit_rl's ``lit_rl/StatelessCartPole-v1`` (the same task)
with lit_rl's evaluation protocol, so its ``evaluations.npz`` sits beside lit_rl's runs:
every ``--eval-every`` env steps and at the end, ``--eval-episodes`` full episodes with sampled actions,
or the most likely ones with ``--greedy`` (RL Zoo's own protocol; lit_rl's ``data.eval_greedy``), one per
env of a separate env, seeded as lit_rl seeds its evaluations, the observation statistics frozen.

    python -m tools.sb3_recurrent_ppo --seed 0 --steps 200000 --out runs/sb3/seed_0

Needs sb3-contrib (in the ``dev`` extra).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import lit_rl  # noqa: F401  (registers lit_rl/StatelessCartPole-v1)
from lit_rl.data.datamodule import EVAL_SEED_OFFSET

ENV_ID = "lit_rl/StatelessCartPole-v1"


def zoo_model(env, seed: int):
    """RecurrentPPO with RL Zoo's CartPoleNoVel-v1 hyperparameters on ``env``."""
    from sb3_contrib import RecurrentPPO
    from torch import nn

    def linear(start: float):
        return lambda progress_remaining: progress_remaining * start

    return RecurrentPPO(
        "MlpLstmPolicy",
        env,
        n_steps=32,
        batch_size=256,
        n_epochs=20,
        gamma=0.98,
        gae_lambda=0.8,
        ent_coef=0.0,
        learning_rate=linear(1e-3),
        clip_range=linear(0.2),
        policy_kwargs=dict(
            ortho_init=False,
            activation_fn=nn.ReLU,
            lstm_hidden_size=64,
            enable_critic_lstm=True,
            net_arch=dict(pi=[64], vf=[64]),
        ),
        seed=seed,
        device="cpu",
    )


def run_episodes(model, train_env, episodes: int, seed: int, greedy: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One full episode on each of ``episodes`` envs, sampled or greedy actions; raw returns and lengths."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    env = VecNormalize(make_vec_env(ENV_ID, n_envs=episodes, seed=seed), norm_reward=False, training=False)
    env.obs_rms = train_env.obs_rms.copy()
    obs = env.reset()
    state, starts = None, np.ones(episodes, dtype=bool)
    returns, lengths = np.zeros(episodes), np.zeros(episodes, dtype=np.int64)
    running = np.ones(episodes, dtype=bool)
    while running.any():
        actions, state = model.predict(obs, state=state, episode_start=starts, deterministic=greedy)
        obs, rewards, dones, _ = env.step(actions)
        returns += rewards * running
        lengths += running
        running &= ~dones
        starts = dones
    env.close()
    return returns, lengths


def train(seed: int, steps: int, eval_every: int, eval_episodes: int, out: Path, greedy: bool = False) -> float:
    """Train and evaluate one seed; writes ``out/evaluations.npz``; returns the wall time in seconds."""
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    env = VecNormalize(make_vec_env(ENV_ID, n_envs=8, seed=seed), norm_obs=True, norm_reward=False)
    model = zoo_model(env, seed)
    record: dict[str, list] = {"timesteps": [], "results": [], "ep_lengths": []}

    def evaluate(env_steps: int) -> None:
        eval_seed = (seed + EVAL_SEED_OFFSET + len(record["timesteps"]) * eval_episodes) % 2**31
        returns, lengths = run_episodes(model, env, eval_episodes, eval_seed, greedy)
        record["timesteps"].append(env_steps)
        record["results"].append(returns)
        record["ep_lengths"].append(lengths)
        np.savez(out / "evaluations.npz", **{k: np.asarray(v) for k, v in record.items()})
        print(f"Evaluation at {env_steps:,} env steps: return {returns.mean():.2f} ± {returns.std():.2f}", flush=True)

    class Every(BaseCallback):
        def _on_rollout_end(self) -> None:  # after each rollout of 8 × 32 steps, as lit_rl evaluates
            if self.num_timesteps // eval_every > len(record["timesteps"]) and self.num_timesteps < steps:
                evaluate(self.num_timesteps)

        def _on_step(self) -> bool:
            return True

    model.learn(total_timesteps=steps, callback=Every())
    evaluate(model.num_timesteps)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--steps", type=int, default=200_000, help="env steps")
    parser.add_argument("--eval-every", type=int, default=25_000, help="evaluation period in env steps")
    parser.add_argument("--eval-episodes", type=int, default=20, help="episodes per evaluation")
    parser.add_argument("--greedy", action="store_true", help="evaluate the most likely actions (RL Zoo's protocol)")
    parser.add_argument("--out", type=Path, required=True, help="run directory (evaluations.npz)")
    args = parser.parse_args(argv)
    seconds = train(args.seed, args.steps, args.eval_every, args.eval_episodes, args.out, args.greedy)
    print(f"wall time {seconds:.0f} s")


if __name__ == "__main__":
    main()
