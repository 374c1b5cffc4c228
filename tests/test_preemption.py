"""Preemption and crash safety in real processes: SIGTERM/SIGUSR1 mid-run, SIGKILL mid-write, SLURM requeue."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lit_rl.algos.ppo import PPO
from tests.slurm import SLURM_JOB

QUICKSTART = str(Path(__file__).parents[1] / "configs" / "quickstart.yaml")
# CartPole, 8 envs x 32 steps = 256 env steps per update; a periodic checkpoint every 4 updates.
ARGS = [
    "fit",
    "--config",
    QUICKSTART,
    "--model.total_env_steps=6144",
    "--data.update_epochs=4",
    "--data.eval_episodes=2",
    "--evaluation.every_n_env_steps=2048",
    "--checkpoint.every_n_env_steps=1024",
    "--trainer.enable_progress_bar=false",
    "--trainer.logger.init_args.save_dir=runs",
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _start(cwd: Path, *extra: str, env: dict | None = None, code: str | None = None) -> subprocess.Popen:
    command = [sys.executable, "-c", code, *ARGS, *extra] if code else [sys.executable, "-m", "lit_rl", *ARGS, *extra]
    return subprocess.Popen(command, cwd=cwd, env=env or ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            _out, err = proc.communicate()
            pytest.fail(f"the run ended (status {proc.returncode}) before {path.name} appeared:\n{err[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.05)


def _env_steps(ckpt: Path) -> int:
    return int(torch.load(ckpt, weights_only=True)["state_dict"]["env_steps"])


RUN_DIR = Path("runs/quickstart/version_0")
FIRST = RUN_DIR / "checkpoints" / "CartPole_quickstart_1_model_checkpoint_1024_steps.ckpt"


def test_sigterm_writes_a_checkpoint_exits_and_the_run_resumes(tmp_path: Path) -> None:
    signum = signal.SIGTERM  # SIGUSR1 is the SLURM test's
    proc = _start(tmp_path)
    _wait_for(tmp_path / FIRST, proc)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err[-3000:]
    assert f"received {signal.Signals(signum).name}" in err
    assert "Traceback" not in err
    last = tmp_path / RUN_DIR / "checkpoints" / "last.ckpt"
    stopped_at = _env_steps(last)
    # Written after the signal, at the end of a whole update: not the last.ckpt of the 1,024-step
    # checkpoint, which was on disk before the signal was sent.
    assert 1024 < stopped_at < 6144 and stopped_at % 256 == 0
    assert f"Preempted (SIGTERM) at {stopped_at:,} env steps" in out + err
    assert not (tmp_path / RUN_DIR / "DONE").exists()  # a preempted run is not a finished one

    resumed = subprocess.run(
        [sys.executable, "-m", "lit_rl", *ARGS, "--ckpt_path=last"],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resuming at {stopped_at:,} env steps" in resumed.stdout + resumed.stderr
    assert _env_steps(last) == 6144  # finished in the same run directory
    assert not (tmp_path / "runs/quickstart/version_1").exists()


KILL_DURING_WRITE = """
import sys, time
from pathlib import Path
import lightning.fabric.plugins.io.torch_io as torch_plugin
from lit_rl.cli import main

real_save, calls = torch_plugin._atomic_save, []

def torn_save(checkpoint, path):
    calls.append(path)
    if Path(path).name == "last.ckpt.tmp" and sum(Path(p).name == "last.ckpt.tmp" for p in calls) == 2:
        import io, torch
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        with open(path, "wb") as f:  # half of the second last.ckpt, then wait for the SIGKILL
            f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        Path("writing").touch()
        time.sleep(600)
    real_save(checkpoint, path)

torch_plugin._atomic_save = torn_save
main(sys.argv[1:])
"""


def test_sigkill_during_a_checkpoint_write_leaves_the_previous_checkpoint_loadable(tmp_path: Path) -> None:
    proc = _start(tmp_path, code=KILL_DURING_WRITE)
    _wait_for(tmp_path / "writing", proc)
    proc.kill()  # SIGKILL: no handler, no cleanup
    proc.communicate(timeout=60)
    checkpoints = tmp_path / RUN_DIR / "checkpoints"
    torn = checkpoints / "last.ckpt.tmp"
    assert torn.is_file()
    with pytest.raises((RuntimeError, EOFError, OSError)):  # the interrupted write really is torn
        torch.load(torn, weights_only=True)
    last = checkpoints / "last.ckpt"
    assert _env_steps(last) == 1024  # the previous last.ckpt, intact
    restored = PPO.load_from_checkpoint(last, weights_only=True)
    assert all(torch.isfinite(p).all() for p in restored.parameters())


SIGNAL_IN_THE_LAST_UPDATE = """
import os, signal, sys
from lit_rl.algos.ppo import PPO
from lit_rl.cli import main

process_rollout = PPO.process_rollout

def signal_in_the_last_update(self, rollout):
    out = process_rollout(self, rollout)
    if self.budget_reached:  # this rollout's update reaches the budget: SIGTERM before it runs
        os.kill(os.getpid(), signal.SIGTERM)
    return out

PPO.process_rollout = signal_in_the_last_update
main(sys.argv[1:])
"""


def test_a_signal_during_the_last_update_lets_the_run_finish(tmp_path: Path) -> None:
    """A signal while the update that reaches the budget runs: status 0, the final evaluation, DONE, no
    requeue-worthy stop."""
    proc = _start(tmp_path, "--model.total_env_steps=1024", code=SIGNAL_IN_THE_LAST_UPDATE)
    out, err = proc.communicate(timeout=120)
    assert "received SIGTERM" in err  # the signal did arrive, during the last update
    assert proc.returncode == 0, err[-3000:]
    assert "Preempted" not in out + err
    assert "Final evaluation at 1,024 env steps" in out + err
    assert (tmp_path / RUN_DIR / "DONE").read_text() == "1024\n"
    assert _env_steps(tmp_path / RUN_DIR / "checkpoints" / "last.ckpt") == 1024


DISK_FULL_DURING_WRITE = """
import errno, io, sys
from pathlib import Path
import torch
import lightning.fabric.plugins.io.torch_io as torch_plugin
from lit_rl.cli import main

real_save, calls = torch_plugin._atomic_save, []

def disk_full(checkpoint, path):
    if Path(path).name.startswith("last.ckpt"):
        calls.append(path)
        if len(calls) == 2:  # the second last.ckpt: half of it fits on the disk
            buffer = io.BytesIO()
            torch.save(checkpoint, buffer)
            with open(path, "wb") as f:
                f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
    real_save(checkpoint, path)

torch_plugin._atomic_save = disk_full
main(sys.argv[1:])
"""


def test_a_full_disk_during_a_checkpoint_write_leaves_the_previous_checkpoint_loadable(tmp_path: Path) -> None:
    proc = _start(tmp_path, code=DISK_FULL_DURING_WRITE)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "No space left on device" in err, err[-3000:]
    last = tmp_path / RUN_DIR / "checkpoints" / "last.ckpt"
    assert _env_steps(last) == 1024  # the previous last.ckpt, intact
    restored = PPO.load_from_checkpoint(last, weights_only=True)
    assert all(torch.isfinite(p).all() for p in restored.parameters())


FAKE_SCONTROL = """#!/bin/sh
echo "$@" >> "$(dirname "$0")/scontrol.log"
"""


def test_slurm_preemption_requeues_and_the_requeued_job_resumes_on_its_own(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(FAKE_SCONTROL)
    scontrol.chmod(0o755)
    slurm = {**SLURM_JOB, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env = {**ENV, **slurm}
    proc = _start(tmp_path, env=env)
    _wait_for(tmp_path / FIRST, proc)
    proc.send_signal(signal.SIGUSR1)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGUSR1, err[-3000:]
    assert (bin_dir / "scontrol.log").read_text().split() == ["requeue", "4242"]
    hpc = tmp_path / "hpc_ckpt_1.ckpt"  # Lightning's requeue checkpoint in default_root_dir
    stopped_at = _env_steps(hpc)
    assert stopped_at == _env_steps(tmp_path / RUN_DIR / "checkpoints" / "last.ckpt")

    # The requeued job runs the same command, without --ckpt_path.
    requeued = subprocess.run(
        [sys.executable, "-m", "lit_rl", *ARGS], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert requeued.returncode == 0, requeued.stderr[-3000:]
    assert f"Resuming at {stopped_at:,} env steps" in requeued.stdout + requeued.stderr
    assert _env_steps(tmp_path / RUN_DIR / "checkpoints" / "last.ckpt") == 6144


CRASH_WITH_ASYNC_ENVS = """
import sys
from lit_rl.algos.ppo import PPO
from lit_rl.cli import main

process_rollout, calls = PPO.process_rollout, []

def crash_on_the_second(self, rollout):
    calls.append(1)
    if len(calls) == 2:
        raise RuntimeError("boom in the second update")
    return process_rollout(self, rollout)

PPO.process_rollout = crash_on_the_second
main(sys.argv[1:])
"""


def test_a_crash_with_async_env_workers_ends_the_process(tmp_path: Path) -> None:
    """Async workers ignore preemption signals; a crash must still close them, or exit waits forever."""
    proc = _start(tmp_path, "--data.vectorization=async", "--data.num_envs=2", code=CRASH_WITH_ASYNC_ENVS)
    try:
        _, err = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the process did not exit within 90 s of the crash (async env workers left running)")
    assert proc.returncode == 1 and "boom in the second update" in err
