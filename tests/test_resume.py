"""Exact resume: k iterations + checkpoint + resume to 2k equals an uninterrupted 2k-iteration run."""

from __future__ import annotations

import signal
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from lit_rl.cli import run
from tests.slurm import SLURM_JOB

QUICKSTART = str(Path(__file__).parents[1] / "configs" / "quickstart.yaml")
EPISODE = 8  # steps per episode = steps per rollout, so every rollout starts with fresh episodes


class AlignedEnv(gym.Env):
    """Episodes of exactly ``EPISODE`` steps whose observations and rewards depend only on the step and
    the actions, never on an RNG: a resumed run's fresh envs continue exactly where the envs of an
    uninterrupted run are at a rollout boundary."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.last = 0, 0
        return self._obs(), {}

    def step(self, action):
        reward = float(action == (self.t // 2) % 2)  # a pattern the policy can learn
        self.t, self.last = self.t + 1, int(action)
        return self._obs(), reward, self.t == EPISODE, False, {}

    def _obs(self) -> np.ndarray:
        phase = self.t / EPISODE
        return np.array([phase, (self.t // 2) % 2, self.last, 1.0 - phase], dtype=np.float32)


gym.register("lit_rl_test/Aligned-v0", entry_point=AlignedEnv)

ROLLOUT = 4 * EPISODE  # 4 envs x 8 steps
ARGS = [
    "fit",
    "--config",
    QUICKSTART,
    "--data.env_id=lit_rl_test/Aligned-v0",
    "--data.num_envs=4",
    f"--data.num_steps={EPISODE}",
    "--data.num_minibatches=2",
    "--data.update_epochs=3",
    "--data.eval_episodes=2",
    f"--model.total_env_steps={8 * ROLLOUT}",
    "--model.ent_coef=0.01",  # the entropy term and its gradient are part of what must match
    f"--evaluation.every_n_env_steps={3 * ROLLOUT}",  # evaluations at 3 and 6 rollouts, and the final one
    f"--checkpoint.every_n_env_steps={4 * ROLLOUT}",
    "--seed_everything=7",
    "--trainer.enable_progress_bar=false",
]


def _fit(save_dir: Path, *extra: str):
    return run([*ARGS, f"--trainer.logger.init_args.save_dir={save_dir}", *extra])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory):
    return _fit(tmp_path_factory.mktemp("uninterrupted"))


def test_resume_at_k_of_2k_iterations_equals_the_uninterrupted_run(uninterrupted, tmp_path: Path) -> None:
    first = _fit(tmp_path, "--trainer.max_epochs=4")  # stops after 4 rollouts, at the periodic checkpoint
    log_dir = Path(first.trainer.log_dir)
    ckpt = log_dir / "checkpoints" / "last.ckpt"
    assert int(torch.load(ckpt, weights_only=True)["state_dict"]["env_steps"]) == 4 * ROLLOUT
    assert not (log_dir / "DONE").exists()  # stopped before its budget
    # What the interrupted run logged after its checkpoint must not survive the resume: fake a stale
    # evaluation row and a stale TensorBoard point after the checkpoint.
    stale = dict(np.load(log_dir / "evaluations.npz"))
    np.savez(log_dir / "evaluations.npz", **{k: np.concatenate([v, v[-1:]]) for k, v in stale.items()})
    with SummaryWriter(log_dir) as writer:
        writer.add_scalar("eval/episode_return", 999.0, 6 * ROLLOUT)

    resumed = _fit(tmp_path, f"--ckpt_path={ckpt}")
    assert Path(resumed.trainer.log_dir) == log_dir  # the same run directory goes on

    full, res = uninterrupted.model, resumed.model
    assert int(res.env_steps) == int(full.env_steps) == 8 * ROLLOUT
    assert int(res.num_updates) == int(full.num_updates) == 8 * 3 * 2
    lr_full = full.optimizers().optimizer.param_groups[0]["lr"]
    assert res.optimizers().optimizer.param_groups[0]["lr"] == lr_full
    assert res.current_clip_coef == full.current_clip_coef
    for (name, a), b in zip(full.state_dict().items(), res.state_dict().values(), strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=name)  # CPU: bit for bit
    opt_full = full.optimizers().optimizer.state_dict()["state"]
    opt_res = res.optimizers().optimizer.state_dict()["state"]
    for index, state in opt_full.items():
        for key, value in state.items():
            torch.testing.assert_close(opt_res[index][key], value, rtol=0, atol=0, msg=f"{index}.{key}")

    evaluations = np.load(log_dir / "evaluations.npz")
    expected = np.load(Path(uninterrupted.trainer.log_dir) / "evaluations.npz")
    assert (
        evaluations["timesteps"].tolist() == expected["timesteps"].tolist() == [3 * ROLLOUT, 6 * ROLLOUT, 8 * ROLLOUT]
    )
    np.testing.assert_array_equal(evaluations["results"], expected["results"])
    np.testing.assert_array_equal(evaluations["ep_lengths"], expected["ep_lengths"])

    events = EventAccumulator(str(log_dir))  # TensorBoard's reader: purges what the resume superseded
    events.Reload()
    points = [(e.step, e.value) for e in events.Scalars("eval/episode_return")]
    assert [step for step, _ in points] == [3 * ROLLOUT, 6 * ROLLOUT, 8 * ROLLOUT]
    assert 999.0 not in [value for _, value in points]
    assert (log_dir / "DONE").read_text() == f"{8 * ROLLOUT}\n"

    periodic = sorted(p.name for p in (log_dir / "checkpoints").glob("*_steps.ckpt"))
    assert periodic == [f"Aligned_quickstart_7_model_checkpoint_{s}_steps.ckpt" for s in (4 * ROLLOUT, 8 * ROLLOUT)]


def test_without_the_rng_states_the_resumed_run_differs(uninterrupted, tmp_path: Path) -> None:
    """The previous test can fail: drop the RNG states from the checkpoint and the runs part ways."""
    first = _fit(tmp_path, "--trainer.max_epochs=4")
    ckpt = Path(first.trainer.log_dir) / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(ckpt, weights_only=True)
    checkpoint["callbacks"]["EnvStepCheckpoint"]["rng_states"] = []
    torch.save(checkpoint, ckpt)
    torch.manual_seed(123)  # a state the uninterrupted run never had
    resumed = _fit(tmp_path, f"--ckpt_path={ckpt}")
    params = [(a, b) for a, b in zip(uninterrupted.model.parameters(), resumed.model.parameters(), strict=True)]
    assert any(not torch.equal(a, b) for a, b in params)


def test_ckpt_path_last_resumes_the_newest_run_and_starts_fresh_without_one(tmp_path: Path) -> None:
    """A job script can always pass ``--ckpt_path last``: first start, resume, and a no-op once finished."""
    fresh = _fit(tmp_path, "--ckpt_path=last", "--trainer.max_epochs=4")  # nothing to resume yet
    assert Path(fresh.trainer.log_dir).name == "version_0"
    resumed = _fit(tmp_path, "--ckpt_path=last")
    assert Path(resumed.trainer.log_dir).name == "version_0"
    assert int(resumed.model.env_steps) == 8 * ROLLOUT
    npz = Path(resumed.trainer.log_dir) / "evaluations.npz"
    rows = np.load(npz)["timesteps"].tolist()
    again = _fit(tmp_path, "--ckpt_path=last")  # the budget is reached: no rollout, no evaluation
    assert int(again.model.env_steps) == 8 * ROLLOUT and int(again.model.num_updates) == 8 * 3 * 2
    assert np.load(npz)["timesteps"].tolist() == rows == [3 * ROLLOUT, 6 * ROLLOUT, 8 * ROLLOUT]


def _cartpole(save_dir: Path, seed: int):
    args = ["fit", "--config", QUICKSTART, "--data.num_envs=4", "--data.num_steps=16", "--data.num_minibatches=2"]
    args += ["--data.update_epochs=2", "--trainer.max_epochs=3", "--trainer.enable_progress_bar=false"]
    return run([*args, f"--seed_everything={seed}", f"--trainer.logger.init_args.save_dir={save_dir}"])


def test_same_seed_and_config_give_the_same_updates_bit_for_bit_on_cpu(tmp_path: Path) -> None:
    a, b, other = (_cartpole(tmp_path / name, seed) for name, seed in (("a", 3), ("b", 3), ("c", 4)))
    assert int(a.model.num_updates) == int(b.model.num_updates) == 3 * 2 * 2
    for (name, x), y in zip(a.model.state_dict().items(), b.model.state_dict().values(), strict=True):
        assert torch.equal(x, y), name
    assert not all(torch.equal(x, y) for x, y in zip(a.model.parameters(), other.model.parameters(), strict=True))


def test_ckpt_path_last_never_resumes_a_run_of_another_seed(tmp_path: Path) -> None:
    _fit(tmp_path, "--trainer.max_epochs=2")
    other = _fit(tmp_path, "--ckpt_path=last", "--trainer.max_epochs=1", "--seed_everything=8")
    assert Path(other.trainer.log_dir).name == "version_1" and int(other.model.env_steps) == ROLLOUT


def test_a_fit_leaves_the_signal_handlers_as_it_found_them(tmp_path: Path) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)}
    _fit(tmp_path, "--trainer.max_epochs=1")
    assert {s: signal.getsignal(s) for s in before} == before


def test_an_evaluation_depends_on_its_index_only_and_leaves_the_training_rng_alone(tmp_path: Path) -> None:
    """So an evaluation that a preempted run leaves to the resumed one samples the same actions there."""
    cli = _cartpole(tmp_path, 3)
    dm, policy = cli.datamodule, cli.model.policy
    state = torch.get_rng_state()
    first = dm.run_evaluation(policy, index=2)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(99)  # another training RNG state: the same evaluation
    again = dm.run_evaluation(policy, index=2)
    np.testing.assert_array_equal(first.returns, again.returns)
    np.testing.assert_array_equal(first.lengths, again.lengths)
    assert not np.array_equal(dm.run_evaluation(policy, index=3).lengths, first.lengths)


def test_an_evaluation_due_at_a_preempted_update_runs_first_on_resume(
    uninterrupted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Preempted at 3 rollouts, where an evaluation is due: the stopping run leaves it out, the resumed
    run runs it first, and the history equals the uninterrupted run's, returns included."""
    from lit_rl.callbacks.preemption import Preemption

    end = Preemption.on_train_epoch_end

    def signal_at_three_rollouts(self, trainer, pl_module):
        if int(pl_module.env_steps) == 3 * ROLLOUT:
            self.received = signal.SIGTERM  # what the handler records when the signal arrives
        end(self, trainer, pl_module)

    with monkeypatch.context() as patch:
        patch.setattr(Preemption, "on_train_epoch_end", signal_at_three_rollouts)
        first = _fit(tmp_path)
    log_dir = Path(first.trainer.log_dir)
    assert first.exit_code == 128 + signal.SIGTERM and int(first.model.env_steps) == 3 * ROLLOUT
    assert not (log_dir / "evaluations.npz").exists()  # the due evaluation was not run before stopping
    resumed = _fit(tmp_path, "--ckpt_path=last")
    assert Path(resumed.trainer.log_dir) == log_dir
    evaluations = np.load(log_dir / "evaluations.npz")
    expected = np.load(Path(uninterrupted.trainer.log_dir) / "evaluations.npz")
    assert evaluations["timesteps"].tolist() == [3 * ROLLOUT, 6 * ROLLOUT, 8 * ROLLOUT]
    np.testing.assert_array_equal(evaluations["results"], expected["results"])
    np.testing.assert_array_equal(evaluations["ep_lengths"], expected["ep_lengths"])


SLURM = SLURM_JOB


def test_a_requeued_job_prefers_a_newer_last_ckpt_to_its_hpc_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job preempted at 2 rollouts (hpc_ckpt_1 written), requeued, trained on to 5 rollouts and then
    crashed: its next start, under SLURM and without --ckpt_path, resumes from the newer last.ckpt."""
    import os
    import shutil

    from lit_rl.algos.ppo import PPO

    fixed = ["--trainer.logger.init_args.version=Aligned_7", f"--trainer.default_root_dir={tmp_path}"]
    fixed.append(f"--checkpoint.every_n_env_steps={ROLLOUT}")  # last.ckpt after every rollout
    first = _fit(tmp_path, *fixed, "--trainer.max_epochs=2")
    last = Path(first.trainer.log_dir) / "checkpoints" / "last.ckpt"
    hpc = tmp_path / "hpc_ckpt_1.ckpt"
    shutil.copy(last, hpc)
    os.utime(hpc, (1_000_000_000, 1_000_000_000))  # written long before the run went on
    _fit(tmp_path, *fixed, "--ckpt_path=last", "--trainer.max_epochs=5")
    assert int(torch.load(last, weights_only=True)["state_dict"]["env_steps"]) == 5 * ROLLOUT
    for key, value in SLURM.items():
        monkeypatch.setenv(key, value)
    rollouts = []
    process_rollout = PPO.process_rollout
    monkeypatch.setattr(PPO, "process_rollout", lambda self, r: rollouts.append(1) or process_rollout(self, r))
    requeued = _fit(tmp_path, *fixed)
    assert len(rollouts) == 3  # from 5 rollouts to the budget of 8, not from the hpc_ckpt's 2
    assert int(requeued.model.env_steps) == 8 * ROLLOUT
