"""Lightning's private API that lit_rl relies on (lit_rl/_lightning_compat.py) exists and behaves as
assumed on the installed Lightning; every failure names the installed version."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import lightning
import pytest
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from packaging.specifiers import SpecifierSet
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.compat.proto.event_pb2 import SessionLog

from lit_rl import _lightning_compat as compat

ROOT = Path(__file__).resolve().parents[1]
VERSION = lightning.__version__


def moved(what: str) -> str:
    return (
        f"Lightning {VERSION}: {what}. lit_rl/_lightning_compat.py was written for lightning{compat.LIGHTNING_RANGE}; "
        "adapt it (and its range in pyproject.toml) to this version"
    )


def bare_trainer(tmp_path: Path) -> lightning.Trainer:
    return lightning.Trainer(
        default_root_dir=tmp_path, logger=False, enable_checkpointing=False, enable_progress_bar=False
    )


def test_the_pinned_range_is_the_checked_range_and_holds_the_installed_version() -> None:
    pins = re.findall(r'"lightning([<>=!~][^"]*)"', (ROOT / "pyproject.toml").read_text())
    assert pins == [compat.LIGHTNING_RANGE], (
        f"pyproject.toml pins lightning{pins}, the compat module {compat.LIGHTNING_RANGE}"
    )
    assert VERSION in SpecifierSet(compat.LIGHTNING_RANGE), moved(f"outside the supported {compat.LIGHTNING_RANGE}")


def test_hpc_save_path_numbers_past_the_newest_hpc_checkpoint(tmp_path: Path) -> None:
    trainer = bare_trainer(tmp_path)
    try:
        first = compat.hpc_save_path(trainer, tmp_path)
        (tmp_path / "hpc_ckpt_1.ckpt").touch()
        (tmp_path / "hpc_ckpt_7.ckpt").touch()
        after = compat.hpc_save_path(trainer, tmp_path)
    except compat.LightningCompatError as err:
        pytest.fail(str(err))
    assert Path(first) == tmp_path / "hpc_ckpt_1.ckpt", moved(
        f"Trainer._checkpoint_connector.hpc_save_path gave {first}"
    )
    assert Path(after) == tmp_path / "hpc_ckpt_8.ckpt", moved(
        f"Trainer._checkpoint_connector.hpc_save_path gave {after}"
    )


def test_take_over_sigterm_clears_the_flag_the_trainer_reports(tmp_path: Path) -> None:
    trainer = bare_trainer(tmp_path)
    assert hasattr(trainer, "_signal_connector"), moved("Trainer._signal_connector is gone")
    assert hasattr(trainer._signal_connector, "received_sigterm"), moved("_SignalConnector.received_sigterm is gone")
    assert not compat.take_over_sigterm(trainer)
    trainer._signal_connector.received_sigterm = True
    assert trainer.received_sigterm, moved(
        "Trainer.received_sigterm no longer reads _signal_connector.received_sigterm"
    )
    assert compat.take_over_sigterm(trainer)
    assert not trainer.received_sigterm, moved(
        "clearing _signal_connector.received_sigterm no longer clears the trainer's"
    )


@pytest.mark.parametrize("logger_class", [TensorBoardLogger, CSVLogger])
def test_logger_version_is_read_and_set_without_choosing_one(logger_class, tmp_path: Path) -> None:
    (tmp_path / "lit" / "version_0").mkdir(parents=True)  # a version exists: logger.version would choose 1
    logger = logger_class(save_dir=tmp_path, name="lit")
    assert compat.has_version_dirs(logger), moved(f"{logger_class.__name__} has no root_dir or _version")
    assert compat.logger_version(logger) is None, moved(f"{logger_class.__name__}._version is set before first use")
    compat.set_logger_version(logger, 0)
    assert Path(logger.log_dir) == tmp_path / "lit" / "version_0", moved(f"{logger_class.__name__}._version is ignored")
    named = logger_class(save_dir=tmp_path, name="lit")
    compat.set_logger_version(named, "resumed")
    assert Path(named.log_dir) == tmp_path / "lit" / "resumed", moved(f"{logger_class.__name__}._version is ignored")


def test_purge_step_reaches_the_summary_writer(tmp_path: Path) -> None:
    logger = TensorBoardLogger(save_dir=tmp_path, name="lit", purge_step=None)  # as LightningCLI builds it
    assert not compat.experiment_started(logger), moved("TensorBoardLogger._experiment is set before first use")
    compat.set_default_purge_step(logger, 4097)
    logger.experiment.flush()
    assert compat.experiment_started(logger), moved("TensorBoardLogger._experiment stays None after use")
    assert purge_steps(logger.log_dir) == [4097], moved("TensorBoardLogger._kwargs no longer reach SummaryWriter")
    mine = TensorBoardLogger(save_dir=tmp_path, name="mine", purge_step=5)
    compat.set_default_purge_step(mine, 4097)
    mine.experiment.flush()
    assert purge_steps(mine.log_dir) == [5]  # the user's purge_step wins


def purge_steps(log_dir: str) -> list[int]:
    """Steps of the SessionLog START events SummaryWriter(purge_step=...) writes first."""
    steps = []
    for path in Path(log_dir).glob("events.out.tfevents.*"):
        steps += [e.step for e in EventFileLoader(str(path)).Load() if e.session_log.status == SessionLog.START]
    return steps


def test_lightning_cli_still_merges_the_checkpoint_hparams_in_parse_ckpt_path() -> None:
    """ConfigFirstLightningCLI overrides LightningCLI._parse_ckpt_path: it must still exist and be called
    by LightningCLI.__init__, else Lightning's replacement would overwrite the config unnoticed."""
    assert callable(getattr(LightningCLI, "_parse_ckpt_path", None)), moved("LightningCLI._parse_ckpt_path is gone")
    init = inspect.getsource(LightningCLI.__init__)
    assert "self._parse_ckpt_path()" in init, moved("LightningCLI.__init__ no longer calls _parse_ckpt_path")
    merge = inspect.getsource(LightningCLI._parse_ckpt_path)
    assert "hyper_parameters" in merge, moved("LightningCLI._parse_ckpt_path no longer reads hyper_parameters")


def test_a_missing_attribute_is_one_error_naming_the_version() -> None:
    with pytest.raises(compat.LightningCompatError, match=rf"Lightning {re.escape(VERSION)} does not have"):
        compat.hpc_save_path(object(), ".")  # type: ignore[arg-type]


def test_the_private_io_function_the_preemption_tests_patch_exists() -> None:
    """tests/test_preemption.py tears a checkpoint write by patching torch_io._atomic_save."""
    import lightning.fabric.plugins.io.torch_io as torch_io

    assert callable(getattr(torch_io, "_atomic_save", None)), moved("fabric's torch_io._atomic_save is gone")
