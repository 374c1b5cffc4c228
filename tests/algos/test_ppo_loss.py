"""The PPO loss against the written-out formula on fixed tensors."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from lit_rl.algos.ppo_loss import normalize_advantages, ppo_loss

NEW_LP = torch.tensor([-0.5, -1.0, -2.0, -0.1])
OLD_LP = torch.tensor([-0.7, -0.9, -1.5, -0.1])
ADV = torch.tensor([1.0, -2.0, 0.5, 3.0])
NEW_V = torch.tensor([0.5, 1.5, -1.0, 2.0])
OLD_V = torch.tensor([0.4, 1.0, -0.5, 2.5])
RET = torch.tensor([1.0, 1.0, 0.0, 3.0])
ENT = torch.tensor([1.2, 0.8, 1.0, 0.6])


def written_out(clip, vf_coef, ent_coef, norm_adv, clip_vloss):
    """Element by element in Python floats, following Schulman et al. (2017), eq. 7 and 9."""
    adv = ADV.tolist()
    if norm_adv:
        mean = sum(adv) / len(adv)
        std = math.sqrt(sum((a - mean) ** 2 for a in adv) / (len(adv) - 1))
        adv = [(a - mean) / (std + 1e-8) for a in adv]
    pg, vl = [], []
    for i in range(4):
        ratio = math.exp(NEW_LP[i].item() - OLD_LP[i].item())
        pg.append(-min(adv[i] * ratio, adv[i] * min(max(ratio, 1 - clip), 1 + clip)))
        unclipped = (NEW_V[i].item() - RET[i].item()) ** 2
        if clip_vloss:
            v_clip = OLD_V[i].item() + min(max(NEW_V[i].item() - OLD_V[i].item(), -clip), clip)
            vl.append(max(unclipped, (v_clip - RET[i].item()) ** 2))
        else:
            vl.append(unclipped)
    policy_loss = sum(pg) / 4
    value_loss = 0.5 * sum(vl) / 4
    entropy = ENT.mean().item()
    return policy_loss, value_loss, entropy, policy_loss - ent_coef * entropy + vf_coef * value_loss


@pytest.mark.parametrize("norm_adv", [True, False])
@pytest.mark.parametrize("clip_vloss", [True, False])
def test_matches_written_out_formula(norm_adv: bool, clip_vloss: bool) -> None:
    out = ppo_loss(
        NEW_LP,
        OLD_LP,
        ADV,
        NEW_V,
        OLD_V,
        RET,
        ENT,
        clip_coef=0.2,
        vf_coef=0.5,
        ent_coef=0.01,
        norm_adv=norm_adv,
        clip_vloss=clip_vloss,
    )
    pl, vl, ent, total = written_out(0.2, 0.5, 0.01, norm_adv, clip_vloss)
    assert out.policy_loss.item() == pytest.approx(pl, rel=1e-5)
    assert out.value_loss.item() == pytest.approx(vl, rel=1e-5)
    assert out.entropy.item() == pytest.approx(ent, rel=1e-6)
    assert out.loss.item() == pytest.approx(total, rel=1e-5)


def test_diagnostics() -> None:
    out = ppo_loss(NEW_LP, OLD_LP, ADV, NEW_V, OLD_V, RET, ENT, clip_coef=0.2, vf_coef=0.5, ent_coef=0.0)
    log_ratio = (NEW_LP - OLD_LP).tolist()
    k3 = sum(math.exp(x) - 1 - x for x in log_ratio) / 4
    clipped = sum(abs(math.exp(x) - 1) > 0.2 for x in log_ratio) / 4
    assert out.approx_kl.item() == pytest.approx(k3, rel=1e-5)
    assert out.clip_fraction.item() == pytest.approx(clipped)
    assert clipped == 0.5  # ratios e^0.2 - 1 = 0.221 and e^-0.5 - 1 = -0.39 exceed 0.2


def test_ratio_one_gives_minus_mean_advantage() -> None:
    out = ppo_loss(OLD_LP, OLD_LP, ADV, RET, RET, RET, ENT, clip_coef=0.1, vf_coef=1.0, ent_coef=0.0, norm_adv=False)
    assert out.policy_loss.item() == pytest.approx(-ADV.mean().item())
    assert out.value_loss.item() == 0.0
    assert out.approx_kl.item() == 0.0


def test_gradient_routing() -> None:
    """The policy term moves only log-probs, the value term only values, the entropy term only entropy."""
    lp = NEW_LP.clone().requires_grad_()
    v = NEW_V.clone().requires_grad_()
    ent = ENT.clone().requires_grad_()
    out = ppo_loss(lp, OLD_LP, ADV, v, OLD_V, RET, ent, clip_coef=0.2, vf_coef=0.5, ent_coef=0.01)
    grads = torch.autograd.grad(out.value_loss, (lp, v, ent), allow_unused=True)
    assert grads[0] is None and grads[2] is None and grads[1].abs().sum() > 0
    grads = torch.autograd.grad(out.policy_loss, (lp, v, ent), allow_unused=True)
    assert grads[1] is None and grads[2] is None and grads[0].abs().sum() > 0
    (g_ent,) = torch.autograd.grad(out.loss, (ent,))
    assert_close(g_ent, torch.full_like(ENT, -0.01 / 4))


def test_clipped_samples_have_no_policy_gradient() -> None:
    """Positive advantage and ratio above 1 + ε: the clipped branch is active, gradient is zero."""
    lp = torch.tensor([0.5], requires_grad=True)
    out = ppo_loss(
        lp,
        torch.zeros(1),
        torch.ones(1),
        torch.zeros(1),
        torch.zeros(1),
        torch.zeros(1),
        torch.zeros(1),
        clip_coef=0.2,
        vf_coef=0.0,
        ent_coef=0.0,
        norm_adv=False,
    )
    (grad,) = torch.autograd.grad(out.policy_loss, (lp,))
    assert grad.item() == 0.0


def test_normalize_advantages() -> None:
    x = torch.tensor([1.0, 2.0, 3.0, 6.0])
    y = normalize_advantages(x)
    assert y.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert y.std().item() == pytest.approx(1.0, abs=1e-6)
    assert normalize_advantages(torch.tensor([4.0])).item() == 0.0


def test_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="advantages"):
        ppo_loss(NEW_LP, OLD_LP, ADV[:, None], NEW_V, OLD_V, RET, ENT, clip_coef=0.2, vf_coef=0.5, ent_coef=0.0)


@pytest.mark.parametrize("clip_vloss", [True, False])
def test_padding_is_masked_out_of_every_term(clip_vloss: bool) -> None:
    """Sequence minibatches [T, K] with padding give the loss of the real samples alone, whatever
    the padding holds (here huge and infinite values, which would poison a plain mean)."""
    mask = torch.tensor([[True, True], [True, False], [False, False]])  # 3 real of 6
    real = mask.flatten().nonzero().flatten()

    def padded(x: torch.Tensor, junk: float) -> torch.Tensor:
        out = torch.full((6,), junk)
        out[real] = x[:3]
        return out.view(3, 2)

    args = [NEW_LP, OLD_LP, ADV, NEW_V, OLD_V, RET, ENT]
    junk = [50.0, -50.0, float("inf"), 1e6, -1e6, 1e6, 1e3]
    kwargs = dict(clip_coef=0.2, vf_coef=0.5, ent_coef=0.01, norm_adv=True, clip_vloss=clip_vloss)
    masked = ppo_loss(*(padded(x, j) for x, j in zip(args, junk, strict=True)), mask=mask, **kwargs)
    alone = ppo_loss(*(x[:3] for x in args), **kwargs)
    for field in ("loss", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction"):
        assert_close(getattr(masked, field), getattr(alone, field), msg=field)


def test_masked_advantage_normalisation_uses_real_samples_only() -> None:
    adv = torch.tensor([1.0, 2.0, 4.0, 100.0, -7.0])
    mask = torch.tensor([True, True, True, False, False])
    out = normalize_advantages(adv, mask=mask)
    mean, std = 7 / 3, math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2)
    assert_close(out[:3], (adv[:3] - mean) / (std + 1e-8))
