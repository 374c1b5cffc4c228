"""Observation normalisation (``model.normalize_obs``): SB3's VecNormalize filter as a module of the policy.

Checked against references written here (numpy moments over every observation, and SB3's own
``RunningMeanStd``), through the real CLI: statistics from training rollouts only, the PPO ratio still
exactly 1 at the first minibatch, exact resume, the evaluation policy normalising as training does,
and one-line errors.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from lit_rl.algos.ppo import PPO
from lit_rl.cli import run
from lit_rl.models.running_stats import ObservationNormalizer

QUICKSTART = str(Path(__file__).parents[2] / "configs" / "quickstart.yaml")
EPISODE = 8  # steps per episode = steps per rollout
NUM_ENVS = 4
SEED = 5


class SeedClockEnv(gym.Env):
    """Observation ``[t, s, 100 + 50 t]``: the step ``t`` of an 8-step episode and the seed ``s`` of the
    env's first reset, whatever the actions. Training envs get seeds ``SEED + i``; evaluation envs'
    seeds are a million higher, so any evaluation observation in the statistics would show."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.s = float(seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), float(action), self.t == EPISODE, False, {}

    def _obs(self) -> np.ndarray:
        return np.array([self.t, self.s, 100.0 + 50.0 * self.t], dtype=np.float32)


gym.register("lit_rl_test/SeedClock-v0", entry_point=SeedClockEnv)

ARGS = [
    "fit",
    "--config",
    QUICKSTART,
    "--data.env_id=lit_rl_test/SeedClock-v0",
    f"--data.num_envs={NUM_ENVS}",
    f"--data.num_steps={EPISODE}",
    "--data.num_minibatches=2",
    "--data.update_epochs=2",
    "--data.eval_episodes=2",
    "--model.normalize_obs=true",
    f"--evaluation.every_n_env_steps={2 * NUM_ENVS * EPISODE}",
    f"--seed_everything={SEED}",
    "--trainer.enable_progress_bar=false",
]


def training_observations(rollouts: int, envs: list[int]) -> np.ndarray:
    """Every observation the training rollouts hold: each env's episode steps 0..7, once per rollout."""
    rows = [[t, SEED + i, 100.0 + 50.0 * t] for _ in range(rollouts) for i in envs for t in range(EPISODE)]
    return np.asarray(rows, dtype=np.float64)


def sb3_statistics(batches: list[np.ndarray]):
    """SB3's ``RunningMeanStd`` (VecNormalize's) fed ``batches`` in order: the reference statistics,
    with the same initial state (mean 0, variance 1, pseudo-count 1e-4)."""
    from stable_baselines3.common.running_mean_std import RunningMeanStd

    rms = RunningMeanStd(shape=batches[0].shape[1:])
    for batch in batches:
        rms.update(batch)
    return rms


def test_normalizer_matches_sb3_vecnormalize() -> None:
    rng = np.random.default_rng(0)
    data = rng.normal([3.0, -40.0], [0.01, 25.0], size=(600, 2))
    batches = np.array_split(data, 5)
    norm = ObservationNormalizer((2,), clip=10.0)
    for batch in batches:
        norm.update(torch.as_tensor(batch))
    rms = sb3_statistics(batches)
    np.testing.assert_allclose(norm.stats.mean.numpy(), rms.mean, rtol=1e-10)
    np.testing.assert_allclose(norm.stats.var.numpy(), rms.var, rtol=1e-10)
    # The moments of all samples, up to the initial pseudo-count's share (visible on the tiny variance).
    np.testing.assert_allclose(norm.stats.var.numpy()[1], data.var(0)[1], rtol=1e-6)
    probe = np.array([[3.0, -40.0], [3.02, 0.0], [2.0, 500.0], [4.0, -40.0]])
    expected = np.clip((probe - rms.mean) / np.sqrt(rms.var + 1e-8), -10.0, 10.0)  # VecNormalize._normalize_obs
    assert np.abs(expected).max() == 10.0  # the clip is exercised
    np.testing.assert_allclose(norm(torch.as_tensor(probe, dtype=torch.float32)).numpy(), expected, atol=1e-5)


def test_statistics_come_from_training_rollouts_only_and_the_ratio_starts_at_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gaps: list[float] = []
    step = PPO.training_step

    def probe(self, batch, batch_idx):
        if batch_idx == 0:  # before the first optimiser step of this update
            log_probs = self.policy.score_actions(batch.obs, batch.actions).log_probs
            gaps.append(float((log_probs - batch.log_probs).abs().max()))
        return step(self, batch, batch_idx)

    monkeypatch.setattr(PPO, "training_step", probe)
    rollouts = 4
    cli = run([*ARGS, f"--model.total_env_steps={rollouts * NUM_ENVS * EPISODE}", "--trainer.logger=false"])
    stats = cli.model.policy.obs_norm.stats
    obs = training_observations(rollouts, list(range(NUM_ENVS)))
    assert float(stats.count) == pytest.approx(len(obs) + 1e-4, abs=1e-9)  # no evaluation observation
    rms = sb3_statistics(np.array_split(obs, rollouts))
    np.testing.assert_allclose(stats.mean.numpy(), rms.mean, rtol=1e-10)
    np.testing.assert_allclose(stats.var.numpy(), rms.var, rtol=1e-10)
    # The update replays the rollout with the statistics the policy acted with: ratio 1 at every update's start.
    assert len(gaps) == rollouts and max(gaps) < 1e-6, gaps
    # The policy (what evaluation and lit-rl validate run) sees normalised observations.
    x = torch.tensor([[3.0, SEED + 1.0, 250.0]])
    expected = (x.double() - rms.mean) / np.sqrt(rms.var + 1e-8)
    torch.testing.assert_close(cli.model.policy.preprocess(x), expected.float())


def test_resume_with_normalization_equals_the_uninterrupted_run(tmp_path: Path) -> None:
    """As tests/test_resume.py, with normalisation: on an env whose observations depend on no seed (a resume
    reseeds the envs), 3 rollouts + checkpoint + resume to 6 equal 6 uninterrupted rollouts bit for bit."""
    import tests.test_resume  # noqa: F401  (registers lit_rl_test/Aligned-v0)

    budget = [
        f"--model.total_env_steps={6 * NUM_ENVS * EPISODE}",
        f"--checkpoint.every_n_env_steps={NUM_ENVS * EPISODE}",
    ]
    budget.append("--data.env_id=lit_rl_test/Aligned-v0")
    full = run([*ARGS, *budget, f"--trainer.logger.init_args.save_dir={tmp_path / 'full'}"])
    first = run([*ARGS, *budget, f"--trainer.logger.init_args.save_dir={tmp_path / 'cut'}", "--trainer.max_epochs=3"])
    ckpt = Path(first.trainer.log_dir) / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, weights_only=True)["state_dict"]
    # The checkpoint after 3 rollouts holds the statistics of all 3 (what the 4th rollout acts with).
    assert float(saved["policy.obs_norm.stats.count"]) == pytest.approx(3 * NUM_ENVS * EPISODE + 1e-4)
    resumed = run([*ARGS, *budget, f"--trainer.logger.init_args.save_dir={tmp_path / 'cut'}", f"--ckpt_path={ckpt}"])
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=name)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--data.env_id=BreakoutNoFrameskip-v4", "--model.extractor=lit_rl.models.extractors.nature_cnn.NatureCNN"],
            "model.normalize_obs=true with uint8 image observations of shape (4, 84, 84); observation normalisation "
            "is for float observations",
        ),
    ],
)
def test_normalization_of_images_is_one_clear_line(args, message, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(["fit", "--config", QUICKSTART, "--model.normalize_obs=true", "--trainer.logger=false", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_checkpoint_with_other_normalization_is_one_clear_line(tmp_path: Path, capsys) -> None:
    budget = f"--model.total_env_steps={NUM_ENVS * EPISODE}"
    first = run([*ARGS, budget, f"--trainer.logger.init_args.save_dir={tmp_path}"])
    ckpt = Path(first.trainer.log_dir) / "checkpoints" / "last.ckpt"
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run([*ARGS, budget, "--model.normalize_obs=false", "--trainer.logger=false", f"--ckpt_path={ckpt}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "was trained with model.normalize_obs=true, this run has model.normalize_obs=false" in err[0]
    assert "resume with model.normalize_obs=true" in err[0]
