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
