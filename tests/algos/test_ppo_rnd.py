"""PPO + RND through the CLI: advantage mixing, dropout and the PPO ratio, resume of every statistic."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

import lit_rl.algos.ppo as ppo_mod
from lit_rl.algos.advantages import rollout_advantages
from lit_rl.algos.gae import compute_gae
from lit_rl.algos.intrinsic import intrinsic_rewards
from lit_rl.algos.ppo import PPO
from lit_rl.cli import run
from lit_rl.data.rollout import Rollout
from lit_rl.models.intrinsic.rnd import RND

CARTPOLE = str(Path(__file__).parents[2] / "configs" / "ppo" / "cartpole_mlp.yaml")
RND_ARGS = [
    "--model.heads=rnd",
    "--model.intrinsic=lit_rl.models.intrinsic.rnd.RND",
    "--model.intrinsic.warmup_rollouts=2",
    "--trainer.enable_progress_bar=false",
    "--data.eval_episodes=2",
]


def intrinsic_advantages(rnd: RND, rollout: Rollout, *, gae_lambda: float):
    """The intrinsic half of the advantages PPO computes: RND's rewards (updating its statistics), then
    the non-episodic GAE of :func:`rollout_advantages`."""
    rewards, metrics = intrinsic_rewards(rnd, rollout)
    out = rollout_advantages(rollout, gamma=0.99, gae_lambda=gae_lambda, int_rewards=rewards, int_gamma=rnd.gamma)
    return out.int_advantages, out.int_returns, metrics


def fit(tmp_path: Path, *args: str):
    return run(["fit", "--config", CARTPOLE, f"--trainer.logger.init_args.save_dir={tmp_path}", *RND_ARGS, *args])


def test_advantages_mix_extrinsic_and_intrinsic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    processed = []
    original = PPO.process_rollout

    def capture(self, rollout):
        before = copy.deepcopy(self.intrinsic)  # RND's state before this rollout
        if not processed:  # before the first update
            targets.append({k: v.clone() for k, v in self.intrinsic.target.state_dict().items()})
        out = original(self, rollout)
        processed.append((rollout, out, before))
        return out

    targets = []
    monkeypatch.setattr(PPO, "process_rollout", capture)
    coefs = ["--model.intrinsic.ext_coef=2.0", "--model.intrinsic.int_coef=0.5"]
    cli = fit(tmp_path, "--model.total_env_steps=1024", *coefs)
    assert int(cli.model.num_updates) == 2 * 4 * 4  # 2 rollouts of 4 x 128 steps, 4 epochs x 4 minibatches
    for name, value in cli.model.intrinsic.target.state_dict().items():  # the target never trains
        assert torch.equal(value, targets[0][name]), name
    rollout, out, before = processed[1]  # the second rollout: statistics that have moved
    ext, ext_returns = compute_gae(
        rollout.rewards,
        rollout.values,
        rollout.last_value,
        rollout.terminated,
        rollout.truncated,
        rollout.final_values,
        gamma=0.99,
        gae_lambda=0.95,
    )
    int_advantages, int_returns, _ = intrinsic_advantages(before, rollout, gae_lambda=0.95)
    assert_close(out.returns, ext_returns)
    assert_close(out.int_returns, int_returns)
    assert_close(out.advantages, 2.0 * ext + 0.5 * int_advantages)
    assert rollout.next_obs.shape == (128, 4, 4) and rollout.int_values.shape == (128, 4)


@pytest.mark.parametrize("dropout_in_update", [False, True])
def test_ratio_is_exactly_one_at_the_first_minibatch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dropout_in_update: bool
) -> None:
    """Rollouts never use the ViT's dropout; by default neither does the update, so the first
    minibatch sees exactly the policy that acted (approx KL 0, nothing clipped)."""
    calls = []
    original = ppo_mod.ppo_loss

    def capture(*args, **kwargs):
        out = original(*args, **kwargs)
        calls.append((args, kwargs, out))
        return out

    monkeypatch.setattr(ppo_mod, "ppo_loss", capture)
    vit = ["--model.extractor=lit_rl.models.extractors.vit.ViTExtractor", "--model.extractor.patch_size=12"]
    vit += ["--model.extractor.embed_dim=32", "--model.extractor.depth=1", "--model.extractor.num_heads=2"]
    vit += ["--model.extractor.mlp_dim=32", "--model.extractor.dropout=0.3"]
    run(
        [
            "fit",
            "--config",
            str(Path(__file__).parents[2] / "configs" / "rnd" / "quick_montezuma_vit.yaml"),
            f"--trainer.logger.init_args.save_dir={tmp_path}",
            "--data.env_id=BreakoutNoFrameskip-v4",
            "--data.num_envs=2",
            "--data.num_steps=16",
            "--data.num_minibatches=2",
            "--data.update_epochs=1",
            "--data.eval_episodes=1",
            "--model.intrinsic.warmup_rollouts=1",
            "--model.total_env_steps=32",
            "--trainer.enable_progress_bar=false",
            f"--model.dropout_in_update={dropout_in_update}",
            *vit,
        ]
    )
    (new_log_probs, old_log_probs, *_), _, first = calls[0]
    if dropout_in_update:
        assert not torch.equal(new_log_probs, old_log_probs)  # dropout masks differ from the rollout's
    else:
        assert torch.equal(new_log_probs.detach(), old_log_probs)  # ratio exactly 1
        assert first.approx_kl.item() == 0.0 and first.clip_fraction.item() == 0.0


def test_resume_restores_every_rnd_statistic(tmp_path: Path) -> None:
    cli = fit(tmp_path, "--model.total_env_steps=1024", "--checkpoint.every_n_env_steps=512")
    last = Path(cli.trainer.log_dir) / "checkpoints" / "last.ckpt"
    state = torch.load(last, weights_only=True)["state_dict"]
    trained = cli.model.state_dict()
    networks = ("intrinsic.target", "intrinsic.predictor")
    names = [n for n in state if n.startswith("intrinsic.") and not n.startswith(networks)]
    assert len(names) == 8  # obs_rms and return_rms (mean, var, count), int_return, warmup_done
    for name in [*names, "env_steps", "rooms_seen"]:
        assert torch.equal(state[name], trained[name]), name
    assert int(state["intrinsic.warmup_done"]) == 2
    assert torch.any(state["intrinsic.int_return"] != 0)
    # 2 warm-up rollouts + 2 training rollouts of 4 envs x 128 steps, plus the 1e-4 pseudo-count.
    assert state["intrinsic.obs_rms.count"].item() == pytest.approx(4 * 512 + 1e-4)

    older = torch.load(last, weights_only=True)  # a checkpoint from before room tracking still loads
    del older["state_dict"]["rooms_seen"]
    torch.save(older, tmp_path / "older.ckpt")
    assert not PPO.load_from_checkpoint(tmp_path / "older.ckpt", weights_only=True).rooms_seen.any()
    # Another data.num_envs: the per-env intrinsic return restarts, every other statistic loads.
    wider = PPO.load_from_checkpoint(last, weights_only=True, env_spec={**cli.model.hparams.env_spec, "num_envs": 8})
    assert wider.intrinsic.int_return.shape == (8,) and not wider.intrinsic.int_return.any()
    assert torch.equal(wider.intrinsic.obs_rms.mean, state["intrinsic.obs_rms.mean"])

    resumed = fit(tmp_path, "--model.total_env_steps=1536", f"--ckpt_path={last}").model
    assert int(resumed.env_steps) == 1536
    assert int(resumed.intrinsic.warmup_done) == 2  # no second warm-up after a resume
    assert resumed.intrinsic.obs_rms.count.item() == pytest.approx(5 * 512 + 1e-4)


def load(name: str) -> dict:
    import yaml

    return yaml.safe_load((Path(__file__).parents[2] / "configs" / "rnd" / name).read_text())


def differences(a: dict, b: dict, prefix: str = "") -> set[str]:
    keys = set(a) | set(b)
    out = set()
    for key in keys:
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out |= differences(x, y, f"{prefix}{key}.")
        elif x != y:
            out.add(f"{prefix}{key}")
    return out


def test_rnd_configs_hold_the_reference_hyperparameters() -> None:
    """The RND reference hyperparameters (README, "Configs"), and configs that differ only where their names say."""
    explore = load("montezuma_vit_explore.yaml")
    model, data = explore["model"], explore["data"]
    assert model["optimizer"]["init_args"] == {"lr": 0.0001, "eps": 1.0e-05, "fused": True} and model["anneal_lr"]
    assert (model["gamma"], model["gae_lambda"], model["clip_coef"], model["ent_coef"]) == (0.999, 0.95, 0.1, 0.001)
    assert (model["vf_coef"], model["max_grad_norm"]) == (0.5, 0.5)
    rnd = model["intrinsic"]["init_args"]
    assert (rnd["gamma"], rnd["ext_coef"], rnd["int_coef"], rnd["update_proportion"]) == (0.99, 2.0, 1.0, 0.25)
    assert rnd["warmup_rollouts"] == 50
    assert (data["num_envs"], data["num_steps"], data["num_minibatches"], data["update_epochs"]) == (128, 128, 4, 4)
    assert data["atari"] == {
        "sticky_action_prob": 0.25,
        "max_episode_frames": 18000,
        "terminal_on_life_loss": False,
        "fire_reset": False,
    }
    vit = model["extractor"]["init_args"]
    assert (vit["patch_size"], vit["embed_dim"], vit["depth"], vit["num_heads"], vit["mlp_dim"]) == (6, 256, 3, 8, 1024)
    assert differences(explore, load("montezuma_vit_cls.yaml")) == {
        "model.extractor.init_args.token_mode",
        "trainer.logger.init_args.name",
        "checkpoint.agent",
    }
    cnn = differences(explore, load("montezuma_cnn.yaml"))
    assert "model.extractor.class_path" in cnn
    assert {d for d in cnn if not d.startswith("model.extractor.")} == {
        "trainer.logger.init_args.name",
        "checkpoint.agent",
    }
    for trunk in ("vit_explore", "vit_cls", "cnn"):
        montezuma, pong = load(f"montezuma_{trunk}.yaml"), load(f"pong_{trunk}.yaml")
        assert differences(montezuma, pong) == {
            "data.env_id",
            "data.backend",
            "data.vectorization",
            "data.atari.fire_reset",
            "model.total_env_steps",
            "trainer.logger.init_args.name",
        }
