"""Every use of Lightning's private API in lit_rl, in one place.

lit_rl needs four things Lightning offers no public API for:

- the name Lightning gives the next SLURM checkpoint, ``hpc_ckpt_<n + 1>.ckpt`` (the file a requeued job
  resumes from): ``Trainer._checkpoint_connector.hpc_save_path``;
- taking over a SIGTERM Lightning caught before lit_rl's own handler was installed:
  ``Trainer._signal_connector.received_sigterm`` (``Trainer.received_sigterm`` is read-only);
- a TensorBoard or CSV logger's version without choosing one (``logger.version`` creates the next
  ``version_<n>``), setting it, and the ``purge_step`` its ``SummaryWriter`` is created with:
  ``_version``, ``_experiment`` and ``_kwargs`` of the loggers;
- keeping ``LightningCLI`` from overwriting the config's model arguments with a checkpoint's:
  ``LightningCLI._parse_ckpt_path``.

Each is reached through a function or class here and nowhere else. ``tests/test_lightning_compat.py``
checks them all against the installed Lightning and names its version when one has moved;
:data:`LIGHTNING_RANGE` is the range pinned in ``pyproject.toml``, the versions this was checked with.
"""

from __future__ import annotations

import os
from typing import Any

import lightning
from lightning.pytorch.cli import LightningCLI

#: The Lightning versions whose private API this module was checked against (as in pyproject.toml).
LIGHTNING_RANGE = ">=2.5.5,<2.7"


class LightningCompatError(RuntimeError):
    """A private Lightning attribute lit_rl relies on is missing from the installed Lightning."""


def _private(obj: Any, name: str) -> Any:
    """``obj.<name>``, or a :class:`LightningCompatError` naming the attribute and the Lightning version."""
    try:
        return getattr(obj, name)
    except AttributeError:
        raise LightningCompatError(
            f"lit_rl relies on {type(obj).__name__}.{name} (Lightning's private API), which the installed "
            f"Lightning {lightning.__version__} does not have; install lightning{LIGHTNING_RANGE}"
        ) from None


def hpc_save_path(trainer: lightning.Trainer, directory: str | os.PathLike) -> str:
    """The path Lightning gives the next SLURM checkpoint in ``directory`` (``hpc_ckpt_<n + 1>.ckpt``)."""
    return _private(_private(trainer, "_checkpoint_connector"), "hpc_save_path")(directory)


def take_over_sigterm(trainer: lightning.Trainer) -> bool:
    """Clear Lightning's "SIGTERM received" flag; ``True`` if it was set.

    Lightning's handler, installed before the fit loop starts, would otherwise stop the run after the
    current minibatch, without a checkpoint, and exit with status 0.
    """
    connector = _private(trainer, "_signal_connector")
    if not _private(connector, "received_sigterm"):
        return False
    connector.received_sigterm = False
    return True


def has_version_dirs(logger: Any) -> bool:
    """Whether ``logger`` writes to ``<root_dir>/<version>`` (TensorBoardLogger, CSVLogger)."""
    return logger is not None and hasattr(logger, "root_dir") and hasattr(logger, "_version")


def logger_version(logger: Any) -> int | str | None:
    """The version a TensorBoard/CSV logger was given or has chosen; ``None`` until it chooses one."""
    return _private(logger, "_version")


def set_logger_version(logger: Any, version: int | str) -> None:
    """Make the logger write to ``<root_dir>/version_<version>`` (or ``<root_dir>/<version>`` for a str).

    The logger has no setter: it reads the version when its ``log_dir`` or ``experiment`` is first used.
    """
    _private(logger, "_version")
    logger._version = version


def experiment_started(logger: Any) -> bool:
    """Whether the logger's writer (``SummaryWriter`` for TensorBoard) exists already."""
    return _private(logger, "_experiment") is not None


def set_default_purge_step(logger: Any, step: int) -> None:
    """Create the TensorBoard writer with ``purge_step=step`` unless the user set one.

    ``SummaryWriter(purge_step=...)`` hides the events an interrupted run logged at and after ``step``.
    LightningCLI passes ``purge_step=None`` explicitly, so ``None`` counts as unset.
    """
    kwargs = _private(logger, "_kwargs")
    if kwargs.get("purge_step") is None:
        kwargs["purge_step"] = step


class ConfigFirstLightningCLI(LightningCLI):
    """A ``LightningCLI`` that leaves the config's model arguments alone when a ``ckpt_path`` is given.

    Lightning's private ``_parse_ckpt_path`` (called right after parsing) would overwrite them with the
    checkpoint's hyper-parameters, silently; here it calls :meth:`check_ckpt_path` instead.
    """

    def _parse_ckpt_path(self) -> None:
        self.check_ckpt_path()

    def check_ckpt_path(self) -> None:
        """Called after parsing, where Lightning would merge the checkpoint's hyper-parameters."""
