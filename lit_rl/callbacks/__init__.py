"""Callbacks the CLI always adds (configured with ``--preemption.*``, ``--evaluation.*`` and ``--checkpoint.*``),
and the env-step progress bars and run summary (:mod:`lit_rl.callbacks.progress`)."""

from lit_rl.callbacks.checkpoint import EnvStepCheckpoint
from lit_rl.callbacks.evaluation import Evaluation
from lit_rl.callbacks.preemption import Preemption
from lit_rl.callbacks.progress import EnvStepProgressBar, EnvStepRichProgressBar, RunSummary

__all__ = [
    "EnvStepCheckpoint",
    "EnvStepProgressBar",
    "EnvStepRichProgressBar",
    "Evaluation",
    "Preemption",
    "RunSummary",
]
