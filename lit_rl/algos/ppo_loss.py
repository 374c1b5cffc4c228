"""The PPO clipped-surrogate objective (Schulman et al., 2017) as a pure function.

Reference: the minibatch update of cleanrl's ``ppo_atari.py`` (names and the 0.5·MSE value loss);
the named-terms output follows TorchRL's ``ClipPPOLoss``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class PPOLossOutput:
    """Named loss terms (differentiable) and diagnostics (detached).

    ``loss = policy_loss - ent_coef * entropy + vf_coef * (value_loss + int_value_loss)``;
    ``int_value_loss`` is 0 without an intrinsic value head.
    """

    loss: Tensor
    policy_loss: Tensor
    value_loss: Tensor
    entropy: Tensor
    approx_kl: Tensor
    clip_fraction: Tensor
    int_value_loss: Tensor


def masked_mean(x: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of ``x`` over the entries where ``mask`` is true (all entries if ``mask`` is ``None``).

    Masked-out entries never reach the result, not even as ``0 · inf``. Shapes: ``x``, ``mask`` alike.
    """
    if mask is None:
        return x.mean()
    return torch.where(mask, x, 0.0).sum() / mask.sum().clamp_min(1)


def normalize_advantages(advantages: Tensor, eps: float = 1e-8, mask: Tensor | None = None) -> Tensor:
    """Zero-mean, unit-std advantages of one minibatch (unbiased std, as cleanrl and SB3).

    Mean and std are taken over the real entries of ``mask`` only. A minibatch of one sample has
    no spread: it is only centred.
    """
    if mask is None:
        if advantages.numel() < 2:
            return advantages - advantages.mean()
        return (advantages - advantages.mean()) / (advantages.std() + eps)
    count = int(mask.sum())
    centred = advantages - masked_mean(advantages, mask)
    if count < 2:
        return centred
    std = (masked_mean(centred**2, mask) * count / (count - 1)).sqrt()
    return centred / (std + eps)


def ppo_loss(
    new_log_probs: Tensor,
    old_log_probs: Tensor,
    advantages: Tensor,
    new_values: Tensor,
    old_values: Tensor,
    returns: Tensor,
    entropy: Tensor,
    *,
    clip_coef: float,
    vf_coef: float,
    ent_coef: float,
    norm_adv: bool = True,
    clip_vloss: bool = False,
    mask: Tensor | None = None,
    int_new_values: Tensor | None = None,
    int_returns: Tensor | None = None,
) -> PPOLossOutput:
    """Clipped PPO loss of one minibatch.

    Args:
        new_log_probs: ``log π_θ(a|s)`` under the current parameters.
        old_log_probs: ``log π_old(a|s)`` recorded during collection.
        advantages: Advantage estimates (normalised here if ``norm_adv``).
        new_values: ``V_θ(s)`` under the current parameters.
        old_values: ``V_old(s)`` recorded during collection.
        returns: Value targets.
        entropy: Policy entropy per sample.
        clip_coef: Ratio clip ε: the ratio is clipped to ``[1 - ε, 1 + ε]``.
        vf_coef: Weight of the value loss. The value loss is ``0.5 · MSE`` (cleanrl); SB3's is
            the plain MSE, so SB3's ``vf_coef = c`` equals ``vf_coef = 2c`` here.
        ent_coef: Weight of the entropy bonus.
        norm_adv: Normalise advantages over this minibatch.
        clip_vloss: Clip the value update around ``old_values`` to ``±clip_coef`` (cleanrl's default;
            SB3's is off).
        mask: Real samples (``True``) and padding (``False``) of sequence minibatches; every term,
            diagnostic and the advantage normalisation average over the real samples only.
        int_new_values: The intrinsic value head's ``V^int_θ(s)`` (RND), or ``None``.
        int_returns: Its targets (non-episodic intrinsic returns). Its loss ``0.5 · MSE`` is never
            clipped (cleanrl ``ppo_rnd_envpool.py``) and is added to ``value_loss`` in ``loss``.

    Returns:
        A :class:`PPOLossOutput`.

    Shapes:
        every argument: ``[B]`` (or any one shape shared by all, e.g. ``[T, B]`` sequences).
    """
    B = new_log_probs.shape
    for name, x in (
        ("old_log_probs", old_log_probs),
        ("advantages", advantages),
        ("new_values", new_values),
        ("old_values", old_values),
        ("returns", returns),
        ("entropy", entropy),
        *([("mask", mask)] if mask is not None else []),
        *([("int_new_values", int_new_values), ("int_returns", int_returns)] if int_new_values is not None else []),
    ):
        if x.shape != B:
            raise ValueError(f"{name} has shape {tuple(x.shape)}, expected {tuple(B)}")

    log_ratio = new_log_probs - old_log_probs
    ratio = log_ratio.exp()
    if norm_adv:
        advantages = normalize_advantages(advantages, mask=mask)
    surrogate = advantages * ratio
    clipped = advantages * ratio.clamp(1.0 - clip_coef, 1.0 + clip_coef)
    policy_loss = -masked_mean(torch.min(surrogate, clipped), mask)

    if clip_vloss:
        values_clipped = old_values + (new_values - old_values).clamp(-clip_coef, clip_coef)
        value_loss = 0.5 * masked_mean(torch.max((new_values - returns) ** 2, (values_clipped - returns) ** 2), mask)
    else:
        value_loss = 0.5 * masked_mean((new_values - returns) ** 2, mask)

    if (int_new_values is None) != (int_returns is None):
        raise ValueError("int_new_values and int_returns go together: pass both or neither")
    int_value_loss = value_loss.new_zeros(())
    if int_new_values is not None:
        int_value_loss = 0.5 * masked_mean((int_new_values - int_returns) ** 2, mask)

    entropy_mean = masked_mean(entropy, mask)
    loss = policy_loss - ent_coef * entropy_mean + vf_coef * (value_loss + int_value_loss)
    with torch.no_grad():
        # The low-variance, non-negative KL estimator k3 (http://joschu.net/blog/kl-approx.html).
        approx_kl = masked_mean((ratio - 1.0) - log_ratio, mask)
        clip_fraction = masked_mean(((ratio - 1.0).abs() > clip_coef).float(), mask)
    return PPOLossOutput(loss, policy_loss, value_loss, entropy_mean, approx_kl, clip_fraction, int_value_loss)
