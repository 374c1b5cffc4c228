"""Grad-CAM, the study's maps, attention weights and capture on real Atari observations."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lit_rl.interpret.explain import attention_received, capture_observations, explain, main
from lit_rl.interpret.gradcam import grad_cam, logit_std, study_maps
from lit_rl.models.actor_critic import ActorCritic
from lit_rl.models.extractors.axial_attention import CWRA, SWA
from lit_rl.models.extractors.small_cnn import SmallCNN
from lit_rl.models.extractors.vit import ViTExtractor
from tests.study_data import study_data_dir


@pytest.fixture(scope="module")
def pong_obs() -> torch.Tensor:
    """Three observation stacks captured from the Pong ROM by a random policy."""
    return torch.from_numpy(capture_observations("PongNoFrameskip-v4", 3, seed=0, gaps=(40, 80))[:, 0])


def agent(attention=None) -> ActorCritic:
    torch.manual_seed(0)
    return ActorCritic((4, 84, 84), 6, partial(SmallCNN, attention=attention)).eval()


def reference_grad_cam(policy: ActorCritic, obs: torch.Tensor) -> torch.Tensor:
    """Grad-CAM written out: the pre-ReLU c1 output, autograd for the greedy logit, weights = mean
    gradient, ReLU, bilinear resizing, min-max normalisation."""
    ex = policy.extractor
    x = obs.float() / 255.0
    a = ex.c1[0](x)
    logits = policy.actor_head(ex.l1(ex.c2(ex.attention(torch.relu(a)))))
    (grad,) = torch.autograd.grad(logits.gather(1, logits.argmax(1, keepdim=True)).sum(), a)
    cam = torch.relu((grad.mean((2, 3), keepdim=True) * a).sum(1, keepdim=True)).detach()
    up = F.interpolate(cam, size=(84, 84), mode="bilinear", align_corners=False)[:, 0]
    low = up.flatten(1).min(1).values[:, None, None]
    return (up - low) / (up - low).flatten(1).max(1).values[:, None, None]


@pytest.mark.atari
@pytest.mark.parametrize("attention", [None, CWRA])
def test_grad_cam_against_a_reference_on_real_frames(pong_obs: torch.Tensor, attention) -> None:
    policy = agent(attention)
    cam = grad_cam(policy, pong_obs)
    assert cam.shape == (3, 84, 84)
    assert cam.min() >= 0.0 and cam.max() <= 1.0 and cam.flatten(1).std(1).min() > 0.05  # not constant
    torch.testing.assert_close(cam, reference_grad_cam(policy, pong_obs), atol=2e-3, rtol=1e-3)


@pytest.mark.atari
def test_study_maps_and_attention_weights(pong_obs: torch.Tensor) -> None:
    maps = study_maps(agent(CWRA), pong_obs)
    assert set(maps) == {"F", "Y", "F_hat", "c2"}
    for m in maps.values():
        assert m.shape == (3, 84, 84) and m.std() > 0.01
    assert study_maps(agent(), pong_obs)["Y"].abs().sum() == 0  # NA has no attention output
    for policy in (agent(CWRA), agent(SWA)):
        received = attention_received(policy, pong_obs)
        assert received.shape == (3, 84, 84) and received.std() > 0.01
    swa = attention_received(agent(SWA), pong_obs)
    assert torch.equal(swa[:, :, 0], swa[:, :, 40])  # SWA weighs whole rows
    vit = ActorCritic((4, 84, 84), 6, partial(ViTExtractor, patch_size=12, embed_dim=32, depth=1, num_heads=2))
    assert attention_received(vit.eval(), pong_obs).shape == (3, 84, 84)
    with pytest.raises(ValueError, match="no attention module"):
        attention_received(agent(), pong_obs)


def test_logit_std_by_hand() -> None:
    policy = agent()
    obs = torch.randint(0, 256, (4, 4, 84, 84), dtype=torch.uint8)
    logits = policy(obs).logits
    expected = sum(float(torch.std(row)) for row in logits) / 4
    assert logit_std(policy, obs) == pytest.approx(expected, rel=1e-5)


@pytest.mark.study_data
def test_explain_writes_every_grid_for_the_studys_observations(tmp_path: Path) -> None:
    obs = torch.from_numpy(np.concatenate([np.load(study_data_dir() / f"Assault_obs_{i}.npy") for i in (1, 2)]))
    assert obs.shape == (2, 4, 84, 84)
    with pytest.warns(UserWarning, match="no attention column for NA: this agent has no attention module"):
        stds = explain({"NA": agent(), "CWRA": agent(CWRA)}, obs, tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    for kind in ("gradcam", "F", "Y", "F_hat", "c2", "attention"):
        assert f"{kind}.png" in names and f"{kind}.pdf" in names
    assert set(stds) == {"NA", "CWRA"} and "NA," in (tmp_path / "logit_std.csv").read_text()


def test_explain_names_every_map_an_agent_cannot_give(tmp_path: Path) -> None:
    """No silent gaps in the grids: a ViT has no convolution for Grad-CAM and no small-CNN maps, an NA
    agent no attention; each missing column is a warning naming the agent, the maps and why."""
    vit = ActorCritic((4, 84, 84), 6, partial(ViTExtractor, patch_size=12, embed_dim=32, depth=1, num_heads=2))
    obs = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    with pytest.warns(UserWarning) as record:
        explain({"NA": agent(), "ViT": vit.eval()}, obs, tmp_path)
    messages = sorted(str(w.message) for w in record if "lit-rl-explain" in str(w.message))
    assert messages == [
        "lit-rl-explain: no F, Y, F_hat and c2 column for ViT: study maps need the small CNN's c1/attention/c2 "
        "layers, not ViTExtractor",
        "lit-rl-explain: no attention column for NA: this agent has no attention module",
        "lit-rl-explain: no gradcam column for ViT: ViTExtractor has no Conv2d layer; name a layer with --layer",
    ]
    assert {p.name for p in tmp_path.glob("*.png")} == {f"{k}.png" for k in ("gradcam", "F", "Y", "F_hat", "c2")} | {
        "attention.png"
    }


@pytest.mark.atari
def test_capture_saves_study_shaped_stacks(tmp_path: Path) -> None:
    gaps = ["--min-gap", "5", "--max-gap", "10"]
    main(["capture", "--env-id", "PongNoFrameskip-v4", "--count", "2", *gaps, "--out", str(tmp_path)])
    first = np.load(tmp_path / "Pong_obs_1.npy")
    assert first.shape == (1, 4, 84, 84) and first.dtype == np.uint8
    assert not np.array_equal(first, np.load(tmp_path / "Pong_obs_2.npy"))
