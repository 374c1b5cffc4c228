"""The ``lit-rl`` command: one LightningCLI over :class:`PPO` and :class:`RolloutDataModule`.

Pattern of ``microsoft/torchgeo:torchgeo/main.py``: ``main(args)`` so tests pass a list.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.util
import re
import sys
import warnings
from pathlib import Path
from typing import Any, NoReturn

from lightning.pytorch.callbacks import ProgressBar, RichProgressBar
from lightning.pytorch.cli import ArgsType, LightningArgumentParser
from lightning.pytorch.trainer import Trainer
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from lit_rl._lightning_compat import ConfigFirstLightningCLI
from lit_rl.algos.ppo import PPO
from lit_rl.callbacks import EnvStepCheckpoint, EnvStepProgressBar, Evaluation, Preemption, RunSummary
from lit_rl.data.datamodule import RolloutDataModule
from lit_rl.errors import ConfigError, NonFiniteError
from lit_rl.resume import SPECIAL_CKPT_PATHS, check_writable, load_checkpoint, prepare_resume

TRAINER_DEFAULTS = {
    "max_epochs": -1,  # one epoch is one rollout; PPO stops at model.total_env_steps
    "enable_checkpointing": False,  # checkpoints are written by EnvStepCheckpoint (--checkpoint.*)
    "logger": {"class_path": "lightning.pytorch.loggers.TensorBoardLogger", "init_args": {"save_dir": "runs"}},
}


#: Class paths offered when a class path does not import.
KNOWN_CLASSES = {
    "model.extractor": [
        f"lit_rl.models.extractors.{path}"
        for path in (
            "mlp.MLP",
            "nature_cnn.NatureCNN",
            "small_cnn.SmallCNN",
            "lstm.LSTM",
            "gtrxl.GTrXL",
            "vit.ViTExtractor",
        )
    ],
    "model.optimizer": ["torch.optim.Adam", "torch.optim.AdamW", "torch.optim.SGD", "torch.optim.RMSprop"],
}
_UNIMPORTABLE = re.compile(
    r'Parser key "(?P<key>[^"]+)": Expected a path but (?P<value>\S+) either not accessible or invalid'
    r".*?(?:callable class: (?P<reason>.*?)\. Got value|Expected a dot import path string)"
)


def unimportable_class_message(detail: str) -> str | None:
    """A short line for jsonargparse's long "not accessible or invalid" error, with close class paths."""
    match = _UNIMPORTABLE.search(detail)
    if match is None:
        return None
    key, value = match["key"], match["value"]
    candidates = list(KNOWN_CLASSES.get(key, []))
    module_path = value.rpartition(".")[0]
    while module_path and not candidates:  # the names beside the deepest part of the path that imports
        try:
            module = importlib.import_module(module_path)
        except ImportError:
            module_path = module_path.rpartition(".")[0]
            continue
        candidates = [f"{module_path}.{name}" for name in dir(module) if name[:1].isupper()]
    close = difflib.get_close_matches(value, candidates, n=3, cutoff=0.6) or candidates[:6]
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    reason = match["reason"] or "not a dotted path such as package.module.Class"
    return f"{key}={value} cannot be imported ({reason}){hint}"


class _OneLineErrorParser(LightningArgumentParser):
    """Reports a parse error as one line instead of a page of usage."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error:
            super().error(message, ex)
        detail = " ".join(part.strip(" -") for part in str(message).splitlines() if part.strip())
        detail = unimportable_class_message(detail) or detail
        prog = self.prog.replace(" [options]", "")
        sys.stderr.write(f"lit-rl: error: {detail} (see: {prog} --help)\n")
        self.exit(2)


class LitRLCLI(ConfigFirstLightningCLI):
    """Adds the env-spec link, the always-on preemption, evaluation and checkpoint callbacks, the env-step
    progress bar and run summary, and the checks of a checkpoint to resume and of the log directory
    before anything runs."""

    def add_arguments_to_parser(self, parser) -> None:
        # Passed as a plain dict: checkpoints then hold no custom class and load with weights_only.
        parser.link_arguments("data.env_spec", "model.env_spec", compute_fn=dataclasses.asdict, apply_on="instantiate")
        # Order matters: Preemption decides at the end of an update before the other two act on it.
        parser.add_lightning_class_args(Preemption, "preemption")
        parser.add_lightning_class_args(Evaluation, "evaluation")
        parser.add_lightning_class_args(EnvStepCheckpoint, "checkpoint")

    def before_instantiate_classes(self) -> None:
        # The model is built after the datamodule's probe env (it needs the spaces): check the learning
        # rate here so that bad input is reported before any env exists.
        config = self.config.get(self.config.get("subcommand") or "", self.config)
        optimizer = config.get("model", {}).get("optimizer")
        lr = optimizer.get("init_args", {}).get("lr") if hasattr(optimizer, "get") else None
        if isinstance(lr, int | float) and not lr > 0:
            raise ConfigError(f"model.optimizer.init_args.lr={float(lr)}; expected a positive learning rate")
        check_rich_available(config.get("trainer", {}).get("callbacks"))

    def instantiate_trainer(self, **kwargs) -> Trainer:
        """Add :class:`RunSummary`, and :class:`EnvStepProgressBar` unless the config picks a progress bar
        (``--trainer.callbacks+=...``) or disables it (``--trainer.enable_progress_bar=false``)."""
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        trainer_config = config.get("trainer") or {}
        callbacks = trainer_config.get("callbacks") or []
        callbacks = list(callbacks) if isinstance(callbacks, list) else [callbacks]
        if not any(isinstance(cb, RunSummary) for cb in callbacks):
            callbacks.append(RunSummary())
        bar_enabled = trainer_config.get("enable_progress_bar") is not False
        if bar_enabled and not any(isinstance(cb, ProgressBar) for cb in callbacks):
            callbacks.append(EnvStepProgressBar())
        return super().instantiate_trainer(**{"callbacks": callbacks, **kwargs})

    def check_ckpt_path(self) -> None:
        # Lightning would overwrite the config's model arguments with the checkpoint's here, silently
        # (an extractor override or a longer --model.total_env_steps would be ignored). In lit_rl the
        # config rules: the file is only checked now, and against the built model in before_fit.
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path and ckpt_path not in SPECIAL_CKPT_PATHS:
            load_checkpoint(ckpt_path)
            self.config[subcommand]["ckpt_path"] = str(Path(ckpt_path).expanduser())

    def _before_run(self) -> None:
        """Check the log directory and the checkpoint to load (resolving ``last`` and SLURM's
        ``hpc_ckpt``), and continue the checkpoint's run directory; raises :class:`ConfigError`."""
        config = self.config_init[self.subcommand]
        check_writable(self.trainer)
        config["ckpt_path"] = prepare_resume(
            self.trainer, self.model, self.datamodule, config.get("ckpt_path"), resume=self.subcommand == "fit"
        )

    def before_fit(self) -> None:
        self._before_run()

    def before_validate(self) -> None:
        self._before_run()

    def before_test(self) -> None:
        self._before_run()

    @property
    def exit_code(self) -> int:
        """``128 + signal`` if a preemption signal stopped the run, else 0."""
        codes = [cb.exit_code for cb in self.trainer.callbacks if isinstance(cb, Preemption) and cb.exit_code]
        return codes[0] if codes else 0


def check_rich_available(callbacks: Any) -> None:
    """Raise :class:`ConfigError` if a rich progress bar is configured in ``trainer.callbacks`` without
    ``rich`` installed (Lightning would fail inside jsonargparse, with pages of traceback)."""
    if importlib.util.find_spec("rich") is not None:
        return
    for callback in callbacks if isinstance(callbacks, list) else [callbacks]:
        class_path = getattr(callback, "class_path", None)
        if not isinstance(class_path, str):
            continue
        module, _, name = class_path.rpartition(".")
        if issubclass(getattr(importlib.import_module(module), name, object), RichProgressBar):
            raise ConfigError(
                f"trainer.callbacks: {class_path} needs the rich package (pip install rich); "
                "without it, leave out the callback for the default bar, lit_rl.callbacks.EnvStepProgressBar"
            )


def run(args: ArgsType = None, *, subcommand: bool = True) -> LitRLCLI:
    """Parse ``args`` (``sys.argv`` if ``None``), build everything and run the subcommand.

    ``subcommand=False``: ``args`` name no subcommand; only build the trainer, model and datamodule
    (``cli.trainer``, ``cli.model``, ``cli.datamodule``), as the benchmark's hand-written loops do.

    Bad input ends with one line on stderr and exit code 2, a non-finite loss or parameter with one
    line and exit code 1 (``SystemExit``).
    """
    _quiet_known_warnings(in_process=args is not None)
    try:
        return LitRLCLI(
            PPO,
            RolloutDataModule,
            trainer_defaults=TRAINER_DEFAULTS,
            args=args,
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
            parser_class=_OneLineErrorParser,
            run=subcommand,
        )
    except (ConfigError, MisconfigurationException) as err:  # Lightning's: e.g. 16-mixed on a CPU
        print(f"lit-rl: error: {' '.join(str(err).split())}", file=sys.stderr)
        raise SystemExit(2) from None
    except NonFiniteError as err:
        print(f"lit-rl: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None


def main(args: ArgsType = None) -> None:
    """Entry point of ``lit-rl`` and ``python -m lit_rl``; exits ``128 + signal`` when preempted."""
    cli = run(args)
    if cli.trainer is not None and cli.exit_code:
        raise SystemExit(cli.exit_code)


def _quiet_known_warnings(in_process: bool = False) -> None:
    """Silence Lightning advice that does not apply to on-policy rollouts (one epoch = one rollout), and,
    for ``args`` given in-process (tests, the tools), LightningCLI's note that ``args`` ignores ``sys.argv``."""
    if in_process:
        warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within Python.*")
    for message in (
        ".*IterableDataset.*has `__len__` defined.*",  # ours is exact: update_epochs * num_minibatches
        ".*smaller than the logging interval.*",  # PPO logs once per rollout, against env steps
        ".*overridden `transfer_batch_to_device`.*",  # rollouts are dataclasses, moved by Rollout.to
        ".*isinstance\\(treespec, LeafSpec\\).*",  # Lightning 2.6 with torch 2.14
        ".*Total length of `list` across ranks is zero.*",  # no validation loop during fit (see datamodule)
    ):
        warnings.filterwarnings("ignore", message=message)
