"""Phase 4 checkpoint: processes that train together (dist.py): torchrun's environment, faults.

The runs under torchrun, with faults injected, are in ``test_recipe.py``.
"""
from __future__ import annotations

import re

import pytest

from phases.common.console import UserError

pytestmark = pytest.mark.phase4


def test_fault_specs_are_checked(dist_mod):
    with pytest.raises(UserError, match="kind must be hang, kill or raise"):
        dist_mod.parse_fault("rank=1,step=2,kind=explode")
    assert dist_mod.parse_fault("rank=1,step=3,kind=hang") == {"rank": 1, "step": 3, "kind": "hang"}


def test_without_torchrun_a_process_is_rank_0_of_1(dist_mod, monkeypatch):
    for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    with dist_mod.distributed("cpu") as world:
        assert (world.rank, world.world_size, world.backend) == (0, 1, "")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(UserError, match="launch with torchrun"):
        dist_mod.world_from_env()


@pytest.mark.distributed
def test_two_ranks_join_the_group_and_sum_their_ranks(torchrun_join):
    # Exercise Step 1 under torchrun: each rank joins with distributed() and all-reduces its rank.
    # The two ranks print to one pipe, so their lines can interleave mid-line: find each one.
    lines = sorted(re.findall(r"rank \d/2 local \d backend \w+: sum of ranks = \d+", torchrun_join(2)))
    assert lines == ["rank 0/2 local 0 backend gloo: sum of ranks = 1",
                     "rank 1/2 local 1 backend gloo: sum of ranks = 1"]


def _two_ranks(tmp_path, source: str):
    """Run ``source`` on two gloo ranks under torchrun; the finished process, which must have succeeded."""
    from phases.phase4_ddp.conftest import LAUNCH_TIMEOUT, REPO, run_torchrun
    script = tmp_path / "script.py"
    script.write_text(source)
    env = {**__import__("os").environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc, _ = run_torchrun(["--nproc_per_node=2", str(script)], env, LAUNCH_TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


NESTED = """\
import torch, torch.distributed as td
from phases.phase4_ddp.dist import distributed
with distributed("cpu", 60) as outer:
    for stage in range(5):                         # the pipeline's stages, each joining in turn
        with distributed("cpu", 60) as world:
            x = torch.tensor([float(world.rank + 1)])
            td.all_reduce(x)
            print(f"rank {world.rank} stage {stage}: {x.item():g}", flush=True)
    assert td.is_initialized()                     # the inner blocks left the outer group alone
print(f"rank {outer.rank} left: {td.is_initialized()}", flush=True)
"""


@pytest.mark.distributed
def test_a_block_inside_a_joined_group_reuses_it(tmp_path):
    # The reference's own contract (the pipeline joins once; every stage's join reuses that group):
    # joining again in one torchrun launch could read the previous group's store keys.
    proc = _two_ranks(tmp_path, NESTED)
    lines = sorted(re.findall(r"rank \d stage \d: \d+", proc.stdout))
    assert lines == sorted(f"rank {r} stage {s}: 3" for r in (0, 1) for s in range(5))
    # the two ranks print to one pipe: a line can run into the next one's ("...: Falserank 1 ...")
    assert sorted(re.findall(r"rank \d left: (?:True|False)", proc.stdout)) == ["rank 0 left: False",
                                                                                "rank 1 left: False"]


LEAVE = """\
import os, sys
import torch
from phases.phase4_ddp.dist import distributed
with distributed("cpu", 60) as world:
    import torch._dynamo                           # building a model or torch.compile imports it here
names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
print(f"rank {world.rank} gloo threads left: {sum('gloo' in n for n in names)}", flush=True)
"""


@pytest.mark.distributed
@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self/task"), reason="reads Linux's /proc")
def test_leaving_the_group_stops_its_threads(tmp_path):
    # A group that outlives the block keeps gloo's threads, which can abort the process while
    # the interpreter exits (about one exit in a hundred): leaving must really destroy it.
    proc = _two_ranks(tmp_path, LEAVE)
    assert sorted(re.findall(r"rank \d gloo threads left: \d+", proc.stdout)) == [
        "rank 0 gloo threads left: 0", "rank 1 gloo threads left: 0"]
