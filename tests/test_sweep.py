"""Sweeps: index -> run mapping, SLURM/PBS scripts that bash accepts and that pick the right run, the
local runner skipping finished runs, the study's full grid."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lit_rl.cli import run as run_cli
from lit_rl.envs.factory import check_env_id
from lit_rl.errors import ConfigError
from lit_rl.sweep import DONE, Grid, fit_args, main, pbs_script, run_local, slurm_script

ROOT = Path(__file__).parents[1]
STUDY_GRID = ROOT / "configs" / "sweeps" / "study.yaml"
QUICKSTART = ROOT / "configs" / "quickstart.yaml"


def _grid(tmp_path: Path, **changes) -> Path:
    spec = {
        "name": "tiny",
        "config": str(QUICKSTART),
        "env_id": "{game}",
        "games": ["CartPole-v1", "Acrobot-v1"],
        "agents": ["small", "big"],
        "seeds": [3, 5, 7],
        "run_dir": str(tmp_path / "runs" / "{agent}" / "{game}_{seed}"),
    } | changes
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_array_index_maps_to_game_agent_seed_in_product_order(tmp_path: Path) -> None:
    grid = Grid.load(_grid(tmp_path))
    expected = list(itertools.product(["CartPole-v1", "Acrobot-v1"], ["small", "big"], [3, 5, 7]))
    assert len(grid) == 12
    assert [(r.game, r.agent, r.seed) for r in grid.runs()] == expected
    run = grid.run(7)  # Acrobot-v1, small, 5
    assert run.run_dir == tmp_path / "runs" / "small" / "Acrobot-v1_5"
    args = run.command
    assert args[args.index("--data.env_id") + 1] == "Acrobot-v1"
    assert args[args.index("--seed_everything") + 1] == "5"
    assert args[args.index("--ckpt_path") + 1] == "last"  # a requeued job resumes its own run
    with pytest.raises(ConfigError, match="outside the grid"):
        grid.run(12)


def test_the_study_grid_is_56_games_by_5_agents_by_5_seeds_of_real_envs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the grid's paths are relative to where the jobs run: the repository
    grid = Grid.load(STUDY_GRID)
    assert (len(grid.games), grid.agents, grid.seeds) == (
        56,
        ["NA", "SWA", "CWRA", "CWCA", "CWRCA"],
        [0, 1, 10, 42, 1234],
    )
    assert len(grid) == 1400 and len({r.run_dir for r in grid.runs()}) == 1400
    for game in grid.games:
        check_env_id(f"{game}NoFrameskip-v4")
    last = grid.run(1399)
    assert (last.game, last.agent, last.seed) == (grid.games[-1], "CWRCA", 1234)


FAKE = """#!/bin/sh
echo "$(basename "$0") $*" >> "$FAKE_LOG"
"""


@pytest.mark.parametrize("scheduler", ["slurm", "pbs"])
def test_array_scripts_pass_bash_n_and_run_the_task_of_their_index(scheduler: str, tmp_path: Path) -> None:
    grid = Grid.load(_grid(tmp_path))
    text = slurm_script(grid, max_parallel=4) if scheduler == "slurm" else pbs_script(grid)
    script = tmp_path / f"array.{scheduler}"
    script.write_text(text)
    subprocess.run(["bash", "-n", str(script)], check=True)
    if scheduler == "slurm":
        assert "#SBATCH --array=0-11%4" in text and "#SBATCH --signal=USR1@120" in text and "#SBATCH --requeue" in text
    else:
        assert "#PBS -J 0-11" in text and "#PBS -r y" in text
    # Run the script as task 7 of the array with stand-ins for srun and lit-rl that record their arguments.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("srun", "lit-rl"):
        (bin_dir / name).write_text(FAKE if name == "lit-rl" else '#!/bin/sh\necho "srun" >> "$FAKE_LOG"\nexec "$@"\n')
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "calls.log"
    index = {"slurm": "SLURM_ARRAY_TASK_ID", "pbs": "PBS_ARRAY_INDEX"}[scheduler]
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_LOG": str(log), index: "7"}
    subprocess.run(["bash", str(script)], check=True, env=env, cwd=tmp_path)
    calls = log.read_text().splitlines()
    assert calls[-1] == "lit-rl " + " ".join(grid.run(7).command[1:])
    assert (calls[0] == "srun") == (scheduler == "slurm")


TRAPPING = """#!{python}
import os, signal, sys, time

def preempted(signum, frame):
    with open(os.environ["FAKE_LOG"], "a") as log:
        log.write("lit-rl got USR1\\n")
    sys.exit(138)

signal.signal(signal.SIGUSR1, preempted)
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write("started\\n")
while True:
    time.sleep(0.05)
"""


def _as_a_scheduler_starts_jobs() -> None:
    """Default disposition and unblocked SIGUSR1, whatever the test process inherited or set."""
    import signal

    signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})


def test_the_array_script_hands_the_schedulers_signal_to_lit_rl(tmp_path: Path) -> None:
    """No shell stays between the scheduler and lit-rl (a `bash -c` would die of SIGUSR1 and leave
    lit-rl without the signal): the script execs srun, which execs lit-rl."""
    import signal
    import time

    script = tmp_path / "array.slurm"
    script.write_text(slurm_script(Grid.load(_grid(tmp_path))))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text('#!/bin/sh\nexec "$@"\n')
    (bin_dir / "lit-rl").write_text(TRAPPING.format(python=sys.executable))
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    log = tmp_path / "calls.log"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_LOG": str(log), "SLURM_ARRAY_TASK_ID": "0"}
    proc = subprocess.Popen(
        ["bash", str(script)], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, preexec_fn=_as_a_scheduler_starts_jobs
    )
    deadline = time.monotonic() + 30
    while not (log.exists() and "started" in log.read_text()):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGUSR1)  # what SLURM sends the task ahead of its end
    assert proc.wait(timeout=30) == 138
    assert "lit-rl got USR1" in log.read_text()


TINY = ["--data.num_envs=2", "--data.num_steps=8", "--data.num_minibatches=2", "--model.total_env_steps=32"]
TINY += ["--data.eval_episodes=1", "--trainer.logger.init_args.save_dir=ignored"]


def test_local_runner_runs_two_tiny_jobs_and_skips_them_the_second_time(tmp_path: Path, capsys) -> None:
    path = _grid(tmp_path, games=["CartPole-v1"], agents=["a"], seeds=[1, 2], overrides=TINY[:-1])
    grid = Grid.load(path)
    first = run_local(grid, parallel=2)
    assert [r.seed for r in first["finished"]] == [1, 2] and not first["failed"], capsys.readouterr().out
    for run in grid.runs():
        assert (run.run_dir / DONE).is_file()
        assert (run.run_dir / "checkpoints" / "last.ckpt").is_file()  # logs and checkpoints in the run dir
        assert (run.run_dir / "evaluations.npz").is_file()
        config = yaml.safe_load((run.run_dir / "config.yaml").read_text())  # what lit-rl-analyze reads
        assert (config["seed_everything"], config["checkpoint"]["agent"]) == (run.seed, "a")

    def never(*args, **kwargs):
        raise AssertionError("a finished run was started again")

    second = run_local(grid, parallel=2, runner=never)
    assert [r.seed for r in second["skipped"]] == [1, 2] and not second["finished"]


def test_dry_run_prints_the_commands_of_unfinished_runs(tmp_path: Path, capsys) -> None:
    grid = Grid.load(_grid(tmp_path))
    grid.run(0).run_dir.mkdir(parents=True)
    (grid.run(0).run_dir / DONE).touch()
    capsys.readouterr()
    main(["local", str(_grid(tmp_path)), "--dry-run"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("lit-rl fit")]
    assert len(lines) == 11 and lines[0] == grid.run(1).shell()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"gamez": ["Pong"]}, "unknown key(s) gamez"),
        ({"overrides": "--model.total_env_steps=512"}, "expected a list of strings"),
        ({"games": ["CartPol-v1"]}, "unknown env id 'CartPol-v1'"),
        ({"name": "my study"}, "grid 'name'='my study'"),
        ({"seeds": [1, 1]}, "expected distinct non-negative integers"),
        ({"config": "configs/nope/{agent}.yaml"}, "do not exist: configs/nope/big.yaml, configs/nope/small.yaml"),
        ({"run_dir": "runs/{algo}/{seed}"}, "template field 'algo' unknown"),
    ],
)
def test_bad_grid_is_one_clear_line(change: dict, message: str, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["list", str(_grid(tmp_path, **change))])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lit-rl-sweep: error:") and message in err[0], err


def test_fit_args_of_one_run_in_process_put_everything_in_its_run_dir(tmp_path: Path) -> None:
    run_dir = tmp_path / "out" / "quick" / "seed_3"
    args = fit_args(QUICKSTART, run_dir, seed=3, resume=False, overrides=TINY[:-1])
    assert "--data.env_id" not in args and "--checkpoint.agent" not in args and "--ckpt_path" not in args
    cli = run_cli(args)
    assert Path(cli.trainer.log_dir) == run_dir
    assert (run_dir / "evaluations.npz").is_file() and (run_dir / DONE).is_file()
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["seed_everything"] == 3
    # Resumed: the finished run stops at once, at its budget, in the same directory.
    resumed = run_cli(fit_args(QUICKSTART, run_dir, seed=3, overrides=TINY[:-1]))
    assert Path(resumed.trainer.log_dir) == run_dir and int(resumed.model.env_steps) == 32
