"""Sweeps: a grid YAML (games × agents × seeds, plus overrides) → one ``lit-rl fit`` command per run,
submitted as a SLURM or PBS Pro job array, or run here with a given parallelism.

The scheduler does the scheduling; this module only numbers the runs and writes the commands. Every
command resumes its own run directory (``--ckpt_path last``), so a requeued or re-submitted job goes
on where it stopped, and a run counts as finished when its directory holds the ``DONE`` marker that
``lit-rl fit`` writes when the run reaches its budget. The scheduler starts ``lit-rl`` itself (no
shell in between), so its preemption signals reach it.

Grid YAML::

    name: study                                   # job name and default run root runs/<name>
    config: configs/study/{agent}.yaml            # per-run config (fields {game}, {agent}, {seed})
    env_id: "{game}NoFrameskip-v4"                # optional; default "{game}"
    games: [Alien, Amidar]
    agents: [NA, CWRA]
    seeds: [0, 1]
    overrides: ["--trainer.precision=bf16-mixed"] # optional, appended to every command
    run_dir: runs/study/{agent}/{game}_{seed}     # optional; default runs/<name>/{agent}/{game}_{seed}
    slurm: ["--time=24:00:00", "--gres=gpu:1"]    # optional #SBATCH lines
    pbs: ["-l walltime=24:00:00", "-l select=1:ngpus=1"]  # optional #PBS lines

Array index ``i`` is run ``(games[i // (A·S)], agents[(i // S) % A], seeds[i % S])``.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lit_rl.callbacks.checkpoint import DONE
from lit_rl.envs.factory import check_env_id
from lit_rl.errors import ConfigError

GRID_KEYS = {"name", "config", "env_id", "games", "agents", "seeds", "overrides", "run_dir", "slurm", "pbs"}


@dataclass(frozen=True)
class Run:
    """One run of a grid: its array index, coordinates, directory and command."""

    index: int
    game: str
    agent: str
    seed: int
    run_dir: Path
    command: list[str]

    @property
    def done(self) -> bool:
        return (self.run_dir / DONE).is_file()

    def shell(self) -> str:
        """The command as one shell line."""
        return shlex.join(self.command)


@dataclass(frozen=True)
class Grid:
    """A parsed grid YAML; :meth:`runs` expands it."""

    name: str
    config: str
    games: list[str]
    agents: list[str]
    seeds: list[int]
    env_id: str = "{game}"
    overrides: list[str] = field(default_factory=list)
    run_dir: str | None = None
    slurm: list[str] = field(default_factory=list)
    pbs: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: str | Path) -> Grid:
        """Read and check a grid YAML; raise :class:`ConfigError` naming a bad or missing key."""
        try:
            data: dict[str, Any] = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"cannot read the grid {path}: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"the grid {path} is not a YAML mapping")
        unknown = sorted(set(data) - GRID_KEYS)
        if unknown:
            raise ConfigError(f"unknown key(s) {', '.join(unknown)} in the grid {path}; expected {sorted(GRID_KEYS)}")
        for key in ("config", "games", "agents", "seeds"):
            if not data.get(key):
                raise ConfigError(f"the grid {path} needs a non-empty '{key}'")
        data.setdefault("name", Path(path).stem)
        grid = cls(**data)
        grid.check()
        return grid

    def check(self) -> None:
        if not isinstance(self.overrides, list) or not all(isinstance(o, str) for o in self.overrides):
            raise ConfigError(f"grid 'overrides'={self.overrides!r}; expected a list of strings like ['--a.b=1']")
        if not re.fullmatch(r"[\w.-]+", self.name):
            raise ConfigError(f"grid 'name'={self.name!r}; use letters, digits, '.', '-' and '_' (it names the jobs)")
        for key in ("games", "agents"):
            values = getattr(self, key)
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise ConfigError(f"grid '{key}'={values!r}; expected a list of names")
            if len(set(values)) != len(values):
                raise ConfigError(f"grid '{key}' lists a value twice: {values}")
        if len(set(self.seeds)) != len(self.seeds) or not all(isinstance(s, int) and s >= 0 for s in self.seeds):
            raise ConfigError(f"grid 'seeds'={self.seeds}; expected distinct non-negative integers")
        try:
            self._format(self.config, self.games[0], self.agents[0], self.seeds[0])
            self._format(self.env_id, self.games[0], self.agents[0], self.seeds[0])
            self._format(self.run_dir or "", self.games[0], self.agents[0], self.seeds[0])
        except (KeyError, IndexError) as err:
            raise ConfigError(f"grid template field {err} unknown; use {{game}}, {{agent}} and {{seed}}") from None
        missing = sorted({self._format(self.config, g, a, 0) for g in self.games[:1] for a in self.agents})
        missing = [c for c in missing if not Path(c).is_file()]
        if missing:
            raise ConfigError(
                f"grid 'config' names files that do not exist: {', '.join(missing)} (paths are relative to the "
                f"directory the jobs run in, {Path.cwd()})"
            )
        for game in self.games:
            check_env_id(self._format(self.env_id, game, self.agents[0], self.seeds[0]))

    def __len__(self) -> int:
        return len(self.games) * len(self.agents) * len(self.seeds)

    @staticmethod
    def _format(template: str, game: str, agent: str, seed: int) -> str:
        return template.format(game=game, agent=agent, seed=seed)

    def run(self, index: int) -> Run:
        """Run ``index`` of the array (see the module docstring for the order)."""
        if not 0 <= index < len(self):
            raise ConfigError(f"array index {index} is outside the grid's 0..{len(self) - 1}")
        per_game = len(self.agents) * len(self.seeds)
        game = self.games[index // per_game]
        agent = self.agents[(index // len(self.seeds)) % len(self.agents)]
        seed = self.seeds[index % len(self.seeds)]
        template = self.run_dir or f"runs/{self.name}/{{agent}}/{{game}}_{{seed}}"
        run_dir = Path(self._format(template, game, agent, seed))
        command = [
            "lit-rl",
            *fit_args(
                self._format(self.config, game, agent, seed),
                run_dir,
                seed=seed,
                env_id=self._format(self.env_id, game, agent, seed),
                agent=agent,
                overrides=self.overrides,
            ),
        ]
        return Run(index, game, agent, seed, run_dir, command)

    def runs(self) -> list[Run]:
        return [self.run(i) for i in range(len(self))]


def fit_args(
    config: str | Path,
    run_dir: str | Path,
    *,
    seed: int,
    env_id: str | None = None,
    agent: str | None = None,
    resume: bool = True,
    overrides: Sequence[str] = (),
) -> list[str]:
    """The arguments of ``lit-rl fit`` (for :func:`lit_rl.cli.main`) of one run in ``run_dir``.

    The logger's save_dir/name/version spell out ``run_dir``, so checkpoints, ``evaluations.npz``, the
    TensorBoard events and ``config.yaml`` land in it; with ``resume`` the run continues from its own
    ``last.ckpt`` (``--ckpt_path last``; a new run starts fresh, a finished one stops at once).
    ``env_id`` and ``agent`` (the checkpoint file names' agent) are left to the config when ``None``;
    ``overrides`` come last.
    """
    run_dir = Path(run_dir)
    args = ["fit", "--config", str(config)]
    if env_id is not None:
        args += ["--data.env_id", env_id]
    args += [
        "--seed_everything",
        str(seed),
        "--trainer.logger.init_args.save_dir",
        str(run_dir.parent.parent),
        "--trainer.logger.init_args.name",
        run_dir.parent.name,
        "--trainer.logger.init_args.version",
        run_dir.name,
        "--trainer.default_root_dir",
        str(run_dir),
    ]
    if agent is not None:
        args += ["--checkpoint.agent", agent]
    args += ["--trainer.enable_progress_bar", "false"]
    if resume:
        args += ["--ckpt_path", "last"]
    return [*args, *overrides]


def slurm_script(grid: Grid, *, max_parallel: int | None = None, log_dir: str = "logs") -> str:
    """An ``sbatch`` array script: one task per run, requeued on preemption (SIGUSR1 120 s before)."""
    limit = f"%{max_parallel}" if max_parallel else ""
    directives = [
        f"--job-name={grid.name}",
        f"--array=0-{len(grid) - 1}{limit}",
        f"--output={log_dir}/{grid.name}_%A_%a.out",
        "--signal=USR1@120",  # lit-rl finishes the update, checkpoints, requeues itself
        "--requeue",
        "--ntasks=1",
        *grid.slurm,
    ]
    header = "\n".join(f"#SBATCH {d}" for d in directives)
    return _script("#!/bin/bash\n" + header, grid, "SLURM_ARRAY_TASK_ID", "srun ", log_dir)


def pbs_script(grid: Grid, *, log_dir: str = "logs") -> str:
    """A PBS Pro array script (``qsub -J``); rerunnable, so a preempted subjob starts again and resumes."""
    directives = [f"-N {grid.name[:15]}", f"-J 0-{len(grid) - 1}", "-r y", "-V", f"-o {log_dir}/", "-j oe", *grid.pbs]
    header = "\n".join(f"#PBS {d}" for d in directives)
    body = _script("#!/bin/bash\n" + header, grid, "PBS_ARRAY_INDEX", "", log_dir)
    return body.replace("set -euo pipefail\n", 'set -euo pipefail\ncd "${PBS_O_WORKDIR:-.}"\n', 1)


def _script(header: str, grid: Grid, index_var: str, launcher: str, log_dir: str) -> str:
    lines = [header, f"# {len(grid)} runs of {grid.name}: games x agents x seeds =", ""]
    lines[1] += f" {len(grid.games)} x {len(grid.agents)} x {len(grid.seeds)}; generated by lit-rl-sweep"
    lines += ["set -euo pipefail", f"mkdir -p {shlex.quote(log_dir)}", "RUNS=("]
    lines += [f"  {shlex.quote(run.shell())}  # {run.index}: {run.game} {run.agent} {run.seed}" for run in grid.runs()]
    lines += [")", f'RUN="${{RUNS[${index_var}]}}"', f'echo "run ${index_var}: $RUN"']
    # exec, no `bash -c`: the scheduler's signals (preemption) go to lit-rl itself.
    lines += [f'eval "exec {launcher}$RUN"', ""]
    return "\n".join(lines)


def run_local(grid: Grid, *, parallel: int = 1, dry_run: bool = False, runner=subprocess.run) -> dict[str, list[Run]]:
    """Run the grid's unfinished runs here, ``parallel`` at a time; each run's output goes to
    ``<run_dir>/lit-rl.log``. Returns the runs that were ``skipped`` (done), ``finished`` and ``failed``."""
    todo = [run for run in grid.runs() if not run.done]
    result: dict[str, list[Run]] = {"skipped": [r for r in grid.runs() if r.done], "finished": [], "failed": []}
    if dry_run:
        for run in todo:
            print(run.shell())
        return result

    # lit-rl from this interpreter's environment, activated or not.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}

    def execute(run: Run) -> tuple[Run, int]:
        run.run_dir.mkdir(parents=True, exist_ok=True)
        with open(run.run_dir / "lit-rl.log", "ab") as log:
            status = runner(run.command, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
        return run, status

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        for run, status in pool.map(execute, todo):
            result["finished" if status == 0 else "failed"].append(run)
            print(
                f"[{time.strftime('%H:%M:%S')}] run {run.index} ({run.game} {run.agent} {run.seed}): "
                f"{'finished' if status == 0 else f'failed with status {status}, see {run.run_dir}/lit-rl.log'}"
            )
    return result


def main(argv: Sequence[str] | None = None) -> None:
    """``lit-rl-sweep``: list a grid, write its SLURM or PBS array script, or run it here."""
    parser = argparse.ArgumentParser(prog="lit-rl-sweep", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("list", help="print index, game, agent, seed, state and command of every run")
    show.add_argument("grid")
    for name, scheduler in (("slurm", "SLURM (sbatch)"), ("pbs", "PBS Pro (qsub)")):
        script = sub.add_parser(name, help=f"write the {scheduler} array script")
        script.add_argument("grid")
        script.add_argument("--out", help="file to write (default: print it)")
        script.add_argument("--log-dir", default="logs", help="scheduler output directory (default: logs)")
        if name == "slurm":
            script.add_argument("--max-parallel", type=int, help="at most this many array tasks at once")
    local = sub.add_parser("local", help="run the unfinished runs here; finished ones are skipped")
    local.add_argument("grid")
    local.add_argument("--parallel", type=int, default=1, help="runs at once (default 1)")
    local.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args(argv)
    try:
        _run_command(args, Grid.load(args.grid))
    except ConfigError as err:
        print(f"lit-rl-sweep: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except BrokenPipeError:  # `lit-rl-sweep list … | head`: the reader left, nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _run_command(args: argparse.Namespace, grid: Grid) -> None:
    if args.command == "list":
        for run in grid.runs():
            state = "done" if run.done else "todo"
            print(f"{run.index}\t{run.game}\t{run.agent}\t{run.seed}\t{state}\t{run.shell()}")
    elif args.command in ("slurm", "pbs"):
        if args.command == "slurm":
            text = slurm_script(grid, max_parallel=args.max_parallel, log_dir=args.log_dir)
        else:
            text = pbs_script(grid, log_dir=args.log_dir)
        Path(args.log_dir).mkdir(parents=True, exist_ok=True)  # the scheduler writes there before the job runs
        if not args.out:
            sys.stdout.write(text)
            return
        Path(args.out).write_text(text)
        submit = "sbatch" if args.command == "slurm" else "qsub"
        print(f"wrote {args.out} ({len(grid)} runs); submit with: {submit} {args.out}")
    else:
        result = run_local(grid, parallel=args.parallel, dry_run=args.dry_run)
        done, finished, failed = (len(result[k]) for k in ("skipped", "finished", "failed"))
        print(f"{done} already done, {finished} finished, {failed} failed")
        if failed:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
