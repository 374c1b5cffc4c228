"""The ``lit-rl`` command: one LightningCLI over :class:`PPO` and :class:`RolloutDataModule`.

Pattern of ``microsoft/torchgeo:torchgeo/main.py``: ``main(args)`` so tests pass a list.
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from typing import NoReturn

from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI

from lit_rl.algos.ppo import PPO
from lit_rl.callbacks import EnvStepCheckpoint, Evaluation
from lit_rl.data.datamodule import RolloutDataModule
from lit_rl.errors import ConfigError

TRAINER_DEFAULTS = {
    "max_epochs": -1,  # one epoch is one rollout; PPO stops at model.total_env_steps
    "enable_checkpointing": False,  # checkpoints are written by EnvStepCheckpoint (--checkpoint.*)
    "logger": {"class_path": "lightning.pytorch.loggers.TensorBoardLogger", "init_args": {"save_dir": "runs"}},
}


class _OneLineErrorParser(LightningArgumentParser):
    """Reports a parse error as one line instead of a page of usage."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error:
            super().error(message, ex)
        detail = " ".join(part.strip(" -") for part in str(message).splitlines() if part.strip())
        prog = self.prog.replace(" [options]", "")
        sys.stderr.write(f"lit-rl: error: {detail} (see: {prog} --help)\n")
        self.exit(2)


class LitRLCLI(LightningCLI):
    """Adds the env-spec link and the always-on evaluation and checkpoint callbacks."""

    def add_arguments_to_parser(self, parser) -> None:
        # Passed as a plain dict: checkpoints then hold no custom class and load with weights_only.
        parser.link_arguments("data.env_spec", "model.env_spec", compute_fn=dataclasses.asdict, apply_on="instantiate")
        parser.add_lightning_class_args(Evaluation, "evaluation")
        parser.add_lightning_class_args(EnvStepCheckpoint, "checkpoint")


def run(args: ArgsType = None) -> LitRLCLI:
    """Parse ``args`` (``sys.argv`` if ``None``), build everything and run the subcommand.

    Bad input ends with one line on stderr and exit code 2 (``SystemExit``).
    """
    _quiet_known_warnings()
    try:
        return LitRLCLI(
            PPO,
            RolloutDataModule,
            trainer_defaults=TRAINER_DEFAULTS,
            args=args,
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
            parser_class=_OneLineErrorParser,
        )
    except ConfigError as err:
        print(f"lit-rl: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def main(args: ArgsType = None) -> None:
    """Entry point of ``lit-rl`` and ``python -m lit_rl``."""
    run(args)


def _quiet_known_warnings() -> None:
    """Silence Lightning advice that does not apply to on-policy rollouts (one epoch = one rollout)."""
    for message in (
        ".*IterableDataset.*has `__len__` defined.*",  # ours is exact: update_epochs * num_minibatches
        ".*smaller than the logging interval.*",  # PPO logs once per rollout, against env steps
        ".*overridden `transfer_batch_to_device`.*",  # rollouts are dataclasses, moved by Rollout.to
        ".*isinstance\\(treespec, LeafSpec\\).*",  # Lightning 2.6 with torch 2.14
        ".*Total length of `list` across ranks is zero.*",  # no validation loop during fit (see datamodule)
    ):
        warnings.filterwarnings("ignore", message=message)
