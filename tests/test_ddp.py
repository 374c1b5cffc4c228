"""Two-process DDP on CPU (gloo): global env steps count both ranks, a target_kl stop does not hang, and
only rank 0 evaluates while the other waits."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lit_rl.algos.ppo import PPO

QUICKSTART = str(Path(__file__).parents[1] / "configs" / "quickstart.yaml")


def fit_two_ranks(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """``lit-rl fit`` of the quickstart config on 2 CPU processes (gloo); fails the test on a non-zero exit."""
    cmd = [sys.executable, "-m", "lit_rl", "fit", "--config", QUICKSTART, "--trainer.strategy=ddp"]
    cmd += ["--trainer.devices=2", "--trainer.accelerator=cpu", f"--trainer.logger.init_args.save_dir={tmp_path}"]
    cmd += ["--trainer.enable_progress_bar=false", "--data.eval_episodes=2", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_two_rank_ddp_counts_all_ranks_and_ends_with_target_kl(tmp_path: Path) -> None:
    # 8 envs x 32 steps per rank per rollout: 512 global env steps per rollout, budget 2,048 = 4 rollouts.
    # target_kl this low stops every update early; ranks agree on the stop (KL averaged over ranks).
    proc = fit_two_ranks(
        tmp_path,
        "--model.total_env_steps=2048",
        "--model.target_kl=0.0001",
        "--evaluation.every_n_env_steps=1024",
        "--checkpoint.every_n_env_steps=1024",
    )
    output = proc.stdout + proc.stderr
    # Only global rank 0 evaluates (once per period), the other rank waits at the barrier.
    assert output.count("Evaluation at 1,024 env steps") == 1
    assert output.count("Final evaluation at 2,048 env steps") == 1
    (npz,) = tmp_path.rglob("evaluations.npz")
    data = np.load(npz)
    np.testing.assert_array_equal(data["timesteps"], [1024, 2048])
    assert data["results"].shape == data["ep_lengths"].shape == (2, 2)
    names = sorted(p.name for p in tmp_path.rglob("*.ckpt"))
    assert names == [
        "CartPole_quickstart_1_model_checkpoint_1024_steps.ckpt",
        "CartPole_quickstart_1_model_checkpoint_2048_steps.ckpt",
        "last.ckpt",
    ]
    (last,) = tmp_path.rglob("last.ckpt")
    restored = PPO.load_from_checkpoint(last, weights_only=True)
    assert int(restored.env_steps) == 2048
    # 4 rollouts (epochs 0..3), not 8: each rollout counted the env steps of both ranks.
    assert torch.load(last, weights_only=True)["epoch"] == 3
    # Early stops happened (the update count is below 4 rollouts x 20 minibatches) but updates did run.
    assert 0 < int(restored.num_updates) < 4 * 20
    assert all(torch.isfinite(p).all() for p in restored.parameters())


def test_two_rank_rnd_statistics_count_the_frames_of_both_ranks(tmp_path: Path) -> None:
    """RND's observation statistics reduce over ranks (warm-up and rollouts): no hang, and the count
    in the checkpoint is that of every frame of both ranks."""
    fit_two_ranks(
        tmp_path,
        "--model.heads=rnd",
        "--model.intrinsic=lit_rl.models.intrinsic.rnd.RND",
        "--model.intrinsic.warmup_rollouts=2",
        "--model.total_env_steps=1024",
        "--evaluation.every_n_env_steps=0",
        "--checkpoint.every_n_env_steps=1024",
    )
    (last,) = tmp_path.rglob("last.ckpt")
    state = torch.load(last, weights_only=True)["state_dict"]
    per_rank_rollout = 8 * 32  # quickstart: 8 envs x 32 steps
    # 2 warm-up + 2 training rollouts (512 global env steps each), each of 2 ranks.
    assert state["intrinsic.obs_rms.count"].item() == pytest.approx(2 * 4 * per_rank_rollout + 1e-4)
    assert state["intrinsic.return_rms.count"].item() == pytest.approx(2 * 2 * per_rank_rollout + 1e-4)
    assert int(state["env_steps"]) == 1024


RECORD_RANKS = """
import os, sys
from pathlib import Path
from lit_rl.callbacks.preemption import Preemption
from lit_rl.cli import main

out = Path(os.environ["RANK_RECORDS"])
start, end = Preemption.on_train_start, Preemption.on_train_end

def record_pid(self, trainer, pl_module):
    start(self, trainer, pl_module)  # the handlers are installed: a signal now is taken
    (out / f"pid{trainer.global_rank}").write_text(str(os.getpid()))

def record_stop(self, trainer, pl_module):
    (out / f"rank{trainer.global_rank}").write_text(f"{int(pl_module.env_steps)} {self.stopping}")
    end(self, trainer, pl_module)

Preemption.on_train_start, Preemption.on_train_end = record_pid, record_stop
main(sys.argv[1:])
"""


def test_two_rank_ddp_preemption_stops_both_ranks_and_resumes(tmp_path: Path) -> None:
    """SIGTERM to rank 1 only: rank 0 learns of it through the per-update reduction, both ranks stop
    after the same update (later than the checkpoint on disk when the signal was sent), the launching
    process exits 143, the checkpoint holds both ranks' RNG states, and ``--ckpt_path last`` finishes
    the run in the same directory."""
    import signal
    import time

    records = tmp_path / "records"
    records.mkdir()
    script = tmp_path / "record_ranks.py"
    script.write_text(RECORD_RANKS)
    args = ["--model.total_env_steps=4096", "--evaluation.every_n_env_steps=0", "--checkpoint.every_n_env_steps=512"]
    cmd = [sys.executable, str(script), "fit", "--config", QUICKSTART, "--trainer.strategy=ddp"]
    cmd += ["--trainer.devices=2", "--trainer.accelerator=cpu", f"--trainer.logger.init_args.save_dir={tmp_path}"]
    cmd += ["--trainer.enable_progress_bar=false", "--data.eval_episodes=2", *args]
    env = {**os.environ, "RANK_RECORDS": str(records), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not (list(tmp_path.rglob("*_512_steps.ckpt")) and (records / "pid1").exists()):
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "no checkpoint within 180 s"
        time.sleep(0.1)
    os.kill(int((records / "pid1").read_text()), signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:  # a rank left waiting for the other: end both, then fail
        for pid_file in records.glob("pid*"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
        proc.kill()
        pytest.fail("the ranks did not both stop within 180 s of the signal to rank 1")
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    (last,) = tmp_path.rglob("last.ckpt")
    checkpoint = torch.load(last, weights_only=True)
    stopped_at = int(checkpoint["state_dict"]["env_steps"])
    assert 512 < stopped_at < 4096 and stopped_at % 512 == 0
    # Each rank stopped because of the signal, after the same update: a preempted run, not a finished one.
    assert [(records / f"rank{r}").read_text() for r in (0, 1)] == [f"{stopped_at} True"] * 2
    assert not list(tmp_path.rglob("DONE"))
    rng = checkpoint["callbacks"]["EnvStepCheckpoint"]["rng_states"]
    assert len(rng) == 2  # one per rank, each restored on its own rank

    resumed = fit_two_ranks(tmp_path, *args, "--ckpt_path=last")
    assert f"Resuming at {stopped_at:,} env steps" in resumed.stdout + resumed.stderr
    assert int(torch.load(last, weights_only=True)["state_dict"]["env_steps"]) == 4096
    assert len(list(tmp_path.rglob("last.ckpt"))) == 1  # the same run directory


RANK_SCRIPT = """
import dataclasses, os, sys
import torch
import lit_rl.algos.ppo as ppo_module
from lit_rl.cli import main

rank = int(os.environ.get("LOCAL_RANK", "0"))
out_dir = os.environ["PARAM_DUMPS"]
loss, end = ppo_module.ppo_loss, ppo_module.PPO.on_train_epoch_end
minibatch = {"i": 0}

def one_rank_kl(*args, **kwargs):
    out = loss(*args, **kwargs)
    minibatch["i"] += 1
    if rank == 1 and minibatch["i"] > 1:  # rank 1 only, from the 2nd minibatch of every update on
        out = dataclasses.replace(out, approx_kl=torch.tensor(10.0))
    return out

def dump_after_update(self):
    torch.save(self.policy.state_dict(), f"{out_dir}/rank{rank}_update{int(self.env_steps)}.pt")
    minibatch["i"] = 0
    end(self)

ppo_module.ppo_loss = one_rank_kl
ppo_module.PPO.on_train_epoch_end = dump_after_update
main(sys.argv[1:])
"""


def test_two_rank_ddp_keeps_parameters_identical_and_ends_when_only_one_rank_exceeds_target_kl(
    tmp_path: Path,
) -> None:
    """Only rank 1's KL is large (from each update's 2nd minibatch); the mean over ranks exceeds
    target_kl on both, so both stop after one step per update, and the parameters stay identical."""
    script = tmp_path / "ranks.py"
    script.write_text(RANK_SCRIPT)
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    cmd = [sys.executable, str(script), "fit", "--config", QUICKSTART, "--trainer.strategy=ddp", "--trainer.devices=2"]
    cmd += ["--trainer.accelerator=cpu", "--trainer.logger=false", "--trainer.enable_progress_bar=false"]
    cmd += ["--model.total_env_steps=1536", "--data.num_minibatches=4", "--data.update_epochs=1"]
    cmd += ["--model.target_kl=1.0", "--evaluation.every_n_env_steps=0", "--data.eval_episodes=1"]
    env = {**os.environ, "PARAM_DUMPS": str(dumps), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    steps = [512, 1024, 1536]  # 2 ranks x 8 envs x 32 steps per update
    for s in steps:
        a = torch.load(dumps / f"rank0_update{s}.pt", weights_only=True)
        b = torch.load(dumps / f"rank1_update{s}.pt", weights_only=True)
        for name in a:
            assert torch.equal(a[name], b[name]), (s, name)
    first, last = (torch.load(dumps / f"rank0_update{s}.pt", weights_only=True) for s in (steps[0], steps[-1]))
    assert any(not torch.equal(first[k], last[k]) for k in first)  # the updates did change the parameters
    (ckpt,) = tmp_path.rglob("last.ckpt")
    assert int(torch.load(ckpt, weights_only=True)["state_dict"]["num_updates"]) == 3  # one step per update
