"""Callbacks the CLI always adds (configured with ``--preemption.*``, ``--evaluation.*`` and ``--checkpoint.*``)."""

from lit_rl.callbacks.checkpoint import EnvStepCheckpoint
from lit_rl.callbacks.evaluation import Evaluation
from lit_rl.callbacks.preemption import Preemption

__all__ = ["EnvStepCheckpoint", "Evaluation", "Preemption"]
