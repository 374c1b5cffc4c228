"""Axis-specific self-attention (SWA, CWRA, CWCA, CWRCA) against the study's formulas (README, "The study's agents").

Every expected value comes from references written here with ``torch.einsum`` (index letters as in the
spec table), in float64, from the module's own ``query``/``key``/``value`` 1×1 conv parameters.
"""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.testing import assert_close

from lit_rl.errors import ConfigError
from lit_rl.models.extractors.axial_attention import CWCA, CWRA, CWRCA, SWA, AttentionMaps
from lit_rl.models.extractors.nature_cnn import NatureCNN
from lit_rl.models.extractors.small_cnn import SmallCNN

MODULES = [SWA, CWRA, CWCA, CWRCA]
# (B, C, H, W): batch 1, a non-square map, C = 16 and another C.
SHAPES = [(1, 16, 5, 7), (3, 16, 20, 20), (2, 6, 5, 7), (2, 8, 7, 5)]


# --------------------------------------------------------------------------- references


def make(cls, channels: int, **kwargs) -> nn.Module:
    """A float64 module with random (non-zero) biases, so the bias path is exercised too."""
    module = cls(channels, **kwargs).double()
    with torch.no_grad():
        for conv in (module.query, module.key, module.value):
            conv.bias.normal_(0.0, 0.5)
    return module


def project(module: nn.Module, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Q, K, V [B, C, H, W]: a 1×1 conv is a sum over input channels plus a bias."""
    out = []
    for conv in (module.query, module.key, module.value):
        weight = conv.weight[:, :, 0, 0]  # [C_out, C_in]
        out.append(torch.einsum("oc,bchw->bohw", weight, x) + conv.bias[None, :, None, None])
    return tuple(out)


def ref_swa(q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """A[b,c,i,j] = softmax_j(Σ_w Q[b,c,i,w] K[b,c,j,w] / √W); Y[b,c,i,w] = Σ_j A[b,c,i,j] V[b,c,j,w]."""
    width = q.shape[-1]
    a = torch.softmax(torch.einsum("bciw,bcjw->bcij", q, k) / math.sqrt(width), dim=-1)
    return torch.einsum("bcij,bcjw->bciw", a, v), a


def ref_cwra(q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """A[b,w,i,j] = softmax_j(Σ_c Q[b,c,i,w] K[b,c,j,w] / √C); Y[b,c,i,w] = Σ_j A[b,w,i,j] V[b,c,j,w]."""
    channels = q.shape[1]
    a = torch.softmax(torch.einsum("bciw,bcjw->bwij", q, k) / math.sqrt(channels), dim=-1)
    return torch.einsum("bwij,bcjw->bciw", a, v), a


def ref_cwca(q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """A[b,h,i,j] = softmax_j(Σ_c Q[b,c,h,i] K[b,c,h,j] / √C); Y[b,c,h,i] = Σ_j A[b,h,i,j] V[b,c,h,j]."""
    channels = q.shape[1]
    a = torch.softmax(torch.einsum("bchi,bchj->bhij", q, k) / math.sqrt(channels), dim=-1)
    return torch.einsum("bhij,bchj->bchi", a, v), a


def reference(module: nn.Module, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Y and the softmax weights, with a heads axis G = 1 inserted where AttentionMaps documents it."""
    q, k, v = project(module, x)
    if isinstance(module, SWA):
        y, a = ref_swa(q, k, v)
        return y, {"height": a.unsqueeze(2)}  # [B, C, G, H, H]
    if isinstance(module, CWRCA):
        y_h, a_h = ref_cwra(q, k, v)
        y_w, a_w = ref_cwca(q, k, v)
        return y_h + y_w, {"height": a_h.unsqueeze(1), "width": a_w.unsqueeze(1)}
    if isinstance(module, CWRA):
        y, a = ref_cwra(q, k, v)
        return y, {"height": a.unsqueeze(1)}  # [B, G, W, H, H]
    y, a = ref_cwca(q, k, v)
    return y, {"width": a.unsqueeze(1)}  # [B, G, H, W, W]


def reference_heads(module: nn.Module, x: Tensor, heads: int) -> tuple[Tensor, Tensor]:
    """Grouped reference: SWA splits W into ``heads`` groups of d, the others split C; scale √d."""
    q, k, v = project(module, x)
    b, c, h, w = x.shape
    if isinstance(module, SWA):
        d = w // heads
        q, k, v = (t.reshape(b, c, h, heads, d) for t in (q, k, v))
        a = torch.softmax(torch.einsum("bcigd,bcjgd->bcgij", q, k) / math.sqrt(d), dim=-1)
        return torch.einsum("bcgij,bcjgd->bcigd", a, v).reshape(b, c, h, w), a
    d = c // heads
    q, k, v = (t.reshape(b, heads, d, h, w) for t in (q, k, v))
    if isinstance(module, CWRA):
        a = torch.softmax(torch.einsum("bgdiw,bgdjw->bgwij", q, k) / math.sqrt(d), dim=-1)
        return torch.einsum("bgwij,bgdjw->bgdiw", a, v).reshape(b, c, h, w), a
    a = torch.softmax(torch.einsum("bgdhi,bgdhj->bghij", q, k) / math.sqrt(d), dim=-1)
    return torch.einsum("bghij,bgdhj->bgdhi", a, v).reshape(b, c, h, w), a


def random_input(b: int, c: int, h: int, w: int) -> Tensor:
    return torch.randn(b, c, h, w, dtype=torch.float64)


# --------------------------------------------------------------------------- formulas


def test_reference_einsum_matches_loops_on_a_tiny_case() -> None:
    """The einsum references themselves against plain loops over the formulas' indices (B=1, C=2, H=2, W=3)."""
    q, k, v = (torch.randn(1, 2, 2, 3, dtype=torch.float64) for _ in range(3))
    _, c_, h_, w_ = q.shape
    y_swa = torch.zeros_like(q)
    y_cwra = torch.zeros_like(q)
    y_cwca = torch.zeros_like(q)
    for c in range(c_):
        for i in range(h_):
            logits = torch.stack([sum(q[0, c, i, w] * k[0, c, j, w] for w in range(w_)) for j in range(h_)])
            a = torch.softmax(logits / math.sqrt(w_), 0)
            for w in range(w_):
                y_swa[0, c, i, w] = sum(a[j] * v[0, c, j, w] for j in range(h_))
    for w in range(w_):
        for i in range(h_):
            logits = torch.stack([sum(q[0, c, i, w] * k[0, c, j, w] for c in range(c_)) for j in range(h_)])
            a = torch.softmax(logits / math.sqrt(c_), 0)
            for c in range(c_):
                y_cwra[0, c, i, w] = sum(a[j] * v[0, c, j, w] for j in range(h_))
    for h in range(h_):
        for i in range(w_):
            logits = torch.stack([sum(q[0, c, h, i] * k[0, c, h, j] for c in range(c_)) for j in range(w_)])
            a = torch.softmax(logits / math.sqrt(c_), 0)
            for c in range(c_):
                y_cwca[0, c, h, i] = sum(a[j] * v[0, c, h, j] for j in range(w_))
    assert_close(ref_swa(q, k, v)[0], y_swa)
    assert_close(ref_cwra(q, k, v)[0], y_cwra)
    assert_close(ref_cwca(q, k, v)[0], y_cwca)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("cls", MODULES)
def test_forward_and_maps_match_spec_formulas(cls, shape) -> None:
    module = make(cls, shape[1])
    x = random_input(*shape)
    y_ref, weights_ref = reference(module, x)

    out = module(x)
    out_with_maps, maps = module(x, return_maps=True)

    assert_close(out, x + y_ref)
    assert_close(out_with_maps, x + y_ref)
    assert isinstance(maps, AttentionMaps)
    assert_close(maps.output, y_ref)
    assert set(maps.weights) == set(weights_ref)
    for axis, expected in weights_ref.items():
        assert maps.weights[axis].shape == expected.shape, axis
        assert_close(maps.weights[axis], expected)


@pytest.mark.parametrize("cls", MODULES)
def test_scale_is_sqrt_w_for_swa_and_sqrt_c_otherwise(cls) -> None:
    """C ≠ W so that the two scales differ: √7 vs √16 on a 5×7 map with C = 16."""
    module = make(cls, 16)
    x = random_input(2, 16, 5, 7)
    q, k, v = project(module, x)
    wrong = math.sqrt(16) if cls is SWA else math.sqrt(7)
    # The same formula with the other scale must disagree with the module: the scale matters.
    if cls is SWA:
        a_wrong = torch.softmax(torch.einsum("bciw,bcjw->bcij", q, k) / wrong, -1)
        y_wrong = torch.einsum("bcij,bcjw->bciw", a_wrong, v)
    elif cls is CWCA:
        a_wrong = torch.softmax(torch.einsum("bchi,bchj->bhij", q, k) / wrong, -1)
        y_wrong = torch.einsum("bhij,bchj->bchi", a_wrong, v)
    else:
        a_wrong = torch.softmax(torch.einsum("bciw,bcjw->bwij", q, k) / wrong, -1)
        y_wrong = torch.einsum("bwij,bcjw->bciw", a_wrong, v)
    _, maps = module(x, return_maps=True)
    y_right, _ = reference(module, x)
    assert_close(maps.output, y_right)
    assert (maps.output - y_wrong).abs().max() > 1e-3


@pytest.mark.parametrize("cls", MODULES)
def test_channels_last_input_gives_the_same_result(cls) -> None:
    """ActorCritic feeds channels-last activations; the layout must not change the numbers."""
    module = make(cls, 16)
    x = random_input(2, 16, 5, 7)
    assert_close(module(x.contiguous(memory_format=torch.channels_last)), module(x))


# --------------------------------------------------------------------------- parameter counts


@pytest.mark.parametrize("cls", MODULES)
def test_816_parameters_at_16_channels(cls) -> None:
    # three 1×1 convs 16→16 with bias: 3 * (16*16 + 16)
    assert sum(p.numel() for p in cls(16).parameters()) == 816
    assert sum(p.numel() for p in cls(16, gate="alpha_beta").parameters()) == 818


@pytest.mark.parametrize("cls", MODULES)
def test_small_cnn_with_attention(cls) -> None:
    model = SmallCNN((4, 84, 84), attention=cls)
    assert sum(p.numel() for p in model.parameters()) == 676_144 + 816
    assert model.attention.channels == 16
    # The module sits between ReLU(c1) and c2 (the study's SmallCNN): rebuild the forward from the reference.
    model = model.double()
    obs = torch.rand(2, 4, 84, 84, dtype=torch.float64)
    f = torch.relu(model.c1[0](obs))
    assert f.shape == (2, 16, 20, 20)
    y_ref, _ = reference(model.attention, f)
    assert_close(model(obs), model.l1(model.c2(f + y_ref)))


@pytest.mark.parametrize("cls", MODULES)
def test_nature_cnn_with_attention(cls) -> None:
    model = NatureCNN((4, 84, 84), attention=cls)
    assert model.attention.channels == 32
    assert sum(p.numel() for p in model.attention.parameters()) == 3 * (32 * 32 + 32)
    assert sum(p.numel() for p in model.parameters()) == 1_684_128 + 3 * (32 * 32 + 32)
    model = model.double()
    obs = torch.rand(2, 4, 84, 84, dtype=torch.float64)
    f = model.c1(obs)
    assert f.shape == (2, 32, 20, 20)
    y_ref, _ = reference(model.attention, f)
    out = model(obs)
    assert out.shape == (2, 512)
    assert_close(out, model.l1(model.c3(model.c2(f + y_ref))))


def test_projections_get_the_trunk_init() -> None:
    """Orthogonal with gain √2, zero bias (the study's init, attention projections included)."""
    module = SmallCNN((4, 84, 84), attention=CWRA).attention
    for conv in (module.query, module.key, module.value):
        w = conv.weight[:, :, 0, 0]
        assert_close(w @ w.T, 2.0 * torch.eye(16), atol=1e-5, rtol=0)
        assert torch.equal(conv.bias, torch.zeros(16))


def test_attention_factory_builds_inside_small_cnn_from_yaml_style_partial() -> None:
    extractor = SmallCNN((4, 84, 84), attention=partial(CWRA, heads=2, gate="beta"))
    assert (extractor.attention.channels, extractor.attention.heads, extractor.attention.gate) == (16, 2, "beta")
    assert extractor(torch.rand(1, 4, 84, 84)).shape == (1, 256)


# --------------------------------------------------------------------------- locality and structure


def _perturb_pixel(x: Tensor, h: int, w: int, channel: int | None = None) -> Tensor:
    x2 = x.clone()
    if channel is None:
        x2[:, :, h, w] += torch.randn(x.shape[0], x.shape[1], dtype=x.dtype)
    else:
        x2[:, channel, h, w] += 1.5
    return x2


def test_cwca_mixes_only_within_a_row() -> None:
    module = make(CWCA, 16)
    x = random_input(2, 16, 5, 7)
    h, w = 2, 4
    diff = (module(_perturb_pixel(x, h, w)) - module(x)).abs()
    others = torch.ones(5, dtype=torch.bool)
    others[h] = False
    assert diff[:, :, others].max() <= 1e-12
    # Every pixel of row h moves, not only the perturbed one: the row is mixed.
    assert (diff[:, :, h].amax(dim=1) > 1e-6).all()


def test_cwra_mixes_only_within_a_column() -> None:
    module = make(CWRA, 16)
    x = random_input(2, 16, 5, 7)
    h, w = 2, 4
    diff = (module(_perturb_pixel(x, h, w)) - module(x)).abs()
    others = torch.ones(7, dtype=torch.bool)
    others[w] = False
    assert diff[..., others].max() <= 1e-12
    assert (diff[..., w].amax(dim=1) > 1e-6).all()


def test_cwrca_mixes_along_the_row_and_the_column() -> None:
    module = make(CWRCA, 16)
    x = random_input(2, 16, 5, 7)
    h, w = 2, 4
    diff = (module(_perturb_pixel(x, h, w)) - module(x)).abs().amax(dim=(0, 1))  # [H, W]
    cross = torch.zeros(5, 7, dtype=torch.bool)
    cross[h, :] = True
    cross[:, w] = True
    assert diff[~cross].max() <= 1e-12
    assert (diff[cross] > 1e-6).all()


def test_swa_keeps_channels_apart() -> None:
    """SWA attends per channel. The 1×1 projections mix channels, so the property is checked with
    channel-diagonal projections: then perturbing one pixel of one channel changes only that channel."""
    module = make(SWA, 16)
    with torch.no_grad():
        for conv in (module.query, module.key, module.value):
            conv.weight.copy_(torch.diag_embed(torch.randn(16, dtype=torch.float64))[:, :, None, None])
    x = random_input(2, 16, 5, 7)
    channel = 3
    diff = (module(_perturb_pixel(x, 2, 4, channel=channel)) - module(x)).abs()
    others = torch.ones(16, dtype=torch.bool)
    others[channel] = False
    assert diff[:, others].max() <= 1e-12
    # Within the channel, other rows move too: rows attend to each other.
    assert diff[:, channel, 0].max() > 1e-6


def test_swa_channels_are_independent_given_qkv() -> None:
    """With the study's full 1×1 projections: the mixing step itself (``mix``) keeps channels apart."""
    module = make(SWA, 16)
    q, k, v = (random_input(2, 16, 5, 7) for _ in range(3))
    y, _ = module.mix(q, k, v)
    q2 = q.clone()
    q2[:, 5, 1, :] += 1.0
    y2, _ = module.mix(q2, k, v)
    diff = (y2 - y).abs()
    others = torch.ones(16, dtype=torch.bool)
    others[5] = False
    assert diff[:, others].max() <= 1e-12
    assert diff[:, 5].max() > 1e-6


def test_cwrca_is_the_sum_of_cwra_and_cwca_with_shared_projections() -> None:
    both = make(CWRCA, 16)
    rows, cols = CWRA(16).double(), CWCA(16).double()
    rows.load_state_dict(both.state_dict())
    cols.load_state_dict(both.state_dict())
    x = random_input(2, 16, 5, 7)
    assert_close(both(x) - x, (rows(x) - x) + (cols(x) - x))
    _, m_both = both(x, return_maps=True)
    _, m_rows = rows(x, return_maps=True)
    _, m_cols = cols(x, return_maps=True)
    assert_close(m_both.weights["height"], m_rows.weights["height"])
    assert_close(m_both.weights["width"], m_cols.weights["width"])


# --------------------------------------------------------------------------- gradients and weights


def _grads(module: nn.Module, x: Tensor) -> dict[str, Tensor]:
    module.zero_grad()
    out = module(x)
    (out * torch.randn_like(out)).sum().backward()
    return {name: p.grad for name, p in module.named_parameters()}


@pytest.mark.parametrize("cls", MODULES)
def test_every_parameter_but_the_key_bias_gets_a_gradient(cls) -> None:
    """The key bias adds Σ_c Q[.., i] b[c] to every logit of query i, a constant over the key index j,
    which the softmax removes: its gradient is zero in exact arithmetic (true of the study's model too)."""
    module = make(cls, 16)
    grads = _grads(module, random_input(2, 16, 5, 7))
    for name, g in grads.items():
        if name == "key.bias":
            assert g.abs().max() < 1e-10, name
        else:
            assert g is not None and g.abs().sum() > 1e-6, name


@pytest.mark.parametrize("cls", MODULES)
def test_gradients_match_autograd_through_the_reference(cls) -> None:
    """The backward pass (with its contiguous-gradient step) against autograd through the einsum reference."""
    module = make(cls, 8)
    x = torch.randn(2, 8, 5, 6, dtype=torch.float64, requires_grad=True)
    target = torch.randn(2, 8, 5, 6, dtype=torch.float64)
    (module(x.contiguous(memory_format=torch.channels_last)) * target).sum().backward()
    got = [x.grad.clone()] + [p.grad.clone() for p in module.parameters()]
    x.grad = None
    module.zero_grad()
    y_ref, _ = reference(module, x)
    ((x + y_ref) * target).sum().backward()
    want = [x.grad] + [p.grad for p in module.parameters()]
    for g, w in zip(got, want, strict=True):
        assert_close(g, w)


@pytest.mark.parametrize("cls", MODULES)
def test_alpha_beta_gate_gradients(cls) -> None:
    module = make(cls, 16, gate="alpha_beta")
    x = random_input(2, 16, 5, 7)
    grads = _grads(module, x)
    assert grads["alpha"].abs() > 1e-6
    assert grads["beta"].abs() > 1e-6
    # α = 0 at init: the attention branch is multiplied by zero, so Q/K/V get no gradient yet.
    for name in ("query.weight", "key.weight", "value.weight", "value.bias"):
        assert grads[name].abs().max() == 0, name
    with torch.no_grad():
        module.alpha.fill_(0.7)
    grads = _grads(module, x)
    for name, g in grads.items():
        if name == "key.bias":
            assert g.abs().max() < 1e-10, name
        else:
            assert g.abs().sum() > 1e-6, name


@pytest.mark.parametrize("cls", MODULES)
def test_softmax_rows_are_distributions(cls) -> None:
    module = make(cls, 16)
    _, maps = module(random_input(3, 16, 5, 7), return_maps=True)
    for axis, weights in maps.weights.items():
        assert (weights >= 0).all(), axis
        assert_close(weights.sum(-1), torch.ones_like(weights[..., 0]))


# --------------------------------------------------------------------------- gates


@pytest.mark.parametrize("cls", MODULES)
def test_alpha_gate_is_identity_at_init(cls) -> None:
    module = make(cls, 16, gate="alpha")
    assert module.alpha.item() == 0.0
    assert module.beta is None
    x = random_input(2, 16, 5, 7)
    assert torch.equal(module(x), x)
    with torch.no_grad():
        module.alpha.fill_(-0.4)
    y_ref, _ = reference(module, x)
    assert_close(module(x), -0.4 * y_ref + x)


@pytest.mark.parametrize("cls", MODULES)
def test_beta_gate(cls) -> None:
    module = make(cls, 16, gate="beta")
    assert module.beta.item() == 1.0
    assert module.alpha is None
    x = random_input(2, 16, 5, 7)
    with torch.no_grad():
        module.beta.fill_(0.3)
    y_ref, _ = reference(module, x)
    assert_close(module(x), y_ref + 0.3 * x)


@pytest.mark.parametrize("cls", MODULES)
def test_alpha_beta_gate(cls) -> None:
    module = make(cls, 16, gate="alpha_beta")
    assert (module.alpha.item(), module.beta.item()) == (0.0, 1.0)
    x = random_input(2, 16, 5, 7)
    with torch.no_grad():
        module.alpha.fill_(1.7)
        module.beta.fill_(-0.6)
    y_ref, _ = reference(module, x)
    out, maps = module(x, return_maps=True)
    assert_close(out, 1.7 * y_ref - 0.6 * x)
    assert_close(maps.output, y_ref)  # maps.output is Y before the gate


# --------------------------------------------------------------------------- heads


@pytest.mark.parametrize(
    ("cls", "shape", "axis"),
    [
        (CWRA, (2, 16, 5, 7), "height"),
        (CWCA, (2, 16, 5, 7), "width"),
        (SWA, (2, 4, 6, 20), "height"),
    ],
)
def test_two_heads_match_grouped_reference(cls, shape, axis) -> None:
    module = make(cls, shape[1], heads=2)
    x = random_input(*shape)
    y_ref, a_ref = reference_heads(module, x, heads=2)
    out, maps = module(x, return_maps=True)
    assert maps.weights[axis].shape == a_ref.shape
    assert_close(maps.weights[axis], a_ref)
    assert_close(maps.output, y_ref)
    assert_close(out, x + y_ref)
    # Two heads differ from one: the split is not a no-op.
    y_one, _ = reference(module, x)
    assert (y_one - y_ref).abs().max() > 1e-3


def test_cwrca_two_heads_is_the_sum_of_grouped_references() -> None:
    module = make(CWRCA, 16, heads=2)
    x = random_input(2, 16, 5, 7)
    rows, cols = make(CWRA, 16, heads=2), make(CWCA, 16, heads=2)
    rows.load_state_dict(module.state_dict())
    cols.load_state_dict(module.state_dict())
    y_h, a_h = reference_heads(rows, x, heads=2)
    y_w, a_w = reference_heads(cols, x, heads=2)
    out, maps = module(x, return_maps=True)
    assert_close(out, x + y_h + y_w)
    assert_close(maps.weights["height"], a_h)
    assert_close(maps.weights["width"], a_w)


@pytest.mark.parametrize("cls", [CWRA, CWCA, CWRCA])
def test_heads_that_do_not_divide_the_channels_fail_at_construction(cls) -> None:
    with pytest.raises(ConfigError, match=r"heads=3 must divide the channel size 16"):
        cls(16, heads=3)


def test_swa_heads_that_do_not_divide_the_width_are_a_config_error() -> None:
    module = SWA(4, heads=3)  # the width is only known at the first forward
    with pytest.raises(ConfigError, match=r"heads=3 must divide the width size 20"):
        module(torch.randn(1, 4, 5, 20))


@pytest.mark.parametrize("cls", MODULES)
def test_non_positive_heads_is_a_config_error(cls) -> None:
    with pytest.raises(ConfigError, match=r"heads=0\b"):
        cls(16, heads=0)


# --------------------------------------------------------------------------- plain attention


def test_cwca_with_one_row_is_plain_attention_over_width() -> None:
    module = make(CWCA, 16)
    x = random_input(3, 16, 1, 9)
    q, k, v = (t[:, :, 0, :].transpose(1, 2) for t in project(module, x))  # [B, W, C]: W tokens of C features
    y = F.scaled_dot_product_attention(q, k, v)  # default scale 1/√C
    expected = x + y.transpose(1, 2)[:, :, None, :]
    assert_close(module(x), expected)


def test_cwra_with_one_column_is_plain_attention_over_height() -> None:
    module = make(CWRA, 16)
    x = random_input(3, 16, 9, 1)
    q, k, v = (t[:, :, :, 0].transpose(1, 2) for t in project(module, x))  # [B, H, C]
    y = F.scaled_dot_product_attention(q, k, v)
    expected = x + y.transpose(1, 2)[:, :, :, None]
    assert_close(module(x), expected)


def test_swa_with_one_channel_is_plain_attention_over_rows() -> None:
    module = make(SWA, 1)
    x = random_input(3, 1, 6, 8)
    q, k, v = (t[:, 0] for t in project(module, x))  # [B, H, W]: H tokens of W features
    y = F.scaled_dot_product_attention(q, k, v)  # default scale 1/√W
    assert_close(module(x), x + y[:, None])


def test_cwrca_with_one_row_is_value_plus_width_attention() -> None:
    """A single token per column attends only to itself (weight 1), so the height branch returns V."""
    module = make(CWRCA, 16)
    x = random_input(2, 16, 1, 9)
    q, k, v = project(module, x)
    y_w = F.scaled_dot_product_attention(*(t[:, :, 0, :].transpose(1, 2) for t in (q, k, v)))
    assert_close(module(x), x + v + y_w.transpose(1, 2)[:, :, None, :])


# --------------------------------------------------------------------------- recording


@pytest.mark.parametrize("cls", MODULES)
def test_record_attn_routes_maps_through_the_probe(cls) -> None:
    module = make(cls, 16)
    x = random_input(2, 16, 5, 7)
    seen: list[AttentionMaps] = []
    module.maps.register_forward_hook(lambda mod, args, output: seen.append(output))

    plain = module(x)
    assert seen == []  # record_attn off: the probe is not called
    module.record_attn = True
    recorded = module(x)
    assert torch.equal(recorded, plain)
    assert len(seen) == 1

    y_ref, weights_ref = reference(module, x)
    assert_close(seen[0].output, y_ref)
    assert set(seen[0].weights) == set(weights_ref)
    for axis, expected in weights_ref.items():
        assert_close(seen[0].weights[axis], expected)
