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
