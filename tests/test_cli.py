"""Every config through the CLI, print_config round trip, checkpoint reload, one-line errors."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
import yaml

import lit_rl.data.datamodule as datamodule_mod
from lit_rl.algos.optim import check_optimizer
from lit_rl.algos.ppo import PPO
from lit_rl.cli import run
from lit_rl.errors import ConfigError

CONFIGS = sorted(str(p) for p in (Path(__file__).parents[1] / "configs").rglob("*.yaml") if "sweeps" not in p.parts)
QUICKSTART = str(Path(__file__).parents[1] / "configs" / "quickstart.yaml")
TINY = ["--data.num_envs=2", "--data.num_steps=8", "--data.num_minibatches=2", "--trainer.enable_progress_bar=false"]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: Path(p).stem)
def test_every_config_runs_one_iteration(config: str, tmp_path: Path) -> None:
    # RND configs: one random-policy warm-up rollout instead of the reference 50.
    model = yaml.safe_load(Path(config).read_text())["model"]
    warmup = ["--model.intrinsic.warmup_rollouts=1"] if "intrinsic" in model else []
    # Memory extractors: chunks no longer than the 8-step rollout (a longer one is refused).
    if "seq_len" in (model.get("extractor", {}).get("init_args") or {}):
        warmup.append("--model.extractor.init_args.seq_len=8")
    args = ["fit", "--config", config, "--trainer.fast_dev_run=1", f"--trainer.default_root_dir={tmp_path}"]
    cli = run([*args, *TINY, *warmup])
    assert int(cli.model.env_steps) == 16  # one rollout of 2 envs x 8 steps
    assert int(cli.model.num_updates) == 1  # fast_dev_run: one minibatch


def test_print_config_round_trips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(["fit", "--config", QUICKSTART, "--model.gamma=0.97", "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = capsys.readouterr().out
    dumped = tmp_path / "dumped.yaml"
    dumped.write_text(printed)
    cfg = yaml.safe_load(printed)
    assert cfg["model"]["gamma"] == 0.97
    assert cfg["model"]["extractor"]["class_path"] == "lit_rl.models.extractors.mlp.MLP"
    cli = run(
        [
            "fit",
            "--config",
            str(dumped),
            "--trainer.fast_dev_run=1",
            "--trainer.logger=false",
            f"--trainer.default_root_dir={tmp_path}",
            *TINY,
        ]
    )
    assert cli.model.gamma == 0.97


def test_checkpoint_alone_rebuilds_the_agent(tmp_path: Path) -> None:
    cli = run(
        [
            "fit",
            "--config",
            QUICKSTART,
            "--model.total_env_steps=512",
            "--data.eval_episodes=2",
            f"--trainer.logger.init_args.save_dir={tmp_path}",
            "--trainer.enable_progress_bar=false",
        ]
    )
    last = Path(cli.trainer.log_dir) / "checkpoints" / "last.ckpt"
    assert last.is_file()
    restored = PPO.load_from_checkpoint(last, weights_only=True)
    assert int(restored.env_steps) == int(cli.model.env_steps) == 512
    obs = torch.randn(64, 4)
    trained = cli.model.policy.eval()
    assert torch.equal(restored.policy.act(obs, greedy=True).actions, trained.act(obs, greedy=True).actions)
    for (name, a), b in zip(trained.state_dict().items(), restored.policy.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


@pytest.fixture
def no_env_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any env is built (bad input must be caught before that)."""

    def forbidden(*args, **kwargs):
        raise AssertionError("an env was built before the bad input was reported")

    monkeypatch.setattr(datamodule_mod, "make_vector_env", forbidden)


BAD_INPUTS = [
    (["--data.env_id=CartPol-v1"], "unknown env id 'CartPol-v1': did you mean 'CartPole-v1'"),
    (
        ["--model.extractor=lit_rl.models.extractors.mlp.MLPP"],
        "lit-rl: error: model.extractor=lit_rl.models.extractors.mlp.MLPP cannot be imported (module "
        "'lit_rl.models.extractors.mlp' has no attribute 'MLPP'); did you mean lit_rl.models.extractors.mlp.MLP, ",
    ),
    (
        ["--model.extractor=lit_rl.models.extractors.vit.VitExtractor"],
        "(module 'lit_rl.models.extractors.vit' has no attribute 'VitExtractor'); did you mean "
        "lit_rl.models.extractors.vit.ViTExtractor, ",  # the closest name first
    ),
    (
        ["--model.extractor=lit_rl.models.extractors.nope.Nope"],
        "lit-rl: error: model.extractor=lit_rl.models.extractors.nope.Nope cannot be imported (module "
        "'lit_rl.models.extractors' has no attribute 'nope'); did you mean lit_rl.models.extractors.mlp.MLP, ",
    ),
    (["--data.num_minibatches=3"], "data.num_minibatches=3 does not divide the rollout of num_envs * num_steps = 256"),
    (["--model.total_env_steps=0"], "model.total_env_steps"),
    (["--model.total_env_steps=-5"], "-5"),
    (["--data.num_envs=0"], "data.num_envs"),
    (["--data.bogus_key=3"], "--data.bogus_key"),
    (["--model.optimizer.init_args.lr=0"], "model.optimizer.init_args.lr=0.0; expected a positive learning rate"),
    (["--model.optimizer.init_args.lr=-0.001"], "model.optimizer.init_args.lr=-0.001; expected a positive"),
    (["--evaluation.every_n_env_steps=-1"], "evaluation.every_n_env_steps"),
    (["--checkpoint.every_n_env_steps=-5"], "checkpoint.every_n_env_steps"),
    (["--data.num_steps=0"], "data.num_steps"),
    (["--model.clip_coef=0"], "model.clip_coef"),
    (["--model.nonfinite=ignore"], "model.nonfinite"),
]


@pytest.mark.usefixtures("no_env_builds")
@pytest.mark.parametrize(("args", "message"), BAD_INPUTS, ids=lambda x: str(x)[:40])
def test_bad_input_is_one_clear_line_before_any_env(args, message, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(["fit", "--config", QUICKSTART, "--trainer.logger=false", *args])
    assert exit_info.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("lit-rl: error:")
    assert message in err[0]


def test_cnn_on_vector_observations_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(
            [
                "fit",
                "--config",
                QUICKSTART,
                "--trainer.logger=false",
                "--model.extractor=lit_rl.models.extractors.nature_cnn.NatureCNN",
            ]
        )
    assert exit_info.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "NatureCNN needs image observations" in err[0] and "obs_shape=(4,)" in err[0]


def test_module_entry_point_reports_bad_input_in_one_line() -> None:
    """``python -m lit_rl`` in a real process: exit code 2, one line on stderr, no traceback."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "lit_rl", "fit", "--config", QUICKSTART, "--data.env_id", "Nope-v0"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("Seed set")]
    assert len(lines) == 1, lines
    assert lines[0].startswith("lit-rl: error: unknown env id 'Nope-v0'")


STUDY_AGENTS = ("NA", "SWA", "CWRA", "CWCA", "CWRCA")


def test_study_configs_differ_only_in_the_agent() -> None:
    """The five agent configs share every hyperparameter (the study's protocol); only the attention module and
    the name differ."""
    study = Path(__file__).parents[1] / "configs" / "study"
    configs = {agent: yaml.safe_load((study / f"{agent}.yaml").read_text()) for agent in STUDY_AGENTS}
    for agent, cfg in configs.items():
        attention = cfg["model"]["extractor"]["init_args"].pop("attention", None)
        if agent == "NA":
            assert attention is None
        else:
            assert attention == {"class_path": f"lit_rl.models.extractors.axial_attention.{agent}"}
        assert cfg["trainer"]["logger"]["init_args"].pop("name") == agent
        assert cfg["checkpoint"].pop("agent") == agent
    reference = configs["NA"]
    for agent in STUDY_AGENTS[1:]:
        assert configs[agent] == reference, agent
    data, model = reference["data"], reference["model"]
    assert (data["num_envs"], data["num_steps"], data["update_epochs"], data["num_minibatches"]) == (16, 128, 3, 8)
    assert (model["clip_coef"], model["ent_coef"], model["gamma"], model["gae_lambda"]) == (0.1, 0.01, 0.99, 0.95)
    assert model["anneal_lr"] and model["anneal_clip"] and not model["clip_vloss"]
    assert model["optimizer"]["init_args"] == {"lr": 2.5e-4, "eps": 1e-5, "fused": True}
    assert (reference["evaluation"]["every_n_env_steps"], data["eval_episodes"], data["eval_greedy"]) == (
        200_000,
        5,
        False,
    )
    assert reference["checkpoint"]["every_n_env_steps"] == 500_000


@pytest.mark.parametrize("agent", STUDY_AGENTS)
def test_study_agent_builds_its_attention_module(agent: str) -> None:
    config = str(Path(__file__).parents[1] / "configs" / "study" / f"{agent}.yaml")
    cli = run(["fit", "--config", config, "--trainer.fast_dev_run=1", "--trainer.logger=false", *TINY])
    extractor = cli.model.policy.extractor
    expected = "Identity" if agent == "NA" else agent
    assert type(extractor.attention).__name__ == expected
    assert sum(p.numel() for p in extractor.parameters()) == 676_144 + (0 if agent == "NA" else 816)


# -- bad input that needs a checkpoint or the file system ------------------------------------------


@pytest.fixture(scope="module")
def cartpole_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``last.ckpt`` of a 32-step CartPole run (MLP 64-64, 2 actions, observations (4,))."""
    save_dir = tmp_path_factory.mktemp("ckpt_run")
    cli = run(
        [
            "fit",
            "--config",
            QUICKSTART,
            "--model.total_env_steps=32",
            f"--trainer.logger.init_args.save_dir={save_dir}",
            *TINY,
        ]
    )
    return Path(cli.trainer.log_dir) / "checkpoints" / "last.ckpt"


@pytest.fixture
def no_training_envs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the training envs are built (a probe env reads the spaces; nothing steps)."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the training envs were built before the bad input was reported")

    monkeypatch.setattr(datamodule_mod, "RolloutCollector", forbidden)


def _one_error_line(capsys: pytest.CaptureFixture[str], exit_info: pytest.ExceptionInfo) -> str:
    assert exit_info.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("lit-rl: error:")
    return err[0]


def _garbage(path: Path) -> Path:
    path.write_bytes(b"PK\x03\x04 this is not a checkpoint" * 10)
    return path


@pytest.mark.usefixtures("no_training_envs")
@pytest.mark.parametrize(
    ("case", "args", "message"),
    [
        ("missing file", lambda ckpt, tmp: ["--ckpt_path", str(tmp / "nope.ckpt")], "nope.ckpt' does not exist"),
        (
            "corrupt file",
            lambda ckpt, tmp: ["--ckpt_path", str(_garbage(tmp / "bad.ckpt"))],
            "bad.ckpt' cannot be read",
        ),
        (
            "other extractor",
            lambda ckpt, tmp: ["--ckpt_path", str(ckpt), "--model.extractor.init_args.hidden_sizes=[32]"],
            "has shape [64, 4] in the checkpoint and [32, 4] here",
        ),
        (
            "other env",
            lambda ckpt, tmp: ["--ckpt_path", str(ckpt), "--data.env_id=Acrobot-v1"],
            "was trained on CartPole-v1, this run is configured for data.env_id=Acrobot-v1",
        ),
        ("best", lambda ckpt, tmp: ["--ckpt_path", "best"], "lit_rl keeps no 'best' checkpoint"),
        ("directory", lambda ckpt, tmp: ["--ckpt_path", str(ckpt.parent)], "checkpoints' is a directory; pass a"),
    ],
    ids=lambda x: x if isinstance(x, str) and len(x) < 20 else "",
)
def test_bad_checkpoint_is_one_clear_line(case, args, message, cartpole_ckpt: Path, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(["fit", "--config", QUICKSTART, "--trainer.logger=false", *TINY, *args(cartpole_ckpt, tmp_path)])
    line = _one_error_line(capsys, exit_info)
    assert message in line, line


@pytest.mark.usefixtures("no_training_envs")
def test_checkpoint_of_another_action_space_is_one_clear_line(cartpole_ckpt: Path, capsys) -> None:
    # validate may evaluate a checkpoint on another env, but not one with other actions (Acrobot has 3).
    args = ["validate", "--config", QUICKSTART, "--trainer.logger=false", "--data.env_id=Acrobot-v1"]
    with pytest.raises(SystemExit) as exit_info:
        run([*args, "--ckpt_path", str(cartpole_ckpt)])
    line = _one_error_line(capsys, exit_info)
    assert "was trained for 2 actions, Acrobot-v1 has 3" in line, line


@pytest.mark.usefixtures("no_training_envs")
def test_unwritable_log_dir_is_one_clear_line(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(SystemExit) as exit_info:
        run(["fit", "--config", QUICKSTART, f"--trainer.logger.init_args.save_dir={blocker / 'runs'}"])
    line = _one_error_line(capsys, exit_info)
    assert f"cannot write to the directory '{blocker / 'runs'}'" in line and "save_dir" in line, line


@pytest.mark.usefixtures("no_env_builds")
def test_unknown_key_in_a_config_file_is_one_clear_line(tmp_path: Path, capsys) -> None:
    config = tmp_path / "typo.yaml"
    config.write_text(Path(QUICKSTART).read_text().replace("num_minibatches: 1", "num_minibatchs: 1"))
    with pytest.raises(SystemExit) as exit_info:
        run(["fit", "--config", str(config), "--trainer.logger=false"])
    line = _one_error_line(capsys, exit_info)
    assert "num_minibatchs" in line, line


def test_optimizer_arguments_are_checked_when_the_module_is_built() -> None:
    """Library users (no CLI) get the same ConfigError from PPO itself."""
    with pytest.raises(ConfigError, match=r"Invalid learning rate: -1\.0"):
        check_optimizer(functools.partial(torch.optim.Adam, lr=-1.0))
    with pytest.raises(ConfigError, match=r"lr=0\.0; expected a positive learning rate"):
        check_optimizer(functools.partial(torch.optim.SGD, lr=0.0))
    check_optimizer(functools.partial(torch.optim.Adam, lr=1e-4))  # a good one passes
