"""The ``ale`` backend's worker processes: they end with their parent, however it ends."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.atari

SCRIPT = """
import os
from lit_rl.envs.ale_pool import AlePool
from lit_rl.envs.options import AtariOptions
pool = AlePool("breakout", 2, AtariOptions(), workers=2)
print(" ".join(str(p.pid) for p in pool._procs), flush=True)
{end}
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie has ended
        return f.read().split()[2] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("end", ["pass", "os._exit(0)"], ids=["normal exit", "killed"])
def test_workers_end_with_their_parent(end: str) -> None:
    # A normal exit closes the pools before multiprocessing waits for workers that ignore SIGTERM; a
    # parent that dies without cleaning up leaves workers that notice it within a second.
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(end=end)], capture_output=True, text=True, timeout=60, check=True
    )
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 2
    deadline = time.monotonic() + 5
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in pids)
