"""The study-data tests find the data beside the repository or through LIT_RL_STUDY_DATA, and a run
without it says so in one line of pytest's summary instead of skipping silently."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.study_data import DEFAULT, ENV_VAR, study_data_dir

REPO = Path(__file__).parents[1]


def _pytest_study_tests(data_dir: Path | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    if data_dir is not None:
        env[ENV_VAR] = str(data_dir)
    command = [sys.executable, "-m", "pytest", "tests/analysis/test_scores.py", "-m", "study_data"]
    command += ["-p", "no:cacheprovider", "-q"]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_absent_study_data_is_one_line_in_the_summary(tmp_path: Path) -> None:
    proc = _pytest_study_tests(tmp_path)  # an empty folder: no pickle there
    assert proc.returncode == 0, proc.stdout[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("study data:")]
    assert lines == [
        f"study data: NOT FOUND at {tmp_path}; 2 tests of the study's published numbers were skipped "
        f"(put the data at ../shared/data/self-attention-rl or set {ENV_VAR})"
    ]
    assert "2 skipped" in proc.stdout and "passed" not in proc.stdout.splitlines()[-1]


@pytest.mark.study_data
def test_present_study_data_is_read_and_checked() -> None:
    proc = _pytest_study_tests(study_data_dir())
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert f"study data: 2 tests read the study's data at {study_data_dir()}" in proc.stdout
    assert "2 passed" in proc.stdout.splitlines()[-1] and "skipped" not in proc.stdout.splitlines()[-1]


def test_the_default_location_is_beside_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert study_data_dir() == DEFAULT == REPO.resolve().parent / "shared" / "data" / "self-attention-rl"
    monkeypatch.setenv(ENV_VAR, "/somewhere/else")
    assert study_data_dir() == Path("/somewhere/else")
