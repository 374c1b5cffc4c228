from __future__ import annotations

import pytest
import torch

from lit_rl.data.rollout import Rollout


def make_rollout(T: int = 3, N: int = 2) -> Rollout:
    z = torch.zeros(T, N)
    return Rollout(
        obs=torch.arange(T * N * 4, dtype=torch.uint8).reshape(T, N, 4),
        actions=torch.arange(T * N).reshape(T, N),
        log_probs=z.clone(),
        values=torch.arange(T * N, dtype=torch.float32).reshape(T, N),
        rewards=z.clone(),
        terminated=z.bool(),
        truncated=z.bool(),
        final_values=z.clone(),
        last_value=torch.zeros(N),
    )


def test_flatten_is_time_major() -> None:
    r = make_rollout()
    flat = r.flatten()
    assert flat.obs.shape == (6, 4) and flat.obs.dtype == torch.uint8
    # row index t * N + n holds env n at time t
    assert flat.values.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert flat.last_value is None
    sub = flat[torch.tensor([4, 1])]
    assert sub.actions.tolist() == [4, 1]
    assert torch.equal(sub.obs[0], r.obs[2, 0])


@pytest.mark.parametrize("field", ["values", "rewards", "final_values"])
def test_rejects_wrong_shapes(field: str) -> None:
    r = make_rollout()
    kwargs = {f: getattr(r, f) for f in r.__dataclass_fields__}
    kwargs[field] = torch.zeros(3, 2, 1)
    with pytest.raises(ValueError, match=field):
        Rollout(**kwargs)


def test_rejects_float_flags_and_unflattened_indexing() -> None:
    r = make_rollout()
    kwargs = {f: getattr(r, f) for f in r.__dataclass_fields__}
    kwargs["terminated"] = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="terminated must be bool"):
        Rollout(**kwargs)
    with pytest.raises(ValueError, match="flatten"):
        r[torch.tensor([0])]


def recurrent_rollout(T: int = 5, N: int = 2, seq_len: int = 2) -> Rollout:
    """Transition (t, n) carries the value 10 * t + n; memory before chunk s of env n is 100 * s + n."""
    tn = torch.arange(T)[:, None] * 10 + torch.arange(N)[None, :]
    S = -(-T // seq_len)
    starts = torch.zeros(T, N, dtype=torch.bool)
    starts[3, 1] = True
    return Rollout(
        obs=tn[..., None].float().expand(T, N, 3).clone(),
        actions=tn.clone(),
        log_probs=tn.float(),
        values=tn.float(),
        rewards=tn.float(),
        terminated=torch.zeros(T, N, dtype=torch.bool),
        truncated=torch.zeros(T, N, dtype=torch.bool),
        final_values=torch.zeros(T, N),
        last_value=torch.zeros(N),
        advantages=tn.float(),
        returns=tn.float(),
        episode_starts=starts,
        memory=(torch.arange(S)[:, None] * 100 + torch.arange(N)[None, :])
        .float()[..., None, None]
        .expand(S, N, 2, 2)
        .clone(),
    )


def test_to_sequences_cuts_whole_chunks_pads_the_last_and_keeps_their_memory() -> None:
    r = recurrent_rollout(T=5, N=2, seq_len=2)
    seq = r.to_sequences(2)
    assert seq.actions.shape == (2, 6) and seq.obs.shape == (2, 6, 3) and seq.memory.shape == (1, 6, 2, 2)
    for column in range(6):
        s, n = divmod(column, 2)  # column s * N + n is chunk s of env n
        steps = [2 * s + k for k in range(2)]
        real = [t < 5 for t in steps]
        assert seq.mask[:, column].tolist() == real
        for k, t in enumerate(steps):
            expected = 10 * t + n if t < 5 else 0
            assert seq.actions[k, column] == expected and seq.advantages[k, column] == expected
            assert seq.episode_starts[k, column] == (t == 3 and n == 1)
        assert (seq.memory[0, column] == 100 * s + n).all()
    assert seq.last_value is None


def test_select_envs_keeps_chunks_whole() -> None:
    seq = recurrent_rollout(T=6, N=3, seq_len=3).to_sequences(3)
    picked = seq.select_envs(torch.tensor([4, 0]))
    assert_chunk = [(seq.actions[:, c], seq.memory[0, c]) for c in (4, 0)]
    for k, (actions, memory) in enumerate(assert_chunk):
        assert torch.equal(picked.actions[:, k], actions) and torch.equal(picked.memory[0, k], memory)
    assert picked.actions[:, 0].tolist() == [31, 41, 51]  # chunk 1 of env 1: steps 3, 4, 5


def test_to_sequences_needs_the_memory_of_every_chunk() -> None:
    r = recurrent_rollout(T=5, N=2, seq_len=2)
    with pytest.raises(ValueError, match="memory holds 3 chunks"):
        r.to_sequences(3)
    with pytest.raises(ValueError, match="to_sequences"):
        r.flatten()
