"""Mixed precision: bf16-mixed trains on CPU with float32 loss terms; gradients are clipped right
before the step (after a GradScaler would unscale them); 16-mixed runs on a CPU (as bf16)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import lit_rl.algos.ppo as ppo_module
from lit_rl.cli import run

QUICKSTART = str(Path(__file__).parents[2] / "configs" / "quickstart.yaml")
TINY = ["--data.num_envs=4", "--data.num_steps=16", "--data.num_minibatches=2", "--data.update_epochs=2"]
TINY += ["--trainer.enable_progress_bar=false", "--trainer.logger=false", "--trainer.max_epochs=3"]


def test_bf16_mixed_trains_cartpole_with_float32_loss_terms(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    loss = ppo_module.ppo_loss

    def recording_loss(new_log_probs, old_log_probs, advantages, new_values, *args, **kwargs):
        out = loss(new_log_probs, old_log_probs, advantages, new_values, *args, **kwargs)
        seen.append((torch.is_autocast_enabled("cpu"), new_log_probs.dtype, new_values.dtype, out.loss.dtype))
        return out

    monkeypatch.setattr(ppo_module, "ppo_loss", recording_loss)
    cli = run(["fit", "--config", QUICKSTART, "--trainer.precision=bf16-mixed", *TINY])
    assert int(cli.model.num_updates) == 3 * 2 * 2
    assert len(seen) == 12 and all(autocast for autocast, *_ in seen)  # the update really ran under bf16
    assert all(tuple(dtypes) == (torch.float32,) * 3 for _, *dtypes in seen)
    assert all(torch.isfinite(p).all() and p.dtype == torch.float32 for p in cli.model.parameters())
    sums = cli.model.loss_sums._sums  # reset at each epoch end; finiteness is checked every minibatch anyway
    assert all(math.isfinite(v) for v in sums.tolist())


def _flat(cli) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in cli.model.parameters()])


def test_bf16_mixed_updates_track_the_float32_updates() -> None:
    """Same seed, 12 updates: bf16-mixed moves the parameters as float32 does, up to bf16's rounding
    (measured: 3 % of the float32 displacement), and not by nothing. A bf16 path that skipped or
    garbled the update would leave this band."""
    start = _flat(run(["fit", "--config", QUICKSTART, *TINY, "--trainer.max_epochs=0"]))  # the initial parameters
    fp32 = _flat(run(["fit", "--config", QUICKSTART, *TINY])) - start
    bf16 = _flat(run(["fit", "--config", QUICKSTART, "--trainer.precision=bf16-mixed", *TINY])) - start
    assert fp32.norm() > 0.01 * start.norm()  # 12 updates really moved the parameters (measured: 2 %)
    relative = float((bf16 - fp32).norm() / fp32.norm())
    assert 1e-4 < relative < 0.15, relative  # bf16 rounding shows, but the update is the same
    assert float(torch.nn.functional.cosine_similarity(bf16, fp32, dim=0)) > 0.98


def test_gradients_are_clipped_at_the_step(monkeypatch: pytest.MonkeyPatch) -> None:
    norms = []
    step = torch.optim.Adam.step

    def recording_step(self, closure=None):
        if closure is not None:  # Lightning's: runs the on_before_optimizer_step hooks
            with torch.enable_grad():
                closure()
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        norms.append(float(torch.nn.utils.get_total_norm(grads)))
        return step(self)

    monkeypatch.setattr(torch.optim.Adam, "step", recording_step)
    run(["fit", "--config", QUICKSTART, "--model.max_grad_norm=0.001", *TINY])
    assert len(norms) == 12 and max(norms) <= 0.001 * (1 + 1e-4)


def test_16_mixed_runs_on_a_cpu_as_bf16(recwarn: pytest.WarningsRecorder) -> None:
    """Lightning runs 16-mixed as bf16-mixed on a CPU (fp16 autocast needs a GPU) and says so."""
    cli = run(["fit", "--config", QUICKSTART, "--trainer.precision=16-mixed", "--trainer.accelerator=cpu", *TINY])
    assert cli.trainer.precision == "bf16-mixed"
    assert int(cli.model.num_updates) == 12 and all(torch.isfinite(p).all() for p in cli.model.parameters())
