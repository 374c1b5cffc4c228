"""The study's attention modules against the spec's formulas (spec §2), written out with einsum here."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from lit_rl.errors import ConfigError
from lit_rl.models.extractors.axial_attention import CWCA, CWRA, CWRCA, SWA, AxialSelfAttention
from lit_rl.models.extractors.nature_cnn import NatureCNN
from lit_rl.models.extractors.small_cnn import SmallCNN

MODULES = [SWA, CWRA, CWCA, CWRCA]
# (B, C, H, W): batch 1, the study's shape, non-square maps both ways
SHAPES = [(1, 16, 20, 20), (3, 16, 5, 7), (2, 8, 9, 4)]


def projections(module: AxialSelfAttention, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Q, K, V as the spec defines them: 1×1 convolutions, i.e. a channel mix plus bias at every pixel."""

    def conv1x1(conv: torch.nn.Conv2d) -> torch.Tensor:
        w = conv.weight[:, :, 0, 0]  # [C_out, C_in]
        return torch.einsum("oc,bchw->bohw", w, x) + conv.bias[None, :, None, None]

    return conv1x1(module.query), conv1x1(module.key), conv1x1(module.value)


def reference(module: AxialSelfAttention, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``Y`` and the softmax weights per the spec's table (one head), with explicit index letters."""
    q, k, v = projections(module, x)
    c, w = x.shape[1], x.shape[3]
    weights = {}
    y = torch.zeros_like(x)
    if isinstance(module, SWA):  # A[b,c,i,j] = softmax_j(sum_w Q[b,c,i,w] K[b,c,j,w] / sqrt(W))
        a = torch.softmax(torch.einsum("bciw,bcjw->bcij", q, k) / math.sqrt(w), dim=-1)
        weights["height"] = a[:, :, None]  # [B, C, G=1, H, H]
        y = torch.einsum("bcij,bcjw->bciw", a, v)
    if isinstance(module, (CWRA, CWRCA)):  # A[b,w,i,j] = softmax_j(sum_c Q[b,c,i,w] K[b,c,j,w] / sqrt(C))
        a = torch.softmax(torch.einsum("bciw,bcjw->bwij", q, k) / math.sqrt(c), dim=-1)
        weights["height"] = a[:, None]  # [B, G=1, W, H, H]
        y = y + torch.einsum("bwij,bcjw->bciw", a, v)
    if isinstance(module, (CWCA, CWRCA)):  # A[b,h,i,j] = softmax_j(sum_c Q[b,c,h,i] K[b,c,h,j] / sqrt(C))
        a = torch.softmax(torch.einsum("bchi,bchj->bhij", q, k) / math.sqrt(c), dim=-1)
        weights["width"] = a[:, None]  # [B, G=1, H, W, W]
        y = y + torch.einsum("bhij,bchj->bchi", a, v)
    return y, weights


@pytest.mark.parametrize("cls", MODULES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_the_spec_formulas(cls, shape) -> None:
    module = cls(shape[1]).double()
    x = torch.randn(shape, dtype=torch.float64)
    out, maps = module(x, return_maps=True)
    y_ref, weights_ref = reference(module, x)
    torch.testing.assert_close(out, x + y_ref)  # plain residual, no norm, no activation
    torch.testing.assert_close(maps.output, y_ref)
    assert maps.weights.keys() == weights_ref.keys()
    for axis, a in weights_ref.items():
        torch.testing.assert_close(maps.weights[axis], a)
        torch.testing.assert_close(a.sum(-1), torch.ones_like(a.sum(-1)))
    torch.testing.assert_close(module(x), out)  # the plain forward is the same computation


@pytest.mark.parametrize("cls", MODULES, ids=lambda c: c.__name__)
def test_channels_last_input_gives_the_same_result(cls) -> None:
    module = cls(16).double()
    x = torch.randn(2, 16, 6, 5, dtype=torch.float64)
    torch.testing.assert_close(module(x.contiguous(memory_format=torch.channels_last)), module(x))


@pytest.mark.parametrize("cls", MODULES, ids=lambda c: c.__name__)
def test_816_parameters_at_16_channels(cls) -> None:
    assert sum(p.numel() for p in cls(16).parameters()) == 3 * (16 * 16 + 16) == 816
    assert sum(p.numel() for p in SmallCNN((4, 84, 84), attention=cls).parameters()) == 676_144 + 816
    nature = NatureCNN((4, 84, 84), attention=cls)
    assert nature.attention.channels == 32
    assert sum(p.numel() for p in nature.attention.parameters()) == 3 * (32 * 32 + 32)
    assert nature(torch.rand(2, 4, 84, 84)).shape == (2, 512)


def test_projections_get_the_trunk_init() -> None:
    """Orthogonal with gain √2, zero bias (spec §1: attention projections included)."""
    module = SmallCNN((4, 84, 84), attention=CWRA).attention
    for conv in (module.query, module.key, module.value):
        w = conv.weight[:, :, 0, 0]
        torch.testing.assert_close(w @ w.T, 2.0 * torch.eye(16), atol=1e-5, rtol=0)
        assert torch.equal(conv.bias, torch.zeros(16))


def perturb_pixel(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    x2 = x.clone()
    x2[:, :, h, w] += torch.randn_like(x2[:, :, h, w]) * 3
    return x2


def test_cwca_mixes_only_within_rows_and_cwra_only_within_columns() -> None:
    x = torch.randn(2, 16, 6, 7, dtype=torch.float64)
    h, w = 2, 4
    x2 = perturb_pixel(x, h, w)
    cwca, cwra = CWCA(16).double(), CWRA(16).double()
    changed_cwca = (cwca(x2) - cwca(x)).abs().amax(dim=(0, 1)) > 1e-12  # [H, W]
    changed_cwra = (cwra(x2) - cwra(x)).abs().amax(dim=(0, 1)) > 1e-12
    rows = torch.zeros(6, 7, dtype=torch.bool)
    rows[h] = True
    cols = torch.zeros(6, 7, dtype=torch.bool)
    cols[:, w] = True
    assert torch.equal(changed_cwca, rows)  # the whole row h, nothing else
    assert torch.equal(changed_cwra, cols)  # the whole column w, nothing else


def test_swa_mixes_rows_within_one_channel_only() -> None:
    """SWA's tokens are the rows of one channel: with per-channel (identity) projections, a change in
    channel 5 reaches every row of channel 5 and no other channel."""
    x = torch.randn(2, 16, 6, 7, dtype=torch.float64)
    x2 = x.clone()
    x2[:, 5, 2, 3] += 2.0
    swa = SWA(16).double()
    with torch.no_grad():
        for conv in (swa.query, swa.key, swa.value):
            conv.weight.copy_(torch.eye(16, dtype=torch.float64)[:, :, None, None])
            conv.bias.zero_()
    diff = (swa(x2) - swa(x)).abs()
    assert torch.equal(diff.amax(dim=(0, 2, 3)) > 1e-12, torch.arange(16) == 5)
    assert (diff[:, 5].amax(dim=(0, 2)) > 1e-12).all()  # every row of that channel changed


def test_cwrca_is_the_sum_of_cwra_and_cwca_with_shared_projections() -> None:
    x = torch.randn(3, 16, 5, 7, dtype=torch.float64)
    both = CWRCA(16).double()
    rows, cols = CWRA(16).double(), CWCA(16).double()
    rows.load_state_dict(both.state_dict())
    cols.load_state_dict(both.state_dict())
    torch.testing.assert_close(both(x) - x, (rows(x) - x) + (cols(x) - x))


@pytest.mark.parametrize("cls", MODULES, ids=lambda c: c.__name__)
def test_every_parameter_receives_a_gradient(cls) -> None:
    module = cls(16)
    x = torch.randn(2, 16, 20, 20, requires_grad=True)
    module(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_gradients_match_the_reference() -> None:
    """The backward pass (with its contiguous-gradient step) against autograd through the reference."""
    module = CWRCA(8).double()
    x = torch.randn(2, 8, 5, 6, dtype=torch.float64, requires_grad=True)
    target = torch.randn(2, 8, 5, 6, dtype=torch.float64)
    (module(x.contiguous(memory_format=torch.channels_last)) * target).sum().backward()
    grads = [x.grad.clone()] + [p.grad.clone() for p in module.parameters()]
    x.grad = None
    module.zero_grad()
    y_ref, _ = reference(module, x)
    ((x + y_ref) * target).sum().backward()
    for got, want in zip(grads, [x.grad] + [p.grad for p in module.parameters()], strict=True):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("gate", ["alpha", "beta", "alpha_beta"])
def test_gated_residuals(gate: str) -> None:
    module = CWRA(16, gate=gate).double()
    x = torch.randn(2, 16, 5, 6, dtype=torch.float64)
    if gate in ("alpha", "alpha_beta"):
        torch.testing.assert_close(module(x), x)  # α starts at 0: the module starts as the identity
    with torch.no_grad():
        if module.alpha is not None:
            module.alpha.fill_(0.7)
        if module.beta is not None:
            module.beta.fill_(1.3)
    y_ref, _ = reference(module, x)
    alpha = 0.7 if module.alpha is not None else 1.0
    beta = 1.3 if module.beta is not None else 1.0
    torch.testing.assert_close(module(x), alpha * y_ref + beta * x)
    module(x).square().sum().backward()
    for name, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_alpha_gate_starts_with_gradient_only_on_alpha() -> None:
    module = CWCA(16, gate="alpha_beta")
    module(torch.randn(2, 16, 5, 6)).square().sum().backward()
    assert module.alpha.grad.abs() > 0 and module.beta.grad.abs() > 0
    assert module.query.weight.grad.abs().sum() == 0  # α = 0 blocks the attention branch at init


def grouped_reference(q, k, v, groups: int, token_axis: str) -> torch.Tensor:
    """Channel-wise attention with the channels split into ``groups`` heads, each with its own softmax."""
    outs = []
    for qg, kg, vg in zip(q.chunk(groups, 1), k.chunk(groups, 1), v.chunk(groups, 1), strict=True):
        scale = math.sqrt(qg.shape[1])
        if token_axis == "height":
            a = torch.softmax(torch.einsum("bciw,bcjw->bwij", qg, kg) / scale, -1)
            outs.append(torch.einsum("bwij,bcjw->bciw", a, vg))
        else:
            a = torch.softmax(torch.einsum("bchi,bchj->bhij", qg, kg) / scale, -1)
            outs.append(torch.einsum("bhij,bchj->bchi", a, vg))
    return torch.cat(outs, 1)


@pytest.mark.parametrize(("cls", "axis"), [(CWRA, "height"), (CWCA, "width")], ids=["CWRA", "CWCA"])
def test_heads_split_channels_with_separate_softmaxes(cls, axis: str) -> None:
    module = cls(16, heads=2).double()
    x = torch.randn(2, 16, 5, 6, dtype=torch.float64)
    out, maps = module(x, return_maps=True)
    torch.testing.assert_close(out - x, grouped_reference(*projections(module, x), 2, axis))
    assert maps.weights[axis].shape[1] == 2


def test_swa_heads_split_the_width() -> None:
    module = SWA(4, heads=2).double()
    x = torch.randn(2, 4, 5, 6, dtype=torch.float64)
    q, k, v = projections(module, x)
    outs = []
    for qg, kg, vg in zip(q.chunk(2, -1), k.chunk(2, -1), v.chunk(2, -1), strict=True):
        a = torch.softmax(torch.einsum("bciw,bcjw->bcij", qg, kg) / math.sqrt(3), -1)
        outs.append(torch.einsum("bcij,bcjw->bciw", a, vg))
    torch.testing.assert_close(module(x) - x, torch.cat(outs, -1))


def test_heads_that_do_not_divide_are_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="heads=3 must divide the channel size 16"):
        CWRA(16, heads=3)
    with pytest.raises(ConfigError, match="heads=3 must divide the width size 20"):
        SWA(16, heads=3)(torch.randn(1, 16, 20, 20))


@pytest.mark.parametrize(("cls", "shape", "tokens"), [(CWCA, (2, 16, 1, 7), "w"), (CWRA, (2, 16, 6, 1), "h")])
def test_equals_plain_attention_when_the_other_axis_has_size_one(cls, shape, tokens: str) -> None:
    module = cls(16).double()
    x = torch.randn(shape, dtype=torch.float64)
    q, k, v = (t.flatten(2).transpose(1, 2) for t in projections(module, x))  # [B, tokens, C]
    expected = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(C), softmax over keys
    torch.testing.assert_close(module(x) - x, expected.transpose(1, 2).reshape(shape))


def test_record_attn_routes_maps_through_a_hookable_probe() -> None:
    module = CWRCA(16)
    x = torch.randn(2, 16, 5, 6)
    seen = []
    module.maps.register_forward_hook(lambda mod, args, out: seen.append(out))
    plain = module(x)
    assert seen == []  # off by default: no maps computed for the probe
    module.record_attn = True
    recorded = module(x)
    torch.testing.assert_close(recorded, plain)
    (maps,) = seen
    _, returned = module(x, return_maps=True)
    torch.testing.assert_close(maps.weights["height"], returned.weights["height"])
    torch.testing.assert_close(maps.output, recorded - x)


def test_attention_factory_builds_inside_small_cnn_from_yaml_style_partial() -> None:
    extractor = SmallCNN((4, 84, 84), attention=partial(CWRA, heads=2, gate="beta"))
    assert (extractor.attention.channels, extractor.attention.heads, extractor.attention.gate) == (16, 2, "beta")
    assert extractor(torch.rand(1, 4, 84, 84)).shape == (1, 256)
