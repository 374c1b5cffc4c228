"""Bad input to the memory agents: one line naming the value and what is accepted, before any env starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from lit_rl.cli import run
from lit_rl.errors import ConfigError
from lit_rl.models.extractors.gtrxl import GTrXL

GTRXL = str(Path(__file__).parents[1] / "configs" / "memory" / "stateless_gtrxl.yaml")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--data.num_steps=8"],
            "model.extractor.init_args.seq_len=16 is longer than a rollout (data.num_steps=8); use seq_len <= 8",
        ),
        (
            ["--model.extractor.init_args.memory_length=0"],
            'Parser key "memory_length": Not of type PositiveInt: 0 does not conform to restriction v>0',
        ),
        (
            ["--model.extractor.init_args.seq_len=-3"],
            'Parser key "seq_len": Not of type PositiveInt: -3 does not conform to restriction v>0',
        ),
    ],
)
def test_bad_memory_settings_are_one_line(args, message, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(["fit", "--config", GTRXL, "--trainer.logger=false", "--data.num_envs=2", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_gtrxl_built_in_python_refuses_an_empty_memory() -> None:
    with pytest.raises(ConfigError, match=r"GTrXL memory_length=0; expected a positive number of steps"):
        GTrXL((2,), memory_length=0)
