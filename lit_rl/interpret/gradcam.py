"""Grad-CAM (Selvaraju et al., 2017) with pytorch-grad-cam, and the study's feature maps with hooks.

As in the study (README, "Analysis and interpretability"): Grad-CAM on a chosen layer (default the first
convolution, its pre-ReLU output), target the actor logit of the greedy action; channel weights are the spatial mean of
the gradients, the map ``ReLU(Σ_k w_k A_k)`` is upsampled bilinearly to the input size and min–max
normalised (pytorch-grad-cam's ``GradCAM``, checked against a reference in the tests). The maps of the study's
grids (``F = ReLU(c1)``, the attention output ``Y``, ``F̂ = F + Y``, ``ReLU(c2)``) are summed over
channels, upsampled and min–max normalised.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lit_rl.interpret.hooks import record_attention
from lit_rl.models.actor_critic import ActorCritic


def first_conv(policy: ActorCritic) -> str:
    """Qualified name of the first ``Conv2d`` of the policy's extractor (Grad-CAM's default layer)."""
    for name, module in policy.named_modules():
        if isinstance(module, nn.Conv2d):
            return name
    raise ValueError(f"{type(policy.extractor).__name__} has no Conv2d layer; name a layer with --layer")


def normalize_maps(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Upsample ``[B, h, w]`` maps bilinearly to ``size`` and min–max normalise each to ``[0, 1]``
    (a constant map becomes zeros)."""
    up = F.interpolate(maps[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]
    low = up.amin(dim=(1, 2), keepdim=True)
    span = up.amax(dim=(1, 2), keepdim=True) - low
    return torch.where(span > 0, (up - low) / span.clamp_min(1e-12), torch.zeros_like(up))


class _Logits(nn.Module):
    """The actor logits of a feed-forward policy as a function of preprocessed (float) observations."""

    def __init__(self, policy: ActorCritic) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, x: Tensor) -> Tensor:
        return self.policy.logits(self.policy._streams(self.policy.extractor, x).policy)


def grad_cam(policy: ActorCritic, obs: Tensor, layer: str | None = None) -> Tensor:
    """Grad-CAM of the greedy action's logit for raw observations ``[B, C, H, W]``: ``[B, H, W]`` in [0, 1].

    Args:
        policy: A feed-forward actor-critic (put in eval mode by the caller).
        obs: Observations as the env gives them (uint8 stacks).
        layer: Qualified module name whose output is explained; default :func:`first_conv`.
    """
    try:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    except ImportError as err:
        raise ImportError("Grad-CAM needs pytorch-grad-cam: pip install 'lit_rl[analysis]'") from err
    if policy.recurrent:
        raise ValueError("Grad-CAM of a memory policy is not supported (it needs its memory as input)")
    module = policy.get_submodule(layer or first_conv(policy))
    x = policy.preprocess(obs).contiguous()
    model = _Logits(policy)
    with torch.no_grad():
        greedy = model(x).argmax(1).tolist()
    with GradCAM(model=model, target_layers=[module]) as cam:
        maps = cam(input_tensor=x, targets=[ClassifierOutputTarget(a) for a in greedy])
    policy.zero_grad(set_to_none=True)
    return torch.from_numpy(maps).float()


@torch.no_grad()
def study_maps(policy: ActorCritic, obs: Tensor) -> dict[str, Tensor]:
    """The study's maps of a small-CNN agent: ``F``, ``Y``, ``F_hat``, ``c2`` (each ``[B, H, W]`` in [0, 1]).

    ``Y`` is the attention module's output (zeros for the NA agent); ``F_hat = F + Y``.
    """
    extractor = policy.extractor
    if not all(hasattr(extractor, name) for name in ("c1", "attention", "c2")):
        raise ValueError(f"study maps need the small CNN's c1/attention/c2 layers, not {type(extractor).__name__}")
    store: dict[str, Tensor] = {}
    hooks = [
        extractor.c1.register_forward_hook(lambda m, a, out: store.__setitem__("F", out)),
        extractor.c2[1].register_forward_hook(lambda m, a, out: store.__setitem__("c2", out)),
    ]
    try:
        with record_attention(policy) as recorded:
            policy(obs)
    finally:
        for hook in hooks:
            hook.remove()
    maps = [m for records in recorded.values() for m in records if hasattr(m, "output")]
    y = maps[0].output if maps else torch.zeros_like(store["F"])
    size = tuple(obs.shape[-2:])
    raw = {"F": store["F"], "Y": y, "F_hat": store["F"] + y, "c2": store["c2"]}
    return {name: normalize_maps(x.sum(1), size) for name, x in raw.items()}


@torch.no_grad()
def logit_std(policy: ActorCritic, obs: Tensor) -> float:
    """The study's exploration proxy: the std of the actor logits per observation, averaged."""
    logits = policy(obs).logits
    return float(logits.float().std(dim=1).mean())
