"""Phase 4's torchrun launcher (phases/phase4_ddp/conftest.py) on a loaded machine (issue 14, item 11).

The Phase 4 checkpoint once ended with 6 setup errors under load: the module fixture that
launches the 1-vs-2-rank runs gave torchrun 240 s (``subprocess.run(timeout=...)``), and a
timed-out launch killed torchrun alone, leaving its ranks running and the machine even more
loaded for the next launch. The launcher now waits ``MINI_NANOCHAT_TORCHRUN_TIMEOUT`` (900 s)
and stops the whole process group. This test checks the second part: when a launch outlives
its limit, the test fails with the output so far and no rank is left running.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state                      # a zombie is dead, only not yet reaped


@pytest.mark.distributed
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_launch_past_its_limit_fails_and_leaves_no_rank_running(tmp_path):
    from phases.phase4_ddp.conftest import run_torchrun

    script = tmp_path / "sleepy.py"
    script.write_text("import os, sys, time\n"
                      f"open(os.path.join({str(tmp_path)!r}, 'pid_' + os.environ['RANK']), 'w').write(str(os.getpid()))\n"
                      "print('rank', os.environ['RANK'], 'asleep', flush=True)\n"
                      "time.sleep(600)\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    deadline = time.monotonic() + 120                       # both ranks up, however loaded the machine
    limit = 20.0
    while True:
        with pytest.raises(pytest.fail.Exception) as failed:
            run_torchrun(["--nproc_per_node=2", str(script)], env, timeout=limit)
        pids = [int(p.read_text()) for p in tmp_path.glob("pid_*")]
        if len(pids) == 2 or time.monotonic() > deadline:
            break
        limit *= 2                                          # the ranks had not started yet: give more time
    assert len(pids) == 2, f"the ranks never started within {limit:.0f} s"
    message = str(failed.value)
    assert f"did not finish within {limit:.0f} s" in message and "all its processes were killed" in message
    assert "asleep" in message                              # the output so far is shown
    time.sleep(1.0)
    assert not [pid for pid in pids if _alive(pid)], "a rank outlived its torchrun"
