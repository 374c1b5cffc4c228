"""The non-finite guard: no optimiser step from a NaN or infinite loss term or gradient norm, and no
non-finite state in a checkpoint (``model.nonfinite``; README, "Numerical faults").

Two checks, each one host sync and taken alike on every rank: :meth:`NonFiniteGuard.step_is_finite`
before each optimiser step, and :meth:`NonFiniteGuard.check_state` once per update (at the end of its
last minibatch, before evaluations and checkpoints), reused until the state changes again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from lit_rl.errors import NonFiniteError

NONFINITE_ADVICE = "lower the learning rate or check the env's rewards and observations"
ReduceSum = Callable[[Tensor], Tensor]


def nonfinite_entries(module: nn.Module, reduce_sum: ReduceSum) -> list[str]:
    """Names of the floating tensors of ``module``'s state dict with a NaN or infinity on any rank."""
    named = [(n, t) for n, t in module.state_dict(keep_vars=True).items() if t.is_floating_point()]
    bad = reduce_sum((~torch.stack([torch.isfinite(t.detach()).all() for _, t in named])).float())
    return [named[i][0] for i in bad.nonzero().flatten().tolist()]


class NonFiniteGuard:
    """Decides what a non-finite minibatch does (``mode``) and checks the state once per update.

    Args:
        mode: ``stop`` raises :class:`NonFiniteError`; ``skip`` drops the minibatch's update, warns
            once per update and counts it in :attr:`skipped`. A non-finite state always stops.
    """

    def __init__(self, mode: Literal["stop", "skip"]) -> None:
        self.mode = mode
        self.skipped = 0  # minibatches of this update dropped as non-finite (skip)
        self.state_checked = False  # the state has been found finite and not changed since

    def step_is_finite(
        self, stats: Tensor, num_terms: int, keys: Sequence[str], where: str, reduce_sum: ReduceSum, scaled: bool
    ) -> bool:
        """Whether the loss terms (the first ``num_terms`` of ``stats``, named by ``keys``) and the
        gradient norm after them are finite on every rank (one host sync).

        Otherwise raise (``stop``), or warn once per update and count the minibatch as skipped.
        ``where`` says where the minibatch is; ``scaled``: a GradScaler's scaled gradients overflow now
        and then by design, and it skips those steps itself, so the norm is not checked.
        """
        bad = reduce_sum((~torch.isfinite(stats[: num_terms + (0 if scaled else 1)]).all()).float())
        if not bad.item():
            return True
        *losses, grad_norm = stats[: num_terms + 1].tolist()
        terms = [
            f"{key}={value}" for key, value in zip(keys[:num_terms], losses, strict=True) if not math.isfinite(value)
        ]
        if not terms and not math.isfinite(grad_norm):  # a non-finite loss has a non-finite gradient too
            terms = [f"gradient norm={grad_norm}"]
        terms = terms or ["loss on another process"]
        where = f"{', '.join(terms)} {where}"
        if self.mode == "stop":
            raise NonFiniteError(
                f"non-finite {where}; the update was not applied and the last checkpoint is kept; "
                f"{NONFINITE_ADVICE}, or set model.nonfinite=skip to skip such updates"
            )
        if self.skipped == 0:
            rank_zero_warn(f"skipped the update of non-finite {where}; further skips are in diag/skipped_updates")
        self.skipped += 1
        return False

    def check_state(self, module: nn.Module, reduce_sum: ReduceSum, where: str) -> None:
        """Raise :class:`NonFiniteError` naming the first NaN or infinite floating tensor of
        ``module``'s state dict (on any rank), unless it was checked and has not changed since."""
        if self.state_checked:
            return
        names = nonfinite_entries(module, reduce_sum)
        if names:
            kind = "parameter" if names[0] in dict(module.named_parameters()) else "buffer"
            more = f" and {len(names) - 1} more" if len(names) > 1 else ""
            raise NonFiniteError(
                f"non-finite {kind} {names[0]}{more} {where}; the last checkpoint is kept; {NONFINITE_ADVICE}"
            )
        self.state_checked = True

    def state_changed(self) -> None:
        """The parameters or buffers changed (an optimiser step, new statistics): check them again."""
        self.state_checked = False
