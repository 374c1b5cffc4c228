"""What the CLI checks before a run starts: the log directory, and the checkpoint it loads.

A checkpoint to resume is read and compared with the configured model before any env steps, so a
missing, corrupt or mismatched file is one :class:`ConfigError` line, not a traceback after minutes
of setup. A resumed run writes into the run directory it resumes (its TensorBoard version, its
``evaluations.npz`` and ``checkpoints/``), and TensorBoard hides what the interrupted run logged
after the checkpoint.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info

from lit_rl import _lightning_compat as compat
from lit_rl.callbacks.checkpoint import EnvStepCheckpoint
from lit_rl.errors import ConfigError

#: ``ckpt_path`` values that name no file: resolved by :func:`prepare_resume`.
SPECIAL_CKPT_PATHS = ("last", "hpc", "best")
#: State-dict entries a checkpoint may lack or size differently; ``PPO.on_load_checkpoint`` fills them.
TOLERATED_KEYS = ("rooms_seen", "intrinsic.int_return")


def check_writable(trainer: L.Trainer) -> None:
    """Raise :class:`ConfigError` if a directory the run writes to cannot be created or written."""
    directories = [(Path(trainer.default_root_dir), "--trainer.default_root_dir")]
    for logger in trainer.loggers:
        if logger.save_dir is not None:
            directories.append((Path(logger.save_dir), "--trainer.logger.init_args.save_dir"))
    for callback in trainer.callbacks:
        if isinstance(callback, EnvStepCheckpoint) and callback.dirpath is not None:
            directories.append((Path(callback.dirpath), "--checkpoint.dirpath"))
    for directory, option in directories:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=directory):
                pass
        except OSError as err:
            reason = err.strerror or type(err).__name__
            raise ConfigError(
                f"cannot write to the directory '{directory}' ({reason}); set {option} to a writable directory"
            ) from None


def prepare_resume(
    trainer: L.Trainer, model: L.LightningModule, datamodule: Any, ckpt_path: str | None, *, resume: bool
) -> str | None:
    """Resolve ``ckpt_path``, check the file against ``model`` and continue its run directory.

    ``last``: the newest ``last.ckpt`` (or ``hpc_ckpt``) of this run — same env id and seed — in the
    logger's run directory (every version of the logger's name if no version is set); ``None`` if there
    is none yet, so a job script can always pass it. ``hpc``: the newest ``hpc_ckpt_<n>.ckpt`` in
    ``default_root_dir``. No path under SLURM (a requeued job): the newer of that ``hpc_ckpt`` and the
    ``last.ckpt`` of a run directory fixed by a logger version or ``--checkpoint.dirpath``. ``resume``
    (``fit``): also require the same env id and continue the checkpoint's log directory. Returns the path
    for ``trainer.fit`` / ``validate`` / ``test``.
    """
    if ckpt_path == "best":
        raise ConfigError("ckpt_path='best': lit_rl keeps no 'best' checkpoint; pass a checkpoint file or 'last'")
    if ckpt_path == "last":
        ckpt_path = find_last_checkpoint(trainer, datamodule)
        if ckpt_path is None:
            rank_zero_info("ckpt_path=last: no checkpoint of this run yet, starting from scratch")
            return None
    elif ckpt_path == "hpc":
        ckpt_path = newest_hpc_checkpoint(trainer.default_root_dir)
        if ckpt_path is None:
            raise ConfigError(f"ckpt_path='hpc': no hpc_ckpt_<n>.ckpt in '{trainer.default_root_dir}'")
    elif ckpt_path is None and resume and SLURMEnvironment.detect():
        # Lightning would take the hpc_ckpt even when a later last.ckpt exists (a crash after a requeue).
        ckpt_path = find_last_checkpoint(trainer, datamodule, fixed_dir_only=True)
    if ckpt_path is None:
        return None
    checkpoint = load_checkpoint(ckpt_path)
    check_compatible(checkpoint, model, datamodule, ckpt_path, same_env=resume)
    if resume:
        continue_run_directory(trainer, checkpoint)
    return str(ckpt_path)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint as Lightning will (``weights_only``), or raise a one-line :class:`ConfigError`."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ConfigError(f"checkpoint '{path}' is a directory; pass a .ckpt file in it (e.g. {path / 'last.ckpt'})")
    if not path.is_file():
        raise ConfigError(f"checkpoint '{path}' does not exist; pass the path of a .ckpt file written by lit-rl fit")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for damaged files
        detail = " ".join(str(err).split())[:160]
        raise ConfigError(
            f"checkpoint '{path}' cannot be read ({type(err).__name__}: {detail}); the file is damaged or not a "
            "checkpoint: resume from an earlier one (the periodic *_steps.ckpt files beside last.ckpt)"
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ConfigError(f"checkpoint '{path}' holds no state_dict: it was not written by lit-rl fit")
    return checkpoint


def check_compatible(
    checkpoint: dict[str, Any], model: L.LightningModule, datamodule: Any, path: Any, *, same_env: bool
) -> None:
    """Raise :class:`ConfigError` naming the first difference that would keep ``checkpoint`` out of ``model``."""
    hparams = checkpoint.get("hyper_parameters", {})
    spec, env_id = model.env_spec, getattr(datamodule, "env_id", "?")
    saved_spec = hparams.get("env_spec") or {}
    saved_env = (checkpoint.get("datamodule_hyper_parameters") or {}).get("env_id")
    if same_env and saved_env is not None and saved_env != env_id:
        raise ConfigError(
            f"checkpoint '{path}' was trained on {saved_env}, this run is configured for data.env_id={env_id}; "
            "resume with the env it was trained on"
        )
    if "num_actions" in saved_spec and saved_spec["num_actions"] != spec.num_actions:
        raise ConfigError(
            f"checkpoint '{path}' was trained for {saved_spec['num_actions']} actions, {env_id} has "
            f"{spec.num_actions}: use a checkpoint of this game or a game with the same action space"
        )
    if "obs_shape" in saved_spec and tuple(saved_spec["obs_shape"]) != tuple(spec.obs_shape):
        raise ConfigError(
            f"checkpoint '{path}' was trained on observations of shape {tuple(saved_spec['obs_shape'])}, {env_id} "
            f"gives {tuple(spec.obs_shape)}: check data.atari.frame_stack, data.obs_stack and data.env_id"
        )
    saved_norm, norm = bool(hparams.get("normalize_obs", False)), bool(model.hparams.get("normalize_obs", False))
    if saved_norm != norm:
        raise ConfigError(
            f"checkpoint '{path}' was trained with model.normalize_obs={str(saved_norm).lower()}, this run has "
            f"model.normalize_obs={str(norm).lower()}: its policy expects {'normalised' if saved_norm else 'raw'} "
            f"observations; resume with model.normalize_obs={str(saved_norm).lower()}"
        )
    saved, current = checkpoint["state_dict"], model.state_dict()
    problems = [
        f"{k} has shape {list(saved[k].shape)} in the checkpoint and {list(v.shape)} here"
        for k, v in current.items()
        if k in saved and k not in TOLERATED_KEYS and tuple(saved[k].shape) != tuple(v.shape)
    ]
    problems += [f"{k} is missing" for k in current if k not in saved and k not in TOLERATED_KEYS]
    problems += [f"{k} is not in this model" for k in saved if k not in current]
    if problems:
        saved_extractor, built = _describe(hparams.get("extractor")), _describe(model.hparams.get("extractor"))
        if saved_extractor == built:  # the same trunk: another architectural option differs
            options = [
                f"model.{k}={hparams.get(k)!r} in the checkpoint, {model.hparams.get(k)!r} here"
                for k in ("shared_extractor", "heads", "intrinsic")
                if k in hparams and hparams.get(k) != model.hparams.get(k)
            ]
            problems[0] += f" ({'; '.join(options)})" if options else ""
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(
            f"checkpoint '{path}' does not fit this model: {problems[0]}{more}; it was trained with the extractor "
            f"{_describe(hparams.get('extractor'))}, the config builds {_describe(model.hparams.get('extractor'))}: "
            "resume with the config it was trained with (config.yaml in its run directory)"
        )


def _describe(extractor: Any) -> str:
    """``MLP(hidden_sizes=[64, 64], activation='tanh')`` from a saved ``class_path``/``init_args`` dict."""
    if not isinstance(extractor, dict):
        return str(extractor)
    args = ", ".join(f"{k}={v!r}" for k, v in (extractor.get("init_args") or {}).items())
    return f"{str(extractor.get('class_path', '?')).rsplit('.', 1)[-1]}({args})"


def find_last_checkpoint(trainer: L.Trainer, datamodule: Any, *, fixed_dir_only: bool = False) -> Path | None:
    """The newest ``last.ckpt`` or ``hpc_ckpt`` of this run (same env id and seed as ``datamodule``).

    Looked for in ``--checkpoint.dirpath``, else in the logger's run directory, or in every version of
    the logger's name when no version is set (not with ``fixed_dir_only``), and in ``default_root_dir``.
    """
    candidates: list[Path] = []
    dirpaths = [cb.dirpath for cb in trainer.callbacks if isinstance(cb, EnvStepCheckpoint) and cb.dirpath]
    logger = trainer.logger
    if dirpaths:
        candidates += [Path(d) / "last.ckpt" for d in dirpaths]
    elif compat.has_version_dirs(logger):
        # TensorBoardLogger, CSVLogger: <save_dir>/<name>/<version>; the version is None until chosen.
        root, version = Path(logger.root_dir), compat.logger_version(logger)
        if version is not None:
            name = version if isinstance(version, str) else f"version_{version}"
            candidates.append(root / name / (getattr(logger, "sub_dir", None) or "") / "checkpoints" / "last.ckpt")
        elif not fixed_dir_only:
            candidates += root.glob("*/checkpoints/last.ckpt")
    elif logger is not None:
        candidates.append(Path(trainer.log_dir or trainer.default_root_dir) / "checkpoints" / "last.ckpt")
    hpc = newest_hpc_checkpoint(trainer.default_root_dir)
    candidates += [hpc] if hpc is not None else []
    mine = [p for p in candidates if p.is_file() and _same_run(p, datamodule)]
    return max(mine, key=lambda p: p.stat().st_mtime) if mine else None


def _same_run(path: Path, datamodule: Any) -> bool:
    """Whether the checkpoint at ``path`` was trained on ``datamodule``'s env id with its seed (an
    unreadable file counts as this run's, so that it is reported rather than skipped)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return True
    env_id = (checkpoint.get("datamodule_hyper_parameters") or {}).get("env_id")
    seeds = [s.get("seed") for s in checkpoint.get("callbacks", {}).values() if "seed" in s]
    return env_id in (None, datamodule.env_id) and (not seeds or seeds[0] in (None, datamodule.seed))


def newest_hpc_checkpoint(directory: str | os.PathLike) -> Path | None:
    """Lightning's SLURM resume file: ``hpc_ckpt_<n>.ckpt`` with the largest ``n`` in ``directory``."""
    numbered = []
    for path in Path(directory).glob("hpc_ckpt_*.ckpt"):
        match = re.fullmatch(r"hpc_ckpt_(\d+)\.ckpt", path.name)
        if match:
            numbered.append((int(match.group(1)), path))
    return max(numbered)[1] if numbered else None


def continue_run_directory(trainer: L.Trainer, checkpoint: dict[str, Any]) -> None:
    """Point an unversioned TensorBoard logger at the checkpoint's run directory, and purge events the
    interrupted run logged after the checkpoint (``SummaryWriter(purge_step=...)``)."""
    logger = trainer.logger
    log_dir = next((s["log_dir"] for s in checkpoint.get("callbacks", {}).values() if s.get("log_dir")), None)
    env_steps = int(checkpoint["state_dict"].get("env_steps", 0))
    if not isinstance(logger, TensorBoardLogger) or log_dir is None or not Path(log_dir).is_dir():
        rank_zero_info(f"Resuming at {env_steps:,} env steps")
        return
    log_dir = Path(log_dir)
    if compat.logger_version(logger) is None:
        if log_dir.parent.resolve() != Path(logger.root_dir).resolve() or logger.sub_dir:
            rank_zero_info(f"Resuming at {env_steps:,} env steps")
            return  # another save_dir or logger name: the user asked for a new place
        match = re.fullmatch(r"version_(\d+)", log_dir.name)
        compat.set_logger_version(logger, int(match.group(1)) if match else log_dir.name)
    if Path(logger.log_dir).resolve() == log_dir.resolve() and not compat.experiment_started(logger):
        compat.set_default_purge_step(logger, env_steps + 1)
    rank_zero_info(f"Resuming at {env_steps:,} env steps in {logger.log_dir}")
