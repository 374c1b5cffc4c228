"""The optimiser of PPO: cleanrl's Adam, the check of a configured one, and gradient-norm clipping."""

from __future__ import annotations

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor

from lit_rl.errors import ConfigError


def adam(params) -> torch.optim.Optimizer:
    """cleanrl's optimiser: Adam, lr 2.5e-4, eps 1e-5; the fused kernel (the same update in one pass:
    measured in the README's Performance section)."""
    return torch.optim.Adam(params, lr=2.5e-4, eps=1e-5, fused=True)


def check_optimizer(optimizer: OptimizerCallable) -> None:
    """Build the optimiser once on a dummy parameter so a bad argument is a :class:`ConfigError` now,
    before any env is built, and require a positive learning rate (torch accepts 0)."""
    try:
        probe = optimizer([torch.nn.Parameter(torch.zeros(1))])
    except (ValueError, TypeError) as err:
        raise ConfigError(f"model.optimizer: {err}") from None
    for group in probe.param_groups:
        lr = float(group["lr"])
        if not lr > 0:
            raise ConfigError(f"model.optimizer.init_args.lr={lr}; expected a positive learning rate")


def gradients(optimizer: torch.optim.Optimizer) -> list[Tensor]:
    """The gradients of the optimiser's parameters that have one."""
    return [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]


def clip_gradients(optimizer: torch.optim.Optimizer, max_norm: float, norm: Tensor, scaler) -> None:
    """Clip the gradients to ``max_norm``, inside ``optimizer.step()`` before the step.

    Without a GradScaler, ``norm`` is their total norm (measured before the step): it is reused. A
    GradScaler (16-mixed) has unscaled the gradients already, except for fused optimizers, which
    unscale inside their step: unscale them here then (the scaler then passes the step only its inf
    check). Clipping scaled gradients would clip hardly ever. Lightning's ``clip_gradients`` refuses
    fused optimizers under a scaler, hence this.
    """
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if scaler is None:
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)
        return
    if getattr(optimizer, "_step_supports_amp_scaling", False):
        scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(params, max_norm)
