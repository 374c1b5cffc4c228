"""Per-update sums of the loss terms and diagnostics: one fused add per minibatch, no host sync."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from lit_rl.algos.ppo_loss import PPOLossOutput

# Kept in this order: the loss terms, then the pre-clip gradient norm (the terms whose finiteness
# decides whether a minibatch may step), then the diagnostics.
LOSS_KEYS = ("loss/policy", "loss/value", "loss/entropy")
INTRINSIC_LOSS_KEYS = ("loss/int_value", "loss/rnd")
DIAG_KEYS = ("diag/grad_norm", "diag/approx_kl", "diag/clip_fraction")


def step_stats(out: PPOLossOutput, rnd_loss: Tensor | None, grad_norm: Tensor) -> Tensor:
    """A minibatch's loss terms, gradient norm and diagnostics as one float vector, in ``keys`` order."""
    terms = (out.policy_loss, out.value_loss, out.entropy)
    if rnd_loss is not None:
        terms += (out.int_value_loss, rnd_loss)
    terms += (grad_norm, out.approx_kl, out.clip_fraction)
    return torch.stack([t.detach().float() for t in terms])


class LossSums(nn.Module):
    """Sums of :func:`step_stats` over the minibatches that stepped; :meth:`means` over every rank."""

    def __init__(self, intrinsic: bool) -> None:
        super().__init__()
        self.keys = LOSS_KEYS + (INTRINSIC_LOSS_KEYS if intrinsic else ()) + DIAG_KEYS
        self.num_loss_terms = len(self.keys) - len(DIAG_KEYS)
        self.register_buffer("_sums", torch.zeros(len(self.keys)), persistent=False)
        self.register_buffer("_count", torch.zeros(()), persistent=False)

    def add(self, stats: Tensor) -> None:
        self._sums += stats
        self._count += 1

    def means(self, reduce_sum: Callable[[Tensor], Tensor]) -> dict[str, float]:
        """Mean of each term over this update's minibatches and all ranks; resets the sums."""
        sums = reduce_sum(self._sums.clone())
        count = reduce_sum(self._count.clone())
        self._sums.zero_()
        self._count.zero_()
        if count.item() == 0:  # early stop before the first step: identical on every rank
            return {}
        return dict(zip(self.keys, (sums / count).tolist(), strict=True))
