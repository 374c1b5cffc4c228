"""Shapes, gradients and parameter counts of every extractor."""

from __future__ import annotations

import pytest
import torch

from lit_rl.errors import ConfigError
from lit_rl.models.extractors.mlp import MLP
from lit_rl.models.extractors.nature_cnn import NatureCNN
from lit_rl.models.extractors.small_cnn import SmallCNN

CASES = [
    (MLP, (4,), {}, 64),
    (MLP, (3, 5), {"hidden_sizes": (32,), "activation": "relu"}, 32),
    (NatureCNN, (4, 84, 84), {}, 512),
    (NatureCNN, (1, 64, 72), {"features_dim": 128}, 128),
    (SmallCNN, (4, 84, 84), {}, 256),
    (SmallCNN, (2, 40, 60), {"features_dim": 32}, 32),
]


@pytest.mark.parametrize(("cls", "shape", "kwargs", "out_dim"), CASES)
@pytest.mark.parametrize("batch", [1, 3])
def test_shapes_and_gradients(cls, shape, kwargs, out_dim, batch) -> None:
    model = cls(shape, **kwargs)
    assert model.out_dim == out_dim
    x = torch.rand(batch, *shape)
    y = model(x)
    assert y.shape == (batch, out_dim)
    assert torch.isfinite(y).all()
    y.square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_parameter_counts() -> None:
    # the study's small CNN: 16*4*64+16 + 32*16*16+32 + 2592*256+256 = 676,144
    assert sum(p.numel() for p in SmallCNN((4, 84, 84)).parameters()) == 676_144
    # Nature CNN: 8,224 + 32,832 + 36,928 + 1,606,144
    assert sum(p.numel() for p in NatureCNN((4, 84, 84)).parameters()) == 1_684_128


def test_small_cnn_layer_shapes() -> None:
    model = SmallCNN((4, 84, 84))
    f = model.c1(torch.rand(2, 4, 84, 84))
    assert f.shape == (2, 16, 20, 20)
    assert model.c2[0](f).shape == (2, 32, 9, 9)


@pytest.mark.parametrize("cls", [NatureCNN, SmallCNN])
def test_cnn_on_vector_observations_is_a_clear_error(cls) -> None:
    with pytest.raises(ConfigError, match=r"obs_shape=\(4,\).*MLP"):
        cls((4,))


def test_orthogonal_trunk_init_gain() -> None:
    """Orthogonal init with gain √2: the singular values of a weight matrix are all √2 (wide side)."""
    w = SmallCNN((4, 84, 84)).l1[0].weight  # [256, 2592]: rows orthogonal
    s = torch.linalg.svdvals(w)
    assert torch.allclose(s, torch.full_like(s, 2**0.5), atol=1e-4)
    assert SmallCNN((4, 84, 84)).l1[0].bias.abs().max() == 0


def test_extractor_without_forward_cannot_be_built() -> None:
    from lit_rl.models.extractors.base import FeatureExtractor

    class NoForward(FeatureExtractor):
        pass

    with pytest.raises(TypeError, match="abstract"):
        NoForward((4,))
