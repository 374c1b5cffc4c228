"""Callbacks the CLI always adds (configured with ``--evaluation.*`` and ``--checkpoint.*``)."""

from lit_rl.callbacks.checkpoint import EnvStepCheckpoint
from lit_rl.callbacks.evaluation import Evaluation

__all__ = ["EnvStepCheckpoint", "Evaluation"]
