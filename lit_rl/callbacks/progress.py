"""Progress in env steps: one bar per run, and a one-line summary at the end of ``fit``.

Lightning's bars count epochs and minibatches (one epoch is one rollout here: "Epoch 291: 8/8"). These
count env steps over all processes, from the step a run resumes at::

     30%|█████▉              | 149,504/500,000 env steps · 3,134 steps/s · return 318 · eval 450 · ETA 1:52

``steps/s`` is the wall-clock rate since this process started training, to the end of the latest
update (rollouts, updates, evaluations and checkpoints); ``return`` the mean raw return of the episodes
that ended in the latest rollout (of rank 0 under DDP); ``eval`` the mean return of the latest evaluation
(:class:`lit_rl.callbacks.evaluation.Evaluation`). :class:`EnvStepProgressBar` draws it with tqdm (the
CLI's default), :class:`EnvStepRichProgressBar` with rich; both are Lightning progress bars (shown on
global rank 0 only). :class:`RunSummary` prints the summary on global rank 0, with or without a bar::

    Done: 500,000 env steps in 2:40 (3,125 steps/s); final evaluation: return 450.20 ± 30.10 (mean ± std ...)
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from lit_rl.callbacks.evaluation import Evaluation
from lit_rl.data.episodes import EvaluationEpisodes

#: tqdm's layout: percentage, bar, then the text of :func:`progress_line`.
BAR_FORMAT = "{percentage:3.0f}%|{bar:20}| {desc}"


def format_duration(seconds: float) -> str:
    """``116`` → ``"1:56"``, ``3723`` → ``"1:02:03"`` (rounded to whole seconds)."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_return(value: float) -> str:
    """Three significant digits, at least units: ``318.4`` → ``"318"``, ``-20.46`` → ``"-20.5"``,
    ``1234.5`` → ``"1,234"``."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def progress_line(
    env_steps: int, total: int, *, sps: float | None, episode_return: float, eval_return: float | None
) -> str:
    """``"149,504/500,000 env steps · 3,134 steps/s · return 318 · eval 450 · ETA 1:52"``.

    Fields without a value yet are left out: the rate and ETA before the first rollout of this process,
    the return before the first episode ends (``nan``), the evaluation before the first one.
    """
    parts = [f"{env_steps:,}/{total:,} env steps"]
    if sps is not None and sps > 0:
        parts.append(f"{sps:,.0f} steps/s")
    if not math.isnan(episode_return):
        parts.append(f"return {format_return(episode_return)}")
    if eval_return is not None:
        parts.append(f"eval {format_return(eval_return)}")
    if sps is not None and sps > 0:
        parts.append(f"ETA {format_duration(max(total - env_steps, 0) / sps)}")
    return " · ".join(parts)


def summary_line(
    env_steps: int, total: int, *, start_steps: int, seconds: float, evaluation: tuple[int, EvaluationEpisodes] | None
) -> str:
    """``"Done: 500,000 env steps in 2:40 (3,125 steps/s); final evaluation: return 450.20 ± ..."``.

    A resumed run also gives the steps of this process (``"(350,496 in this run)"``); a run stopped
    before its budget (preempted) starts with ``"Stopped at <steps>/<total> env steps"``; the evaluation
    is "final" when it was at the last step, else its step is given.
    """
    done = env_steps >= total
    head = f"Done: {env_steps:,} env steps" if done else f"Stopped at {env_steps:,}/{total:,} env steps"
    if start_steps > 0:
        head += f" ({env_steps - start_steps:,} in this run)"
    rate = (env_steps - start_steps) / seconds if seconds > 0 else 0.0
    line = f"{head} in {format_duration(seconds)} ({rate:,.0f} steps/s)"
    if evaluation is not None:
        at, results = evaluation
        label = "final evaluation" if done and at == env_steps else f"evaluation at {at:,} env steps"
        line += f"; {label}: {results.summary()}"
    return line


def latest_evaluation(trainer: L.Trainer) -> tuple[int, EvaluationEpisodes] | None:
    """The env step and results of the latest evaluation of the trainer's :class:`Evaluation`, if any."""
    for callback in trainer.callbacks:
        if isinstance(callback, Evaluation) and callback.timesteps:
            return callback.timesteps[-1], EvaluationEpisodes(callback.results[-1], callback.ep_lengths[-1])
    return None


#: Where Lightning's log lines (and lit_rl's, which go through Lightning's loggers) are handled.
LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric")


class _Clock:
    """Env steps and wall time since this process started training; the rate is taken at the end of
    each update (collection + update + callbacks), so a redraw in the middle of one does not inflate it."""

    def __init__(self, pl_module: L.LightningModule) -> None:
        self.start_steps = int(pl_module.env_steps)
        self.start_time = time.perf_counter()
        self.sps: float | None = None

    def tick(self, pl_module: L.LightningModule) -> None:
        """Take the rate (at the end of an update)."""
        done, elapsed = int(pl_module.env_steps) - self.start_steps, time.perf_counter() - self.start_time
        self.sps = done / elapsed if done > 0 and elapsed > 0 else None

    def line(self, trainer: L.Trainer, pl_module: L.LightningModule) -> str:
        evaluation = latest_evaluation(trainer)
        return progress_line(
            int(pl_module.env_steps),
            int(pl_module.end_env_steps),
            sps=self.sps,
            episode_return=float(pl_module.latest_episode_return),
            eval_return=float(evaluation[1].returns.mean()) if evaluation is not None else None,
        )


class _OneBarPerRun:
    """The hooks both env-step bars share: one bar for the whole run, redrawn when a rollout starts and
    when its update ends. Each bar sets ``_clock`` in ``on_train_start`` and draws itself in its ``_show``."""

    _clock: _Clock | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, *_: Any) -> None:
        pass  # one bar for the whole run, not one per epoch

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if batch_idx == 0:  # a new rollout: show its steps at once
            self._show(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._clock is not None:
            self._clock.tick(pl_module)
        self._show(trainer, pl_module)


class EnvStepProgressBar(_OneBarPerRun, TQDMProgressBar):
    """Lightning's tqdm bar, counting env steps over the whole run (see the module docstring).

    While the bar is shown, Lightning's log lines (evaluations, checkpoints) are written above it
    instead of through it. Validation and test runs keep Lightning's bars.

    Args:
        refresh_rate: 0 hides the bar; otherwise it is redrawn when a rollout is collected and when its
            update ends.
        process_position: As Lightning's (several bars in one terminal).
    """

    def __init__(self, refresh_rate: int = 1, process_position: int = 0) -> None:
        super().__init__(refresh_rate=refresh_rate, process_position=process_position, leave=False)
        self._clock: _Clock | None = None
        self._redirect = contextlib.ExitStack()

    def init_train_tqdm(self) -> Tqdm:
        return Tqdm(
            position=2 * self.process_position,
            disable=self.is_disabled,
            leave=True,
            dynamic_ncols=True,
            file=sys.stdout,
            bar_format=BAR_FORMAT,
        )

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._clock = _Clock(pl_module)
        self.train_progress_bar = self.init_train_tqdm()
        if self.is_enabled:
            loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
            self._redirect.enter_context(logging_redirect_tqdm(loggers=loggers, tqdm_class=Tqdm))
        self._show(trainer, pl_module)

    def on_train_end(self, *_: Any) -> None:
        self.train_progress_bar.close()
        self._redirect.close()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._redirect.close()

    def _show(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        bar = self.train_progress_bar
        if bar.disable or self._clock is None:
            return
        bar.total = int(pl_module.end_env_steps)
        bar.n = min(int(pl_module.env_steps), bar.total)
        bar.set_description_str(self._clock.line(trainer, pl_module), refresh=False)
        bar.refresh()


class EnvStepRichProgressBar(_OneBarPerRun, RichProgressBar):
    """Lightning's rich bar, counting env steps over the whole run (see the module docstring); needs ``rich``.

    Select it with ``--trainer.callbacks+=lit_rl.callbacks.EnvStepRichProgressBar``. Validation and test
    runs keep Lightning's bars.

    Args:
        refresh_rate: Redraws per second (Lightning's meaning); 0 hides the bar.
        console_kwargs: Passed to rich's ``Console`` (as Lightning's).
    """

    def __init__(self, refresh_rate: int = 10, console_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__(refresh_rate=refresh_rate, leave=False, console_kwargs=console_kwargs)
        self._clock: _Clock | None = None
        self._redirect = contextlib.ExitStack()

    def configure_columns(self, trainer: L.Trainer) -> list:
        from lightning.pytorch.callbacks.progress.rich_progress import CustomBarColumn
        from rich.progress import TextColumn

        bar = CustomBarColumn(
            complete_style=self.theme.progress_bar,
            finished_style=self.theme.progress_bar_finished,
            pulse_style=self.theme.progress_bar_pulse,
        )
        return [TextColumn("{task.percentage:>3.0f}%"), bar, TextColumn("{task.description}")]

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._clock = _Clock(pl_module)
        if self.is_enabled and self.progress is not None:
            total, env_steps = int(pl_module.end_env_steps), int(pl_module.env_steps)
            line = self._clock.line(trainer, pl_module)
            self.train_progress_bar_id = self.progress.add_task(line, total=total, completed=env_steps)
            self.refresh()
            # rich's live display replaces sys.stdout/stderr to print above the bar; Lightning's log
            # handlers hold the original streams: point them at the replacements while the bar is shown.
            for name in LIGHTNING_LOGGERS:
                for handler in logging.getLogger(name).handlers:
                    if type(handler) is logging.StreamHandler and handler.stream in (sys.__stderr__, sys.__stdout__):
                        replacement = sys.stderr if handler.stream is sys.__stderr__ else sys.stdout
                        self._redirect.callback(handler.setStream, handler.setStream(replacement))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.progress is not None:  # before the run summary (Lightning stops it only at teardown)
            self.progress.stop()
        self._redirect.close()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        super().on_exception(trainer, pl_module, exception)
        self._redirect.close()

    def _show(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.is_disabled or self.progress is None or self.train_progress_bar_id is None or self._clock is None:
            return
        total = int(pl_module.end_env_steps)
        self.progress.update(
            self.train_progress_bar_id,
            total=total,
            completed=min(int(pl_module.env_steps), total),
            description=self._clock.line(trainer, pl_module),
        )
        self.refresh()


class RunSummary(L.Callback):
    """Prints :func:`summary_line` at the end of ``fit``, on global rank 0, with or without a progress bar.

    The CLI always adds it.
    """

    def __init__(self) -> None:
        self._start: tuple[float, int] | None = None
        self.line: str | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = (time.perf_counter(), int(pl_module.env_steps))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._start is None or not trainer.is_global_zero:
            return
        start_time, start_steps = self._start
        self.line = summary_line(
            int(pl_module.env_steps),
            int(pl_module.end_env_steps),
            start_steps=start_steps,
            seconds=time.perf_counter() - start_time,
            evaluation=latest_evaluation(trainer),
        )
        print(self.line, flush=True)
