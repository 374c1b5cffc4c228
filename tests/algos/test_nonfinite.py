"""Numerical faults (issue 7): a NaN/Inf loss term, gradient or parameter stops the run before the
optimiser steps, naming the env step and the term, and keeps the last good checkpoint; with
``nonfinite="skip"`` the bad minibatch is dropped instead."""

from __future__ import annotations

import copy
import functools
import math
import re
import warnings
from pathlib import Path

import gymnasium as gym
import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers.logger import Logger
from torch.utils.data import DataLoader

from lit_rl.algos.ppo import PPO
from lit_rl.callbacks.checkpoint import EnvStepCheckpoint
from lit_rl.callbacks.evaluation import Evaluation
from lit_rl.cli import run
from lit_rl.data.rollout import Rollout
from lit_rl.errors import ConfigError, NonFiniteError
from lit_rl.models.intrinsic.rnd import RND
from lit_rl.specs import EnvSpec

QUICKSTART = str(Path(__file__).parents[2] / "configs" / "quickstart.yaml")
NAN = float("nan")


class CaptureLogger(Logger):
    """Keeps every ``log_metrics`` call in memory."""

    def __init__(self) -> None:
        super().__init__()
        self.metrics: list[dict[str, float]] = []

    @property
    def name(self) -> str:
        return "capture"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.metrics.append(dict(metrics))


class Snapshots(L.Callback):
    """Copies of the module's state dict and the optimiser's state after every minibatch, and an
    optional action before a given minibatch ends."""

    def __init__(self, before_end: dict | None = None) -> None:
        self.states: list[dict[str, torch.Tensor]] = []
        self.optimizer_states: list[dict] = []
        self.before_end = before_end or {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx in self.before_end:
            self.before_end[batch_idx](pl_module)
        self.states.append(copy.deepcopy(pl_module.state_dict()))
        self.optimizer_states.append(copy.deepcopy(trainer.optimizers[0].state_dict()))


def make_model(spec: EnvSpec, *, rnd: bool = False, env_steps: int = 4096, **kwargs) -> PPO:
    if rnd:
        kwargs |= {"heads": "rnd", "intrinsic": functools.partial(RND, update_proportion=1.0, feature_dim=16)}
    model = PPO(spec, **kwargs)
    model.env_steps.fill_(env_steps)
    return model


def make_batch(size: int = 8, *, rnd: bool = False, **bad: float) -> Rollout:
    """A flat minibatch ``[B]`` of finite data; ``bad`` sets the first entry of the named fields."""
    fields = {
        "obs": torch.randn(size, 4),
        "actions": torch.randint(0, 2, (size,)),
        "log_probs": torch.full((size,), -math.log(2.0)),
        "values": torch.randn(size),
        "rewards": torch.randn(size),
        "terminated": torch.zeros(size, dtype=torch.bool),
        "truncated": torch.zeros(size, dtype=torch.bool),
        "final_values": torch.zeros(size),
        "last_value": None,
        "advantages": torch.randn(size),
        "returns": torch.randn(size),
    }
    if rnd:
        fields |= {"next_obs": torch.randn(size, 4), "int_values": torch.randn(size), "int_returns": torch.randn(size)}
    for name, value in bad.items():
        fields[name][0] = value
    return Rollout(**fields)


def fit(
    model: PPO, batches: list[Rollout], *callbacks: L.Callback, logger: Logger | bool = False, updates: int = 1
) -> L.Trainer:
    """``updates`` updates (Lightning epochs), each over ``batches``, on CPU."""
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=updates,
        logger=logger,
        callbacks=list(callbacks),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(num_workers|bottleneck).*")
        trainer.fit(model, train_dataloaders=DataLoader(batches, batch_size=None, collate_fn=lambda b: b))
    return trainer


def assert_state_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def assert_optimizer_state_equal(a: dict, b: dict) -> None:
    assert a["state"].keys() == b["state"].keys()
    for index, state in a["state"].items():
        for key, value in state.items():
            assert torch.equal(value, b["state"][index][key]), (index, key)


def test_nan_return_stops_before_the_step_and_names_the_value_loss(small_spec: EnvSpec) -> None:
    model = make_model(small_spec)
    snapshots = Snapshots()
    with pytest.raises(NonFiniteError) as info:
        fit(model, [make_batch(), make_batch(returns=NAN)], snapshots)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        "non-finite loss/value=nan at env step 4096 (minibatch 1 of this rollout, after 1 updates)"
    )
    assert "loss/policy" not in message and "gradient norm" not in message
    assert "model.nonfinite=skip" in message and "last checkpoint is kept" in message
    # The bad minibatch never stepped: parameters and Adam's moments are those after the first one.
    assert len(snapshots.states) == 1
    assert_state_equal(model.state_dict(), snapshots.states[0])
    assert_optimizer_state_equal(model.optimizers().optimizer.state_dict(), snapshots.optimizer_states[0])
    assert int(model.num_updates) == 1


@pytest.mark.parametrize("value", [NAN, math.inf])
def test_non_finite_advantage_names_the_policy_loss(small_spec: EnvSpec, value: float) -> None:
    model = make_model(small_spec)
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(NonFiniteError, match=r"^non-finite loss/policy=nan at env step 4096 \(minibatch 0") as info:
        fit(model, [make_batch(advantages=value)])
    assert "loss/value" not in str(info.value)
    assert_state_equal(model.state_dict(), before)
    assert model.optimizers().optimizer.state_dict()["state"] == {}  # Adam never stepped


def test_nan_rnd_input_names_the_rnd_loss(small_spec: EnvSpec) -> None:
    model = make_model(small_spec, rnd=True, env_steps=123)
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(NonFiniteError, match=r"^non-finite loss/rnd=nan at env step 123 ") as info:
        fit(model, [make_batch(rnd=True, next_obs=NAN)])
    assert "loss/int_value" not in str(info.value) and "loss/policy" not in str(info.value)
    assert_state_equal(model.state_dict(), before)


def test_nan_intrinsic_return_names_the_intrinsic_value_loss(small_spec: EnvSpec) -> None:
    model = make_model(small_spec, rnd=True)
    with pytest.raises(NonFiniteError, match=r"^non-finite loss/int_value=nan at env step 4096 ") as info:
        fit(model, [make_batch(rnd=True, int_returns=NAN)])
    assert "loss/rnd" not in str(info.value) and "loss/value" not in str(info.value)


def test_nan_gradient_alone_names_the_gradient_norm(small_spec: EnvSpec) -> None:
    model = make_model(small_spec)
    before = copy.deepcopy(model.state_dict())
    model.policy.critic_head.weight.register_hook(lambda grad: torch.full_like(grad, NAN))
    with pytest.raises(NonFiniteError, match=r"^non-finite gradient norm=nan at env step 4096 ") as info:
        fit(model, [make_batch()])
    assert "loss/" not in str(info.value)
    assert_state_equal(model.state_dict(), before)


class Repair(L.Callback):
    """After the first update, makes the given minibatch finite again (in place)."""

    def __init__(self, batch: Rollout) -> None:
        self.batch = batch

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.batch.returns.nan_to_num_(0.0)


def test_skip_drops_bad_minibatches_and_counts_them_per_rollout(small_spec: EnvSpec) -> None:
    model = make_model(small_spec, nonfinite="skip")
    snapshots, logger = Snapshots(), CaptureLogger()
    batches = [make_batch(), make_batch(returns=NAN), make_batch(advantages=math.inf), make_batch()]
    with pytest.warns(UserWarning, match="skipped the update of non-finite") as record:
        fit(model, batches, snapshots, Repair(batches[1]), logger=logger, updates=2)
    skips = [str(w.message) for w in record if "skipped the update" in str(w.message)]
    assert len(skips) == 2  # one warning per rollout, not per minibatch
    assert "loss/value=nan at env step 4096 (minibatch 1 of this rollout, after 1 updates)" in skips[0]
    assert "loss/policy=nan at env step 4096 (minibatch 2 of this rollout, after 4 updates)" in skips[1]
    first, second, third, fourth, *_ = snapshots.states
    assert_state_equal(second, first)  # skipped: parameters untouched
    assert_state_equal(third, first)
    assert not torch.equal(fourth["policy.critic_head.weight"], first["policy.critic_head.weight"])  # still learns
    assert int(model.num_updates) == 2 + 3
    adam_state = model.optimizers().optimizer.state_dict()["state"]
    assert all(int(s["step"]) == 5 for s in adam_state.values())
    assert all(torch.isfinite(p).all() for p in model.parameters())
    metrics = [m for m in logger.metrics if "env_steps" in m]
    assert [m["diag/skipped_updates"] for m in metrics] == [2.0, 1.0]
    for m in metrics:  # means over the good minibatches only
        assert math.isfinite(m["loss/value"]) and math.isfinite(m["loss/policy"])
        assert math.isfinite(m["diag/grad_norm"]) and m["diag/grad_norm"] > 0


def test_finite_update_logs_no_skips_and_the_gradient_norm(small_spec: EnvSpec) -> None:
    model, logger = make_model(small_spec), CaptureLogger()
    fit(model, [make_batch(), make_batch()], logger=logger)
    (metrics,) = [m for m in logger.metrics if "env_steps" in m]
    assert "diag/skipped_updates" not in metrics  # only logged with nonfinite=skip
    assert int(model.num_updates) == 2 and metrics["diag/grad_norm"] > 0


@pytest.mark.parametrize(
    ("name", "kind", "rnd"),
    [("policy.critic_head.bias", "parameter", False), ("intrinsic.obs_rms.mean", "buffer", True)],
)
@pytest.mark.parametrize(("nonfinite", "checkpointed"), [("stop", True), ("skip", False)])
def test_non_finite_state_at_the_end_of_an_update_stops_the_run(
    small_spec: EnvSpec, tmp_path: Path, name: str, kind: str, rnd: bool, nonfinite: str, checkpointed: bool
) -> None:
    """In both modes. A checkpoint due at this update (callbacks run before the module's epoch end)
    is not written."""
    env_steps = 10_000_000 if checkpointed else 4096  # the budget: last.ckpt is due

    def corrupt_at_the_last_minibatch(module: PPO) -> None:
        module.state_dict(keep_vars=True)[name].data.fill_(NAN)
        module.env_steps.fill_(env_steps)  # reached during this update (a run never starts at its budget)

    model = make_model(small_spec, rnd=rnd, nonfinite=nonfinite)
    corrupt = Snapshots({1: corrupt_at_the_last_minibatch})
    checkpoint = EnvStepCheckpoint(dirpath=str(tmp_path), every_n_env_steps=0, save_last=True)
    message = rf"^non-finite {kind} {name} at env step {env_steps} \(after 2 updates\); the last checkpoint is kept; "
    with pytest.raises(NonFiniteError, match=message):
        fit(model, [make_batch(rnd=rnd), make_batch(rnd=rnd)], corrupt, checkpoint)
    assert list(tmp_path.iterdir()) == []


def test_nonfinite_option_is_validated(small_spec: EnvSpec) -> None:
    with pytest.raises(ConfigError, match=re.escape("model.nonfinite='ignore'; expected 'stop' or 'skip'")):
        PPO(small_spec, nonfinite="ignore")


class NaNRewardEnv(gym.Env):
    """Reward 1 for ``NAN_AFTER`` steps of this env instance, NaN from then on; never ends."""

    NAN_AFTER = 12
    observation_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self) -> None:
        self.steps = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.np_random.uniform(-1, 1, 4).astype(np.float32), {}

    def step(self, action):
        self.steps += 1
        reward = 1.0 if self.steps <= self.NAN_AFTER else NAN
        return self.np_random.uniform(-1, 1, 4).astype(np.float32), reward, False, False, {}


gym.register("lit_rl_test/NaNReward-v0", entry_point=NaNRewardEnv, max_episode_steps=1000)


def test_nan_reward_stops_the_run_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """2 envs x 8 steps per rollout: the first rollout (env step 16) is checkpointed, the second
    brings NaN rewards (env step 12 of each env), so its first minibatch stops the run."""
    args = ["fit", "--config", QUICKSTART, f"--trainer.logger.init_args.save_dir={tmp_path}"]
    args += ["--data.env_id=lit_rl_test/NaNReward-v0", "--data.num_envs=2", "--data.num_steps=8"]
    args += ["--data.num_minibatches=2", "--data.update_epochs=1", "--data.eval_episodes=1"]
    args += ["--model.total_env_steps=64", "--checkpoint.every_n_env_steps=16", "--evaluation.every_n_env_steps=0"]
    args += ["--trainer.enable_progress_bar=false"]
    with pytest.raises(SystemExit) as info:
        run(args)
    assert info.value.code == 1
    (line,) = [x for x in capsys.readouterr().err.splitlines() if x.startswith("lit-rl: error:")]
    assert "non-finite loss/policy=nan, loss/value=nan at env step 32 (minibatch 0 of this rollout" in line
    checkpoints = sorted(p.name for p in tmp_path.rglob("*.ckpt"))
    assert len(checkpoints) == 2 and "last.ckpt" in checkpoints
    assert any(name.endswith("_16_steps.ckpt") for name in checkpoints)
    for path in tmp_path.rglob("*.ckpt"):
        model = PPO.load_from_checkpoint(path, weights_only=True)
        assert int(model.env_steps) == 16
        assert all(torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point())


def test_evaluation_of_a_non_finite_policy_names_the_parameter(small_spec: EnvSpec) -> None:
    """The evaluation callback runs before the module's epoch end: it reports a NaN policy by name too,
    instead of failing inside the action sampler (or, here, on the missing datamodule)."""
    model = make_model(small_spec)
    evaluation = Evaluation(every_n_env_steps=1000)
    evaluation.load_state_dict({"last_step": 4096, "timesteps": [], "results": [], "ep_lengths": []})

    def corrupt(module: PPO) -> None:
        module.policy.critic_head.bias.data.fill_(NAN)
        module.env_steps.fill_(5000)  # an evaluation is due at the end of this update

    with pytest.raises(NonFiniteError, match=r"^non-finite parameter policy\.critic_head\.bias at env step 5000"):
        fit(model, [make_batch(), make_batch()], Snapshots({1: corrupt}), evaluation)
