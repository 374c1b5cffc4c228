"""Memory extractors (GTrXL, LSTM): the sequence contract, and GTrXL's attention and gates against
references written out here from Parisotto et al. (2020) and Dai et al. (2019)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from lit_rl.models.extractors.gtrxl import GRUGate, GTrXL, RelativeAttention, sinusoid_table
from lit_rl.models.extractors.lstm import LSTM

M = 4  # memory length of the small GTrXLs below


def gtrxl(**kwargs) -> GTrXL:
    args = dict(input_layers=(8,), num_units=2, dim=16, heads=2, head_dim=8, mlp_dim=12, memory_length=M, seq_len=4)
    return GTrXL((3,), **{**args, **kwargs}).double()


def lstm(**kwargs) -> LSTM:
    return LSTM((3,), **{**dict(input_layers=(8,), hidden_size=16, num_layers=2, seq_len=4), **kwargs}).double()


EXTRACTORS = {"gtrxl": gtrxl, "lstm": lstm}


def sequence(T: int, B: int, p_start: float = 0.15, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(T, B, 3, generator=g, dtype=torch.float64)
    starts = torch.rand(T, B, generator=g) < p_start
    starts[0] = True
    return obs, starts


def run_in_pieces(model, obs, starts, bounds) -> tuple[torch.Tensor, torch.Tensor]:
    memory, outputs = model.initial_memory(obs.shape[1]).double(), []
    for a, b in itertools.pairwise(bounds):
        out, memory = model(obs[a:b], memory, starts[a:b])
        outputs.append(out)
    return torch.cat(outputs), memory


@pytest.mark.parametrize("name", EXTRACTORS)
@pytest.mark.parametrize("B", [1, 3])
def test_chunks_with_recorded_memory_equal_the_whole_sequence(name: str, B: int) -> None:
    model = EXTRACTORS[name]()
    obs, starts = sequence(T=17, B=B)
    whole, memory = run_in_pieces(model, obs, starts, [0, 17])
    assert whole.shape == (17, B, model.out_dim)
    for bounds in ([0, 4, 8, 12, 16, 17], list(range(18)), [0, 9, 17]):  # chunks, single steps (acting), halves
        pieces, pieces_memory = run_in_pieces(model, obs, starts, bounds)
        assert_close(pieces, whole)
        assert_close(pieces_memory, memory)


@pytest.mark.parametrize("name", EXTRACTORS)
def test_causal_changing_step_t_changes_nothing_before_t(name: str) -> None:
    model = EXTRACTORS[name]()
    obs, starts = sequence(T=10, B=2, p_start=0.0)
    memory = model.initial_memory(2).double()
    before, _ = model(obs, memory, starts)
    changed = obs.clone()
    changed[6] += 1.0
    after, _ = model(changed, memory, starts)
    assert_close(after[:6], before[:6], rtol=0, atol=0)
    assert (after[6] - before[6]).abs().max() > 1e-3


@pytest.mark.parametrize("name", EXTRACTORS)
def test_memory_is_reset_at_episode_starts(name: str) -> None:
    model = EXTRACTORS[name]()
    obs, _ = sequence(T=12, B=2)
    starts = torch.zeros(12, 2, dtype=torch.bool)
    starts[0] = True
    starts[7, 1] = True  # env 1 starts a new episode at step 7
    out, _ = model(obs, model.initial_memory(2).double(), starts)
    # The new episode alone, from a fresh memory, gives the same features: nothing leaks across.
    fresh, _ = model(obs[7:, 1:], model.initial_memory(1).double(), starts[7:, 1:])
    assert_close(out[7:, 1:], fresh)
    # A non-fresh memory is wiped by the start flag as well.
    busy_memory = torch.randn(1, *model.memory_shape, dtype=torch.float64)
    reset, _ = model(obs[7:, 1:], busy_memory, starts[7:, 1:])
    assert_close(reset, fresh)
    # ...and env 0, which did not restart, is influenced by its earlier steps.
    cut, _ = model(obs[7:, :1], model.initial_memory(1).double(), torch.ones(5, 1, dtype=torch.bool))
    assert (out[7:, :1] - cut).abs().max() > 1e-3


@pytest.mark.parametrize("name", EXTRACTORS)
def test_every_parameter_receives_a_gradient(name: str) -> None:
    model = EXTRACTORS[name]()
    obs, starts = sequence(T=9, B=3, p_start=0.0)
    out, _ = model(obs, torch.randn(3, *model.memory_shape, dtype=torch.float64), starts)
    out.square().sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


def test_gtrxl_sees_exactly_the_memory_length_before_each_step() -> None:
    model = gtrxl(num_units=1)
    obs, starts = sequence(T=12, B=1, p_start=0.0)
    memory = model.initial_memory(1).double()
    base, _ = model(obs, memory, starts)
    for t in (2, 5):
        changed = obs.clone()
        changed[t] += 1.0
        out, _ = model(changed, memory, starts)
        # one unit: step t + M still sees step t, step t + M + 1 no longer does
        assert (out[t + M] - base[t + M]).abs().max() > 1e-4
        assert_close(out[t + M + 1 :], base[t + M + 1 :], rtol=0, atol=0)


def test_gtrxl_memory_is_each_units_input() -> None:
    model = gtrxl()
    obs, starts = sequence(T=6, B=2, p_start=0.0)
    _, memory = model(obs, model.initial_memory(2).double(), starts)
    e0 = model.embed(model.encoder(obs.flatten(0, 1))).view(6, 2, -1).transpose(0, 1)  # [B, T, D]
    assert_close(memory[:, 0], e0[:, -M:])
    before_start = torch.zeros(2, 6, M + 6, dtype=torch.bool)
    e1 = model.units[0](e0, torch.zeros(2, M, 16, dtype=torch.float64), before_start)
    assert_close(memory[:, 1], e1[:, -M:])


def reference_attention(
    attn: RelativeAttention, x: torch.Tensor, memory: torch.Tensor, episode_at: list[int]
) -> torch.Tensor:
    """Transformer-XL's relative attention (Dai et al., 2019) with explicit loops: query i over the M positions
    before it and itself; positions before the episode's first step (``episode_at[b]``) hold zero vectors."""
    B, T, D = x.shape
    H, d = attn.heads, attn.head_dim
    Wq = attn.query.weight.view(H, d, D)
    Wk, Wv = attn.key_value.weight.view(2, H, d, D)
    Wr = attn.pos_proj.weight.view(H, d, D)
    R = sinusoid_table(M + 1, D).double()
    out = torch.zeros(B, T, H * d, dtype=x.dtype)
    for b in range(B):
        stream = torch.cat([memory[b], x[b]])  # [M + T, D]; query i is at M + i
        for i in range(T):
            keys = []
            for j in range(i, M + i + 1):
                value = stream[j] if j >= M + episode_at[b] or episode_at[b] > i else torch.zeros(D, dtype=x.dtype)
                keys.append((j, F.layer_norm(value, (D,), attn.norm.weight, attn.norm.bias)))
            zq = F.layer_norm(stream[M + i], (D,), attn.norm.weight, attn.norm.bias)
            for h in range(H):
                q = Wq[h] @ zq
                scores = torch.stack(
                    [
                        ((q + attn.u[h]) @ (Wk[h] @ z) + (q + attn.v[h]) @ (Wr[h] @ R[M + i - j])) / math.sqrt(d)
                        for j, z in keys
                    ]
                )
                weights = torch.softmax(scores, 0)
                out[b, i, h * d : (h + 1) * d] = sum(w * (Wv[h] @ z) for w, (_, z) in zip(weights, keys, strict=True))
    return torch.relu(out @ attn.out.weight.T)


def test_relative_attention_matches_the_written_out_formula() -> None:
    torch.manual_seed(1)
    attn = RelativeAttention(dim=6, heads=2, head_dim=3, memory_length=M).double()
    with torch.no_grad():
        attn.norm.weight.normal_()
        attn.norm.bias.normal_()  # LN(0) = bias: the zero vectors get a non-trivial key
    B, T = 2, 5
    x = torch.randn(B, T, 6, dtype=torch.float64)
    memory = torch.randn(B, M, 6, dtype=torch.float64)
    episode_at = [T + 1, 2]  # env 0: one episode throughout; env 1: a new episode at step 2
    before_start = torch.zeros(B, T, M + T, dtype=torch.bool)
    before_start[1, 2:, : M + 2] = True
    assert_close(attn(x, memory, before_start), reference_attention(attn, x, memory, episode_at))


def test_sinusoid_table_is_transformer_xl_encoding() -> None:
    R = sinusoid_table(5, 6)
    inv_freq = [1.0, 10_000 ** (-2 / 6), 10_000 ** (-4 / 6)]
    for delta in range(5):
        expected = [math.sin(delta * f) for f in inv_freq] + [math.cos(delta * f) for f in inv_freq]
        assert_close(R[delta], torch.tensor(expected, dtype=torch.float32))


def test_gru_gate_matches_its_formula_and_starts_near_identity() -> None:
    torch.manual_seed(2)
    D = 32
    gate = GRUGate(D, bias=2.0).double()
    x, y = torch.randn(64, D, dtype=torch.float64), torch.randn(64, D, dtype=torch.float64)
    Wr, Wz, Wh = gate.w.weight.view(3, D, D)
    Ur, Uz = gate.u.weight.view(2, D, D)
    r = torch.sigmoid(y @ Wr.T + x @ Ur.T)
    z = torch.sigmoid(y @ Wz.T + x @ Uz.T - 2.0)
    h = torch.tanh(y @ Wh.T + (r * x) @ gate.u_h.weight.T)
    assert_close(gate(x, y), (1 - z) * x + z * h)
    # b_g = 2 keeps z small, so g stays close to x; without the bias the gate mixes half-half.
    open_gate = GRUGate(D, bias=0.0).double()
    open_gate.load_state_dict({**gate.state_dict(), "bias": torch.zeros(D, dtype=torch.float64)})
    near = (gate(x, y) - x).norm() / (h - x).norm()
    far = (open_gate(x, y) - x).norm() / (h - x).norm()
    assert near < 0.25 < 0.4 < far


@pytest.mark.parametrize("name", EXTRACTORS)
def test_bad_sequence_inputs_are_named(name: str) -> None:
    model = EXTRACTORS[name]()
    obs, starts = sequence(T=3, B=2)
    with pytest.raises(ValueError, match="memory has shape"):
        model(obs, model.initial_memory(3).double(), starts)
    with pytest.raises(ValueError, match="obs has shape"):
        model(obs[:, :, :2], model.initial_memory(2).double(), starts)
    with pytest.raises(ValueError, match="episode_start"):
        model(obs, model.initial_memory(2).double(), starts.float())
