"""The env-step progress bar and the run summary: format, resume, a disabled bar, the user's own bar, rank 0."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import math
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import TQDMProgressBar

from lit_rl.callbacks import progress
from lit_rl.callbacks.progress import (
    EnvStepProgressBar,
    RunSummary,
    format_duration,
    format_return,
    progress_line,
    summary_line,
)
from lit_rl.cli import run
from lit_rl.data.episodes import EvaluationEpisodes

QUICKSTART = str(Path(__file__).parents[2] / "configs" / "quickstart.yaml")
# CartPole, 2 envs x 16 steps = 32 env steps per rollout, 8 rollouts; evaluation and checkpoint every 128.
SHORT = [
    "--data.num_envs=2",
    "--data.num_steps=16",
    "--data.update_epochs=2",
    "--data.eval_episodes=2",
    "--model.total_env_steps=256",
    "--evaluation.every_n_env_steps=128",
    "--checkpoint.every_n_env_steps=128",
]


def _fit(save_dir: Path, *extra: str):
    return run(["fit", "--config", QUICKSTART, f"--trainer.logger.init_args.save_dir={save_dir}", *SHORT, *extra])


def _bar_states(out: str, total: int = 256) -> list[tuple[int, str]]:
    """(env steps, rest of the line) of every drawing of the bar in captured output."""
    bar = re.compile(rf"(\d[\d,]*)/{total:,} env steps( · [^\r\n]*)?")
    return [(int(m[1].replace(",", "")), m[2] or "") for m in bar.finditer(out)]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory):
    """A 256-step run with the default bar, and what it printed on stdout."""
    with contextlib.redirect_stdout(io.StringIO()) as out:
        cli = _fit(tmp_path_factory.mktemp("progress"))
    return cli, out.getvalue()


# -- format --------------------------------------------------------------------------------------


def test_progress_line_format_and_eta() -> None:
    # 350,496 steps left at 3,134.2 steps/s: 111.83 s -> 1:52.
    line = progress_line(149_504, 500_000, sps=3134.2, episode_return=318.4, eval_return=450.0)
    assert line == "149,504/500,000 env steps · 3,134 steps/s · return 318 · eval 450 · ETA 1:52"
    assert progress_line(0, 1000, sps=None, episode_return=math.nan, eval_return=None) == "0/1,000 env steps"
    # 9.8 M steps left at 1,000 steps/s: 9,800 s = 2 h 43 min 20 s.
    assert progress_line(200_000, 10_000_000, sps=1000.0, episode_return=-20.46, eval_return=None) == (
        "200,000/10,000,000 env steps · 1,000 steps/s · return -20.5 · ETA 2:43:20"
    )


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0:00"), (59.4, "0:59"), (116, "1:56"), (3600, "1:00:00"), (3723, "1:02:03")]
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(("value", "text"), [(318.4, "318"), (1234.6, "1,235"), (-20.46, "-20.5"), (0.257, "0.26")])
def test_format_return(value: float, text: str) -> None:
    assert format_return(value) == text


def test_summary_line_cases() -> None:
    results = EvaluationEpisodes(np.array([440.0, 460.0]), np.array([500, 500]))  # mean 450, std 10
    assert summary_line(500_000, 500_000, start_steps=0, seconds=160, evaluation=(500_000, results)) == (
        "Done: 500,000 env steps in 2:40 (3,125 steps/s); final evaluation: return 450.00 ± 10.00 "
        "(mean ± std over 2 episodes)"
    )
    # Resumed at 100,000: 400,000 steps in 200 s.
    assert summary_line(500_000, 500_000, start_steps=100_000, seconds=200, evaluation=None) == (
        "Done: 500,000 env steps (400,000 in this run) in 3:20 (2,000 steps/s)"
    )
    assert summary_line(300_000, 500_000, start_steps=0, seconds=100, evaluation=(200_000, results)) == (
        "Stopped at 300,000/500,000 env steps in 1:40 (3,000 steps/s); evaluation at 200,000 env steps: "
        "return 450.00 ± 10.00 (mean ± std over 2 episodes)"
    )


# -- in a run ------------------------------------------------------------------------------------


def test_default_bar_counts_env_steps_once_per_run_and_shows_the_evaluation(fresh) -> None:
    cli, out = fresh
    assert isinstance(cli.trainer.progress_bar_callback, EnvStepProgressBar)
    assert "Epoch" not in out
    states = _bar_states(out)
    steps = [s for s, _ in states]
    assert steps[0] == 0 and steps[-1] == 256
    assert steps == sorted(steps)  # one bar, never reset
    assert set(steps) == set(range(0, 257, 32))  # redrawn after every rollout of 32 env steps
    first_eval = np.load(Path(cli.trainer.log_dir) / "evaluations.npz")["results"][0].mean()
    shown = {float(m) for s, rest in states for m in re.findall(r"eval (-?[\d.]+)", rest)}
    assert all(s >= 128 for s, rest in states if "eval" in rest)  # none before the first evaluation
    assert any(abs(v - first_eval) <= 0.05 for v in shown), (shown, first_eval)


def test_summary_closes_the_run_with_the_final_evaluation(fresh) -> None:
    cli, out = fresh
    npz = np.load(Path(cli.trainer.log_dir) / "evaluations.npz")
    assert list(npz["timesteps"]) == [128, 256]
    final = npz["results"][-1]
    expected = f"final evaluation: return {final.mean():.2f} ± {final.std():.2f} (mean ± std over 2 episodes)"
    summary = [line for line in out.splitlines() if line.startswith("Done: ")]
    assert len(summary) == 1 and summary[0].endswith(expected), summary
    assert re.match(r"Done: 256 env steps in \d+:\d\d \([\d,]+ steps/s\);", summary[0])


def test_resumed_run_starts_the_bar_at_the_checkpoint_step(fresh, tmp_path: Path, capsys) -> None:
    cli, _ = fresh
    (ckpt,) = Path(cli.trainer.log_dir, "checkpoints").glob("*_128_steps.ckpt")
    capsys.readouterr()
    _fit(tmp_path, f"--ckpt_path={ckpt}")
    out = capsys.readouterr().out
    steps = [s for s, _ in _bar_states(out)]
    assert steps[0] == 128 and steps[-1] == 256 and steps == sorted(steps)
    assert "Done: 256 env steps (128 in this run) in " in out


def test_disabled_bar_still_prints_the_summary(tmp_path: Path, capsys) -> None:
    cli = _fit(tmp_path, "--trainer.enable_progress_bar=false", "--evaluation.every_n_env_steps=0")
    out = capsys.readouterr().out
    assert cli.trainer.progress_bar_callback is None
    assert _bar_states(out) == []
    assert re.search(r"^Done: 256 env steps in \d+:\d\d \([\d,]+ steps/s\); final evaluation: return ", out, re.M)


def test_a_progress_bar_chosen_in_the_config_replaces_the_default(tmp_path: Path, capsys) -> None:
    cli = _fit(tmp_path, "--trainer.callbacks+=lightning.pytorch.callbacks.TQDMProgressBar")
    out = capsys.readouterr().out
    assert type(cli.trainer.progress_bar_callback) is TQDMProgressBar  # Lightning's, and only one bar
    assert "Done: 256 env steps in " in out


def test_rich_bar_counts_env_steps(tmp_path: Path, capsys) -> None:
    pytest.importorskip("rich")
    from rich import get_console

    from lit_rl.callbacks.progress import EnvStepRichProgressBar

    cli = _fit(
        tmp_path,
        "--trainer.callbacks+=lit_rl.callbacks.EnvStepRichProgressBar",
        '--trainer.callbacks.console_kwargs={"record": true, "width": 200}',
    )
    bar = cli.trainer.progress_bar_callback
    assert isinstance(bar, EnvStepRichProgressBar)
    task = bar.progress.tasks[bar.train_progress_bar_id]
    assert (task.completed, task.total) == (256, 256)
    assert task.description.startswith("256/256 env steps · ")
    shown = get_console().export_text()  # the console Lightning configured from console_kwargs
    assert re.search(r"100% \S+ 256/256 env steps · [\d,]+ steps/s · return ", shown), shown[-500:]
    assert "Epoch" not in shown and "ep_return" not in shown  # Lightning's epoch counter and metrics column
    assert "Done: 256 env steps in " in capsys.readouterr().out


# -- DDP: rank 0 only ----------------------------------------------------------------------------


def test_two_rank_ddp_run_draws_one_bar_and_one_summary(tmp_path: Path) -> None:
    """2 CPU processes (gloo), 64 env steps per rollout over both ranks: rank 1 draws and prints nothing."""
    cmd = [sys.executable, "-m", "lit_rl", "fit", "--config", QUICKSTART, "--trainer.strategy=ddp"]
    cmd += ["--trainer.devices=2", "--trainer.accelerator=cpu", f"--trainer.logger.init_args.save_dir={tmp_path}"]
    cmd += [*SHORT, "--model.total_env_steps=512", "--evaluation.every_n_env_steps=0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    steps = [s for s, _ in _bar_states(proc.stdout, total=512)]
    assert steps.count(0) == 1  # the first drawing, once: one bar
    assert set(steps) == set(range(0, 513, 64))  # global env steps: both ranks counted
    assert proc.stdout.count("Done: 512 env steps in ") == 1


def _fake(rank: int):
    trainer = SimpleNamespace(is_global_zero=rank == 0, callbacks=[])
    module = SimpleNamespace(
        env_steps=torch.tensor(4096),
        total_env_steps=8192,
        end_env_steps=8192,
        latest_episode_return=21.0,
        budget_reached=False,
    )
    return trainer, module


@pytest.mark.parametrize("rank", [0, 1])
def test_only_global_rank_zero_draws_the_bar_and_prints_the_summary(rank: int, capsys) -> None:
    trainer, module = _fake(rank)
    bar = EnvStepProgressBar()
    bar.setup(trainer, module, "fit")
    bar.on_train_start(trainer, module)
    bar.on_train_epoch_end(trainer, module)
    bar.on_train_end(trainer, module)
    summary = RunSummary()
    summary.on_train_start(trainer, module)
    summary.on_fit_end(trainer, module)
    out = capsys.readouterr().out
    if rank == 0:
        assert "4,096/8,192 env steps · return 21.0" in out
        assert "Stopped at 4,096/8,192 env steps (0 in this run) in 0:00" in out
    else:
        assert out == ""


def test_rate_and_eta_count_only_the_steps_of_this_process(monkeypatch, capsys) -> None:
    """Resumed at 4,096: 2,048 more steps in 2 s are 1,024 steps/s, and 2,048 steps left take 0:02."""
    clock = [100.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: clock[0])
    trainer, module = _fake(0)
    bar = EnvStepProgressBar()
    bar.setup(trainer, module, "fit")
    bar.on_train_start(trainer, module)
    module.env_steps, clock[0] = torch.tensor(6144), 101.0
    bar.on_train_batch_end(trainer, module, None, None, 0)  # a rollout collected: its steps are shown at once
    assert capsys.readouterr().out.endswith("6,144/8,192 env steps · return 21.0")  # no rate before an update ends
    clock[0] = 102.0
    bar.on_train_epoch_end(trainer, module)
    bar.on_train_end(trainer, module)
    assert "6,144/8,192 env steps · 1,024 steps/s · return 21.0 · ETA 0:02" in capsys.readouterr().out


def test_rich_bar_keeps_one_env_step_task_across_epochs() -> None:
    pytest.importorskip("rich")
    from lit_rl.callbacks.progress import EnvStepRichProgressBar

    trainer, module = _fake(0)
    bar = EnvStepRichProgressBar(console_kwargs={"width": 200})
    trainer.num_training_batches, trainer.current_epoch, trainer.progress_bar_callback = 8, 0, bar
    trainer.state, trainer.sanity_checking, trainer.training = SimpleNamespace(fn="fit"), False, True
    handler = logging.StreamHandler(sys.__stderr__)  # as Lightning's own, made at import
    logging.getLogger("lightning.pytorch").addHandler(handler)
    bar.setup(trainer, module, "fit")
    bar.on_train_start(trainer, module)
    try:
        assert handler.stream is sys.stderr  # where rich's live display prints above the bar
        bar.on_train_epoch_start(trainer, module)  # Lightning's would start an "Epoch 0" task of 8 batches
        task = bar.progress.tasks[bar.train_progress_bar_id]
        assert (task.description, task.completed, task.total) == ("4,096/8,192 env steps · return 21.0", 4096, 8192)
        module.env_steps = torch.tensor(6144)
        bar.on_train_batch_end(trainer, module, None, None, 0)
        assert task.description.startswith("6,144/8,192 env steps") and task.completed == 6144
    finally:
        bar.on_train_end(trainer, module)
        logging.getLogger("lightning.pytorch").removeHandler(handler)
    assert handler.stream is sys.__stderr__  # given back


def test_a_rich_bar_without_rich_is_one_clear_line(monkeypatch, capsys) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "rich" else real(name, *a))
    with pytest.raises(SystemExit) as exit_info:
        run(["fit", "--config", QUICKSTART, "--trainer.callbacks+=lit_rl.callbacks.EnvStepRichProgressBar"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        "lit-rl: error: trainer.callbacks: lit_rl.callbacks.EnvStepRichProgressBar needs the rich package "
        "(pip install rich); without it, leave out the callback for the default bar, "
        "lit_rl.callbacks.EnvStepProgressBar"
    )


def test_lightning_log_lines_go_through_the_tqdm_bar_while_it_is_shown(capsys) -> None:
    trainer, module = _fake(0)
    logger = logging.getLogger("lightning.pytorch")
    handler = logging.StreamHandler(sys.stdout)  # a console handler, as Lightning's own
    logger.addHandler(handler)
    bar = EnvStepProgressBar()
    bar.setup(trainer, module, "fit")
    try:
        bar.on_train_start(trainer, module)
        assert handler not in logger.handlers  # replaced by tqdm's, which clears the bar, writes, redraws it
        logger.warning("Evaluation at 4,096 env steps")
        bar.on_train_end(trainer, module)
        assert handler in logger.handlers  # given back
    finally:
        logger.removeHandler(handler)
    captured = capsys.readouterr()
    assert (captured.out + captured.err).count("Evaluation at 4,096 env steps\n") == 1
