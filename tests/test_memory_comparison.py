"""tools.memory_comparison: the evaluation protocol reaches every agent's runs, and one folder never mixes two."""

from __future__ import annotations

import pytest

from tools import memory_comparison as mc


@pytest.mark.parametrize("greedy", [False, True])
def test_the_protocol_reaches_lit_rl_and_sb3_runs(tmp_path, monkeypatch, greedy):
    seen = []
    monkeypatch.setattr(mc, "report", seen.append)
    mc.main(["--out", str(tmp_path), "--report-only", *(["--greedy"] if greedy else [])])
    (args,) = seen
    lit = mc.command("stateless_lstm", 3, args)
    sb3 = mc.command(mc.SB3, 3, args)
    assert f"--data.eval_greedy={'true' if greedy else 'false'}" in lit
    assert ("--greedy" in sb3) is greedy


def test_a_folder_of_sampled_runs_refuses_a_greedy_call(tmp_path, monkeypatch, capsys):
    run = tmp_path / "runs" / "stateless_lstm" / "seed_0"
    run.mkdir(parents=True)
    (run / "eval_protocol").write_text("sampled\n")
    monkeypatch.setattr(mc, "report", lambda args: pytest.fail("the report ran"))
    with pytest.raises(SystemExit) as error:
        mc.main(["--out", str(tmp_path), "--greedy", "--report-only"])
    message = str(error.value)
    assert "\n" not in message
    assert str(run) in message and "sampled" in message and "greedy" in message
    # The same folder under its own protocol is accepted.
    seen = []
    monkeypatch.setattr(mc, "report", seen.append)
    mc.main(["--out", str(tmp_path), "--report-only"])
    assert len(seen) == 1


def test_a_greedy_run_records_its_protocol(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(mc.subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    monkeypatch.setattr(mc, "report", lambda args: None)
    mc.main(["--out", str(tmp_path), "--greedy", "--agents", "stateless_mlp", "--seeds", "5", "--jobs", "1"])
    assert (tmp_path / "runs" / "stateless_mlp" / "seed_5" / "eval_protocol").read_text() == "greedy\n"
    assert "--data.eval_greedy=true" in calls[0]
